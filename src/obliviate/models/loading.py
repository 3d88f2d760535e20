"""Load any ``AutoModelForCausalLM`` + tokenizer by hub name or local path, safely.

Safe by default: weights only from safetensors, no remote code unless ``trust_remote_code=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from obliviate.inference.wrapper_file import WRAPPER_FILE, load_wrapper
from obliviate.models.fingerprint import model_fingerprint
from obliviate.models.locate import check_model_path, explain_remote_code

__all__ = ["load_model", "load_tokenizer", "model_fingerprint"]


def _check_local(path: str, trust_remote_code: bool = True) -> None:
    """Fail at once, in one sentence, on a path that is not a loadable model
    (:func:`obliviate.models.locate.check_model_path`)."""
    check_model_path(str(path), trust_remote_code)


def load_tokenizer(path: str, trust_remote_code: bool = False) -> Any:
    """Load a tokenizer and make sure it has a pad token (pad = EOS when missing).

    Attention masks never come from token identity (docs/metrics.md), so pad = EOS is safe.
    """
    from transformers import AutoTokenizer

    _check_local(path, trust_remote_code)
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except ValueError as exc:
        raise explain_remote_code(exc, path) from exc
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(
    path: str,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    device: str | None = None,
) -> Any:
    """Load a causal LM (or a PEFT adapter folder on top of its base, resolved relative to the
    adapter folder: :mod:`obliviate.models.adapters`) from ``path``.

    ``dtype``: "float32" (default on CPU), "bfloat16" or "float16".
    """
    import torch
    from transformers import AutoModelForCausalLM

    _check_local(path, trust_remote_code)
    torch_dtype = getattr(torch, dtype) if dtype else torch.float32
    if Path(path, WRAPPER_FILE).exists():
        return load_wrapper(path)
    try:
        if Path(path, "adapter_config.json").exists():
            from obliviate.models.adapters import load_adapter

            model = load_adapter(path, torch_dtype, trust_remote_code)
        else:
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype=torch_dtype, use_safetensors=True, trust_remote_code=trust_remote_code
            )
    except ValueError as exc:
        raise explain_remote_code(exc, path) from exc
    if device:
        model.to(device)
    model.eval()
    return model
