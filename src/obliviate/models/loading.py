"""Load any ``AutoModelForCausalLM`` + tokenizer by hub name or local path, safely.

Safe by default: weights only from safetensors, no remote code unless ``trust_remote_code=True``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from obliviate.inference.wrapper_file import WRAPPER_FILE, load_wrapper
from obliviate.models.fingerprint import model_fingerprint

__all__ = ["load_model", "load_tokenizer", "model_fingerprint"]


def _check_local(path: str) -> None:
    p = Path(path)
    looks_local = (
        path.startswith((".", "/", "~")) or p.exists() or (os.sep in path and path.count("/") > 1)
    )
    if looks_local and not p.is_dir():
        raise FileNotFoundError(
            f"model path {path!r} does not exist or is not a folder; give a folder written by "
            "save_pretrained (with config.json) or a hub name such as 'meta-llama/Llama-3.2-1B'"
        )
    markers = ("config.json", "adapter_config.json", WRAPPER_FILE)
    if p.is_dir() and not any((p / m).exists() for m in markers):
        raise FileNotFoundError(
            f"{path!r} holds no config.json or adapter_config.json: is it a save_pretrained folder?"
        )


def load_tokenizer(path: str, trust_remote_code: bool = False) -> Any:
    """Load a tokenizer and make sure it has a pad token (pad = EOS when missing).

    Attention masks never come from token identity (docs/metrics.md), so pad = EOS is safe.
    """
    from transformers import AutoTokenizer

    _check_local(path)
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
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

    _check_local(path)
    torch_dtype = getattr(torch, dtype) if dtype else torch.float32
    if Path(path, WRAPPER_FILE).exists():
        return load_wrapper(path)
    if Path(path, "adapter_config.json").exists():
        from obliviate.models.adapters import load_adapter

        model = load_adapter(path, torch_dtype, trust_remote_code)
    else:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=torch_dtype, use_safetensors=True, trust_remote_code=trust_remote_code
        )
    if device:
        model.to(device)
    model.eval()
    return model
