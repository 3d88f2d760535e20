"""Prompt templates and tokenisation of (prompt, answer) pairs with an exact label mask.

The prompt and the answer are tokenised **together**, as the model reads them, and the answer's
tokens are located by character offsets (docs/metrics.md, "Prompt/answer boundary"): the first
answer token is the first token that holds a character of the answer. Tokenising the answer on
its own would add tokens that never occur in the joint text (a SentencePiece tokenizer turns
``" Paris"`` into ``"▁", "▁Paris"``), and those would be scored as the answer's first token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IGNORE = -100


@dataclass(frozen=True)
class PromptTemplate:
    """How a question becomes a prompt.

    - ``qa``: ``"Question: {q}\\nAnswer:"`` and the answer follows after one space (base models,
      docs/metrics.md; the space belongs to the answer's first token).
    - ``chat``: the tokenizer's own chat template with a generation prompt; optional system prompt
      (``--system-prompt``, ``system_prompt=``) and pinned date string.
    - ``raw``: the question text itself, answer appended directly.
    """

    name: str = "qa"
    system_prompt: str | None = None
    date_string: str = "10 Apr 2025"

    def __post_init__(self) -> None:
        if self.name not in ("qa", "chat", "raw"):
            raise ValueError(f"unknown prompt template {self.name!r}; use 'qa', 'chat' or 'raw'")
        if self.system_prompt is not None and self.name != "chat":
            raise ValueError(
                f"a system prompt applies only to the chat template (got template {self.name!r}); "
                "add --template chat (template='chat') or drop the system prompt"
            )

    def prompt_text(self, question: str) -> str:
        if self.name == "qa":
            return f"Question: {question}\nAnswer:"
        return question

    def answer_text(self, answer: str) -> str:
        return (" " + answer) if self.name == "qa" and answer else answer

    def _messages(self, question: str) -> list[dict[str, str]]:
        messages = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": question})
        return messages

    def chat_text(self, tokenizer: Any, question: str) -> str:
        """The chat template rendered as text, ending with the generation prompt."""
        return str(
            tokenizer.apply_chat_template(
                self._messages(question),
                tokenize=False,
                add_generation_prompt=True,
                date_string=self.date_string,
            )
        )

    def prompt_ids(self, tokenizer: Any, question: str) -> list[int]:
        """Token ids of the prompt (with BOS when the tokenizer adds one)."""
        if question == "":  # a plain document: only BOS
            return [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        if self.name == "chat":
            out = tokenizer.apply_chat_template(
                self._messages(question),
                tokenize=True,
                add_generation_prompt=True,
                date_string=self.date_string,
            )
            if isinstance(out, dict) or hasattr(out, "input_ids"):
                out = out["input_ids"]
            return list(out)
        return list(tokenizer(self.prompt_text(question), add_special_tokens=True)["input_ids"])

    def answer_ids(self, tokenizer: Any, answer: str, document: bool = False) -> list[int]:
        """Ids of the answer tokenised on its own (a refusal prefix, a document): not the
        scored span of a (prompt, answer) pair, which :meth:`pair_ids` gives."""
        text = answer if document else self.answer_text(answer)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    def pair_ids(self, tokenizer: Any, question: str, answer: str) -> tuple[list[int], list[int]]:
        """(prompt ids, answer ids) of the prompt followed by the answer, tokenised together.

        The answer span is found by character offsets (fast tokenizers) or, for tokenizers
        without offsets, as what follows the prompt's own ids in the joint ids (the
        lm-evaluation-harness split). A token holding both prompt and answer characters counts
        as an answer token."""
        if question == "":
            return self.prompt_ids(tokenizer, ""), self.answer_ids(tokenizer, answer, True)
        a_text = self.answer_text(answer)
        if not a_text:
            return self.prompt_ids(tokenizer, question), []
        if self.name == "chat":
            p_text, special = self.chat_text(tokenizer, question), False
        else:
            p_text, special = self.prompt_text(question), True
        return split_joint(tokenizer, p_text, a_text, special)


def split_joint(
    tokenizer: Any, prompt: str, answer: str, add_special_tokens: bool = True
) -> tuple[list[int], list[int]]:
    """Tokenise ``prompt + answer`` once and split the ids where the answer's characters begin
    (see :meth:`PromptTemplate.pair_ids`); special tokens the tokenizer appends after the text
    (an EOS post-processor) are dropped."""
    boundary = len(prompt)
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(
            prompt + answer,
            add_special_tokens=add_special_tokens,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        ids, offsets, special = enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"]
        added = [bool(s) and tuple(o) == (0, 0) for s, o in zip(special, offsets)]
        k = next(
            (i for i, (o, a) in enumerate(zip(offsets, added)) if not a and o[1] > boundary),
            len(ids),
        )
        answer_ids = [t for t, a in zip(ids[k:], added[k:]) if not a]
        return list(ids[:k]), answer_ids
    # slow tokenizers: no offsets; the joint ids after the longest common prefix with the prompt
    p_ids = list(tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"])
    ids = list(tokenizer(prompt + answer, add_special_tokens=add_special_tokens)["input_ids"])
    bare = list(tokenizer(prompt + answer, add_special_tokens=False)["input_ids"])
    k = 0
    while k < min(len(p_ids), len(ids)) and p_ids[k] == ids[k]:
        k += 1
    lead = next((j for j in range(len(ids) - len(bare) + 1) if ids[j : j + len(bare)] == bare), 0)
    end = lead + len(bare)  # specials appended after the text are not answer tokens
    return ids[:k], ids[k:end]


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    prompt_len: int
    has_eos: bool
    cut: int = 0  # tokens dropped to fit ``max_length`` (the prompt's head with "left")


def encode(
    tokenizer: Any,
    question: str,
    answer: str,
    template: PromptTemplate,
    max_length: int = 512,
    add_eos: bool = True,
    truncate: str = "answer",
) -> Encoded:
    """Tokenise prompt + answer together; labels are IGNORE on the prompt.

    EOS is appended to QA answers (not to plain documents) unless the answer already ends with it.
    Over-long items are cut at ``max_length``: with ``truncate="answer"`` the answer's tail goes
    first (the EOS with it); with ``truncate="left"`` the prompt loses its first tokens and the
    answer is kept whole (lm-evaluation-harness's left truncation). ``cut`` counts the tokens
    dropped.
    """
    if truncate not in ("answer", "left"):
        raise ValueError(f"truncate must be 'answer' or 'left', not {truncate!r}")
    document = question == ""
    p_ids, a_ids = template.pair_ids(tokenizer, question, answer)
    eos = tokenizer.eos_token_id
    has_eos = False
    if add_eos and not document and eos is not None and (not a_ids or a_ids[-1] != eos):
        a_ids = a_ids + [eos]
    if a_ids and a_ids[-1] == eos and not document:
        has_eos = True
    if truncate == "left":
        cut = max(0, len(p_ids) + len(a_ids) - max_length)
        if cut >= len(p_ids) and p_ids:  # the answer alone is too long: keep one prompt token
            cut = len(p_ids) - 1
            a_ids = a_ids[len(a_ids) - (max_length - 1) :]
        p_ids = p_ids[cut:]
        return Encoded(p_ids + a_ids, [IGNORE] * len(p_ids) + a_ids, len(p_ids), has_eos, cut)
    n_before = len(p_ids) + len(a_ids)
    if len(p_ids) >= max_length:
        p_ids = p_ids[-(max_length // 2) :]
    room = max_length - len(p_ids)
    if len(a_ids) > room:
        a_ids = a_ids[:room]
        has_eos = False
    cut = n_before - len(p_ids) - len(a_ids)
    return Encoded(p_ids + a_ids, [IGNORE] * len(p_ids) + a_ids, len(p_ids), has_eos, cut)
