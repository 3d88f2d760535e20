"""Load any ``AutoModelForCausalLM`` + tokenizer by hub name or local path, safely.

Safe by default: weights only from safetensors, no remote code unless ``trust_remote_code=True``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from obliviate.inference.wrapper_file import WRAPPER_FILE, load_wrapper
from obliviate.models.locate import check_model_path, explain_remote_code


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
    """Load a causal LM (or a PEFT adapter folder on top of its base) from ``path``.

    ``dtype``: "float32" (default on CPU), "bfloat16" or "float16".
    """
    import torch
    from transformers import AutoModelForCausalLM

    _check_local(path, trust_remote_code)
    torch_dtype = getattr(torch, dtype) if dtype else torch.float32
    if Path(path, WRAPPER_FILE).exists():
        return load_wrapper(path)
    auto: Any = AutoModelForCausalLM
    if Path(path, "adapter_config.json").exists():
        from peft import AutoPeftModelForCausalLM

        auto = AutoPeftModelForCausalLM
    try:
        model = auto.from_pretrained(
            path, dtype=torch_dtype, use_safetensors=True, trust_remote_code=trust_remote_code
        )
    except ValueError as exc:
        raise explain_remote_code(exc, path) from exc
    if device:
        model.to(device)
    model.eval()
    return model


def model_fingerprint(model_or_path: Any) -> str:
    """A cheap, content-based fingerprint used to key cached results (docs/metrics.md).

    For a folder: sha256 over config.json and every weight file's size, head and tail (1 MiB each).
    For an in-memory model: sha256 over a strided sample of every parameter's values (or the
    model's own ``fingerprint()`` when it has one, e.g. an inference wrapper).
    """
    if hasattr(model_or_path, "fingerprint") and callable(model_or_path.fingerprint):
        return str(model_or_path.fingerprint())
    h = hashlib.sha256()
    if isinstance(model_or_path, (str, os.PathLike)):
        folder = Path(model_or_path)
        for f in sorted(folder.glob("*.json")) + sorted(folder.glob("*.safetensors")):
            h.update(f.name.encode())
            size = f.stat().st_size
            h.update(str(size).encode())
            with open(f, "rb") as fh:
                h.update(fh.read(1 << 20))
                if size > 2 << 20:
                    fh.seek(-(1 << 20), os.SEEK_END)
                    h.update(fh.read())
        return "sha256:" + h.hexdigest()[:16]
    import torch

    with torch.no_grad():
        for name, p in model_or_path.named_parameters():
            flat = p.detach().reshape(-1)
            step = max(1, flat.numel() // 4096)
            h.update(name.encode())
            h.update(flat[::step].float().cpu().numpy().tobytes())
    return "sha256:" + h.hexdigest()[:16]
