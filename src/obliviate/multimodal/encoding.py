"""Items with images to token ids for the text engine (:mod:`obliviate.multimodal.lm`).

An image+text item (``meta["image"]`` set) is encoded like a text item whose question is the
image token, a newline and the question, in the same prompt template
(:func:`obliviate.data.templates.encode`, exact answer boundary); its one image token is then
expanded into the image's references (as many as the processor gives it image tokens). A
text-only item is encoded exactly as the text engine encodes it.
"""

from __future__ import annotations

from collections.abc import Sequence

from obliviate.data.templates import IGNORE, Encoded, PromptTemplate, encode
from obliviate.data.types import QAItem
from obliviate.multimodal.lm import ImageBank, reference_ids


def _image_question(bank: ImageBank, item: QAItem) -> str:
    return f"{bank.image_token}\n{item.question}"


def _expand(bank: ImageBank, item: QAItem, ids: list[int]) -> tuple[list[int], int, int]:
    """``ids`` with its one image token replaced by the item image's references; also the
    position of that token and how many ids were added."""
    at = [i for i, t in enumerate(ids) if t == bank.image_token_id]
    if len(at) != 1:
        raise ValueError(
            f"the prompt of {item.question!r} holds {len(at)} image tokens after encoding; "
            "shorten the prompt (max_length) or remove image tokens from the question"
        )
    key, n = bank.add(str(item.meta.get("image_id") or id(item.meta["image"])), item.meta["image"])
    pos = at[0]
    return ids[:pos] + reference_ids(key, n) + ids[pos + 1 :], pos, n - 1


def has_image(item: QAItem) -> bool:
    return item.meta.get("image") is not None


def encode_item(
    bank: ImageBank,
    tokenizer: object,
    item: QAItem,
    template: PromptTemplate,
    max_length: int = 512,
) -> Encoded:
    """The item as :class:`~obliviate.data.templates.Encoded` (labels ``IGNORE`` outside the
    answer), image references in place of its image."""
    if not has_image(item):
        return encode(tokenizer, item.question, item.answer, template, max_length)
    enc = encode(tokenizer, _image_question(bank, item), item.answer, template, max_length)
    ids, pos, added = _expand(bank, item, enc.input_ids)
    labels = enc.labels[:pos] + [IGNORE] * (added + 1) + enc.labels[pos + 1 :]
    return Encoded(ids, labels, enc.prompt_len + added, enc.has_eos, enc.cut)


def encode_items(
    bank: ImageBank,
    tokenizer: object,
    items: Sequence[QAItem],
    template: PromptTemplate,
    max_length: int = 512,
    answers: Sequence[str] | None = None,
) -> list[Encoded]:
    """:func:`encode_item` of each item (with ``answers[i]`` in place of its answer when
    given: the options of a multiple-choice question)."""
    if answers is not None:
        items = [_with_answer(it, a) for it, a in zip(items, answers)]
    return [encode_item(bank, tokenizer, it, template, max_length) for it in items]


def _with_answer(item: QAItem, answer: str) -> QAItem:
    return QAItem(item.question, answer, options=item.options, meta=item.meta)


def prompt_ids(
    bank: ImageBank, tokenizer: object, item: QAItem, template: PromptTemplate
) -> list[int]:
    """The prompt of ``item`` (what generation continues), image references included."""
    if not has_image(item):
        return template.prompt_ids(tokenizer, item.question)
    ids = template.prompt_ids(tokenizer, _image_question(bank, item))
    return _expand(bank, item, ids)[0]
