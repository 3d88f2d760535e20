"""Load any Hugging Face vision-language model with its processor, by hub name or folder.

The model comes through ``AutoModelForImageTextToText`` (LLaVA, Qwen2-VL, Idefics, ...) and the
processor through ``AutoProcessor``. Safe by default, like :mod:`obliviate.models.loading`:
weights only from safetensors, no remote code unless ``trust_remote_code=True``; a bad path is
one sentence (:func:`obliviate.models.locate.check_model_path`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from obliviate.models.locate import check_model_path, explain_remote_code
from obliviate.multimodal.lm import ImageBank, VisionLM


def load_vlm(
    path: str, trust_remote_code: bool = False, dtype: str | None = None
) -> tuple[Any, Any]:
    """``(model, processor)`` from a hub name or a ``save_pretrained`` folder."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    check_model_path(str(path), trust_remote_code)
    torch_dtype = getattr(torch, dtype) if dtype else torch.float32
    try:
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForImageTextToText.from_pretrained(
            path, dtype=torch_dtype, use_safetensors=True, trust_remote_code=trust_remote_code
        )
    except ValueError as exc:
        raise explain_remote_code(exc, path) from exc
    if not hasattr(processor, "image_token") or getattr(processor, "tokenizer", None) is None:
        raise ValueError(
            f"{path!r} has no vision-language processor (a tokenizer with an image token and an "
            "image processor); give a model saved with its AutoProcessor"
        )
    tok = processor.tokenizer
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model.eval()
    return model, processor


def load_vision_lm(path: str | Path, trust_remote_code: bool = False) -> tuple[VisionLM, Any]:
    """The model of ``path`` as a :class:`~obliviate.multimodal.lm.VisionLM` (with a fresh
    image bank) and its tokenizer."""
    model, processor = load_vlm(str(path), trust_remote_code)
    return VisionLM(model, ImageBank(processor)), processor.tokenizer


def save_vision_lm(model: VisionLM, folder: str | Path) -> None:
    """``save_pretrained`` of the model and its processor (safetensors)."""
    model.save_pretrained(str(folder))
