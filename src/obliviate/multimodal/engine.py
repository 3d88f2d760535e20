"""Teacher-forced scoring and greedy generation of items with images: the text engine's
:func:`obliviate.scoring.score_encoded` and :func:`obliviate.generation.generate_ids` on a
:class:`~obliviate.multimodal.lm.VisionLM` (one teacher-forced pass per batch of (image,
question, answer variant), length-sorted and right-padded; left-padded batched greedy
generation through the model's own ``generate`` with the batch's images)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from obliviate.data.collate import pad_id_of
from obliviate.data.templates import PromptTemplate
from obliviate.data.types import QAItem
from obliviate.multimodal.encoding import encode_items, prompt_ids
from obliviate.multimodal.lm import VisionLM
from obliviate.scoring import TokenScores, model_device, score_encoded


def score_items(
    model: VisionLM,
    tokenizer: Any,
    items: Sequence[QAItem],
    template: PromptTemplate,
    answers: Sequence[str] | None = None,
    batch_size: int = 32,
    max_length: int = 512,
) -> list[TokenScores]:
    """Per-token statistics of each item's answer (or of ``answers[i]``), EOS included."""
    if not items:
        return []
    encoded = encode_items(model.bank, tokenizer, items, template, max_length, answers)
    return score_encoded(model, tokenizer, encoded, batch_size)


def generate_items(
    model: VisionLM,
    tokenizer: Any,
    items: Sequence[QAItem],
    template: PromptTemplate,
    max_new_tokens: int = 16,
    batch_size: int = 32,
) -> list[str]:
    """Greedy answers to each item's question (with its image in image+text mode), decoded
    from the new tokens, cut at EOS and stripped."""
    from obliviate.generation import GenerationJob, generate_ids

    prompts = [prompt_ids(model.bank, tokenizer, it, template) for it in items]
    job = GenerationJob(
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        pad_token_id=pad_id_of(tokenizer),
        eos_token_id=tokenizer.eos_token_id,
        device=model_device(model),
    )
    return [
        tokenizer.decode(ids, skip_special_tokens=True).strip()
        for ids in generate_ids(model, prompts, job, "hf")
    ]
