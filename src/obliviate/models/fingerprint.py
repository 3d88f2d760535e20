"""Content fingerprints of models and tokenizers: the ``model`` field of every evaluation key
(docs/metrics.md, docs/run-format.md).

Every byte counts. A model folder's fingerprint is the sha256 of the sha256 of every file that
defines the model: ``config.json``, every weight file (``*.safetensors``, sharded or not, their
index, PEFT adapter files), the tokenizer files (``tokenizer.json``, ``tokenizer.model``,
``tokenizer_config.json``, ``special_tokens_map.json``, ``vocab``/``merges`` files, the chat
template) and an inference wrapper's file; a PEFT adapter adds its base model's fingerprint. An
edit of one element of one middle-layer tensor changes it.

Hashing stays fast through a per-file cache keyed by (absolute path, size, mtime_ns, inode): an
in-process dict plus a JSON file under the obliviate cache folder (:func:`obliviate.cache.
cache_root`), written atomically. A file modified less than :data:`RACY_S` seconds before it was
hashed is never cached (a rewrite within the file system's timestamp granularity could keep its
mtime), as git does for its index.

An in-memory model's fingerprint hashes all bytes of every parameter and buffer (with names,
dtypes and shapes), plus the tokenizer's content when one is given.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

FILE_CACHE = "fingerprints.json"
RACY_S = 2.0  # files changed this recently are re-hashed every time
CHUNK = 1 << 22
_SKIP_SUFFIXES = (".md", ".tmp", ".lock", ".png", ".jpg")
_memory: dict[str, str] = {}
_disk_loaded: set[str] = set()


def cache_file() -> Path:
    """The on-disk per-file hash cache (``obliviate clean --fingerprints`` removes it)."""
    from obliviate.cache import cache_root

    return cache_root() / FILE_CACHE


def _file_key(path: Path, st: os.stat_result) -> str:
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"


def _load_disk_cache() -> None:
    where = str(cache_file())
    if where in _disk_loaded:
        return
    _disk_loaded.add(where)
    try:
        with open(where, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return  # no cache yet, or a damaged one: everything is re-hashed
    if isinstance(data, dict):
        _memory.update({k: v for k, v in data.items() if isinstance(v, str)})


def _save_disk_cache() -> None:
    from obliviate.io import atomic_write_text

    with contextlib.suppress(OSError):  # a read-only cache folder only costs speed
        atomic_write_text(cache_file(), json.dumps(_memory, sort_keys=True))


def file_hash(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, streamed; cached by (path, size, mtime_ns, inode)."""
    p = Path(path)
    _load_disk_cache()
    st = p.stat()
    key = _file_key(p, st)
    if key in _memory:
        return _memory[key]
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    if time.time() - st.st_mtime_ns / 1e9 >= RACY_S:
        _memory[key] = digest
        _save_disk_cache()
    return digest


def clear_memory_cache() -> None:
    """Forget the in-process cache (tests; the on-disk file is re-read on the next call)."""
    _memory.clear()
    _disk_loaded.clear()


def model_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The files of a model folder that define the model: every regular top-level file except
    documentation, images and temporary files (sub-folders such as ``evals/`` are caches)."""
    out = []
    for f in sorted(Path(folder).iterdir()):
        if f.name.startswith(".") or not f.is_file() or f.name.endswith(_SKIP_SUFFIXES):
            continue
        out.append(f)
    return out


def folder_fingerprint(folder: str | os.PathLike[str]) -> str:
    """The fingerprint of a model (or adapter, or wrapper) folder: see the module docstring."""
    h = hashlib.sha256()
    files = model_files(folder)
    for f in files:
        h.update(f"{f.name}\0{file_hash(f)}\n".encode())
    if (Path(folder) / "adapter_config.json").is_file():
        from obliviate.models.adapters import adapter_base

        base = adapter_base(folder)
        h.update(f"base\0{model_fingerprint(base) if Path(base).is_dir() else base}".encode())
    return "sha256:" + h.hexdigest()[:16]


def _hub_folder(name: str) -> str | None:
    """The local snapshot of a hub model when it is in the hub cache, else None."""
    try:
        from huggingface_hub import snapshot_download

        return str(snapshot_download(name, local_files_only=True))
    except Exception:  # any failure: not downloaded, or not a hub name
        return None


def tensor_bytes(t: Any) -> bytes:
    """All bytes of a tensor, whatever its dtype (bfloat16 included)."""
    import torch

    flat = t.detach().to("cpu").contiguous().reshape(-1)
    if flat.numel() == 0:
        return b""
    return flat.view(torch.uint8).numpy().tobytes()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """The content of a tokenizer: its full serialisation when it has one (fast tokenizers:
    model, merges, normaliser, pre-tokeniser), the vocabulary, the special tokens, the chat
    template and the padding/truncation sides."""
    h = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "to_str"):
        h.update(backend.to_str().encode())
    if hasattr(tokenizer, "get_vocab"):
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    extra = {
        "special": [str(t) for t in getattr(tokenizer, "all_special_tokens", [])],
        "chat_template": getattr(tokenizer, "chat_template", None),
        "padding_side": getattr(tokenizer, "padding_side", None),
        "truncation_side": getattr(tokenizer, "truncation_side", None),
        "bos": getattr(tokenizer, "add_bos_token", None),
        "eos": getattr(tokenizer, "add_eos_token", None),
    }
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return "sha256:" + h.hexdigest()[:16]


def module_fingerprint(model: Any, tokenizer: Any = None) -> str:
    """All bytes of every parameter and buffer (name, dtype, shape, values), plus the
    tokenizer's content when given."""
    import torch

    h = hashlib.sha256()
    with torch.no_grad():
        tensors = list(model.named_parameters()) + list(model.named_buffers())
        for name, t in tensors:
            h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\n".encode())
            h.update(tensor_bytes(t))
    if tokenizer is not None:
        h.update(tokenizer_fingerprint(tokenizer).encode())
    return "sha256:" + h.hexdigest()[:16]


def model_fingerprint(model_or_path: Any, tokenizer: Any = None) -> str:
    """A content fingerprint used to key cached results (docs/metrics.md): of a model folder,
    a hub name (its cached snapshot; the bare name when not downloaded), an in-memory model
    (with ``tokenizer``'s content when given) or a wrapper with its own ``fingerprint()``."""
    if hasattr(model_or_path, "fingerprint") and callable(model_or_path.fingerprint):
        fp = str(model_or_path.fingerprint())
        if tokenizer is None:
            return fp
        h = hashlib.sha256(f"{fp}\0{tokenizer_fingerprint(tokenizer)}".encode())
        return "sha256:" + h.hexdigest()[:16]
    if isinstance(model_or_path, (str, os.PathLike)):
        path = str(model_or_path)
        if not Path(path).is_dir():
            local = _hub_folder(path)
            if local is None:
                return "hub:" + path
            path = local
        fp = folder_fingerprint(path)
        if tokenizer is not None and not isinstance(tokenizer, (str, os.PathLike)):
            h = hashlib.sha256(f"{fp}\0{tokenizer_fingerprint(tokenizer)}".encode())
            fp = "sha256:" + h.hexdigest()[:16]
        return fp
    return module_fingerprint(model_or_path, tokenizer)
