"""A random micro LLaVA-style model (:data:`obliviate.multimodal.tiny.TINY_VLM_SIZES` "micro")
with its processor and a few built-in people, for multimodal unit and contract tests."""

from __future__ import annotations

from typing import Any

from obliviate.multimodal.lm import ImageBank, VisionLM
from obliviate.multimodal.people import corpus_text, generate_people
from obliviate.multimodal.tiny import build_processor, build_tiny_llava, build_tokenizer


def micro_vlm(n_people: int = 4, seed: int = 0) -> dict[str, Any]:
    """``{"people", "tok", "processor", "model"}`` (``model`` a :class:`VisionLM`)."""
    people = generate_people(n_people, n_real=1, forget_percent=25, seed=seed)
    tok = build_tokenizer(corpus_text(people), vocab_size=400)
    processor = build_processor(tok, people.image_size)
    vlm = build_tiny_llava(tok, "micro", people.image_size, seed=seed)
    vlm.eval()
    return {
        "people": people,
        "tok": tok,
        "processor": processor,
        "model": VisionLM(vlm, ImageBank(processor)),
    }
