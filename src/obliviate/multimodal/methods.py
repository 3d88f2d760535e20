"""Unlearning methods on vision-language models.

Every composed gradient method of :data:`obliviate.registry.METHODS` whose terms only run the
model on encoded batches (:data:`GRADIENT_METHODS`) runs unchanged on a
:class:`~obliviate.multimodal.lm.VisionLM`: :class:`VisionJob` encodes the items with their
images, and the trainer, the terms, their reference models and the collapse guard see token ids
with image references. ``part`` picks what is updated (:data:`PARTS`): the language model
(embeddings, decoder, LM head), the vision side (vision tower and projector) or both; the rest
is frozen through the methods' ``trainable`` selection. Methods designed for vision-language
models are listed in :data:`obliviate.registry.VLM_METHODS` (:mod:`obliviate.multimodal.mmunlearner`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from obliviate.data.templates import Encoded
from obliviate.data.types import QAItem, UnlearningRequest
from obliviate.methods.job import UnlearnJob, UnlearnOutput
from obliviate.multimodal.encoding import encode_items
from obliviate.multimodal.lm import ImageBank, VisionLM

# regexes over VisionLM parameter names (LLaVA, Qwen2-VL and Idefics-style module names)
PARTS: dict[str, str | None] = {
    "both": None,
    "language": r"(^|\.)(language_model|lm_head|text_model)\.",
    "vision": r"(^|\.)(vision_tower|visual|vision_model|multi_modal_projector|connector)\.",
}

# composed gradient methods whose terms need nothing but encoded batches
GRADIENT_METHODS = (
    "ga",
    "graddiff",
    "ga_kl",
    "npo",
    "npo_kl",
    "simnpo",
    "wga",
    "satimp",
    "ceu",
    "undial",
    "pdu",
)


@dataclass
class VisionJob(UnlearnJob):
    """An :class:`~obliviate.methods.job.UnlearnJob` whose items may carry images."""

    bank: ImageBank | None = None

    def encode_items(self, items: list[QAItem], max_length: int = 512) -> list[Encoded]:
        if self.bank is None:
            raise ValueError("a VisionJob needs the model's image bank")
        return encode_items(self.bank, self.tokenizer, items, self.template, max_length)


def part_pattern(part: str) -> str | None:
    """The ``trainable`` regex of ``part`` (``None``: everything)."""
    if part not in PARTS:
        raise ValueError(f"unknown model part {part!r}; choose one of {', '.join(PARTS)}")
    return PARTS[part]


def build_vlm_method(name: str, part: str = "both", overrides: dict[str, Any] | None = None) -> Any:
    """A gradient method of :data:`GRADIENT_METHODS` or one of
    :data:`obliviate.registry.VLM_METHODS`, updating only ``part``."""
    from obliviate.methods.base import build_method
    from obliviate.registry import VLM_METHODS

    overrides = dict(overrides or {})
    pattern = part_pattern(part)
    if name in VLM_METHODS:
        return VLM_METHODS.get(name)(part=part, **overrides)
    if name not in GRADIENT_METHODS:
        known = ", ".join([*GRADIENT_METHODS, *VLM_METHODS.names()])
        raise ValueError(f"method {name!r} does not run on vision-language models; use {known}")
    if pattern is not None:
        overrides["trainable"] = pattern
    return build_method(name, overrides)


def resolve_vlm_method(name: str, overrides: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The method of :func:`build_vlm_method` for ``overrides`` (``part`` among them, default
    ``both``) and its resolved settings, as config.yaml records them."""
    from obliviate.api import _merge
    from obliviate.registry import METHODS, VLM_METHODS

    overrides = dict(overrides)
    part = str(overrides.pop("part", "both"))
    method = build_vlm_method(name, part, overrides)
    if name in VLM_METHODS:
        return method, {**method.settings(), "part": part}
    settings = _merge(METHODS.get(name).defaults(), overrides)
    settings["trainable"] = part_pattern(part)
    return method, {**settings, "part": part}


def unlearn_vlm(
    model: VisionLM,
    tokenizer: Any,
    request: UnlearningRequest,
    method: str,
    part: str = "both",
    overrides: dict[str, Any] | None = None,
    progress: bool = False,
) -> UnlearnOutput:
    """Run ``method`` on ``model`` in place (its ``part`` only) for ``request``."""
    built = build_vlm_method(method, part, overrides)
    job = VisionJob(model, tokenizer, request, progress=progress, bank=model.bank)
    return built.unlearn(job)
