"""Helpers of the reliability suite: copies of the session's tiny models as run folders, an
edit of one element of a tensor stored in the middle of a safetensors file, and an autouse
fixture (import it into a test module) giving each test its own obliviate cache folder."""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def own_fingerprint_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test gets its own obliviate cache folder and an empty in-process hash cache."""
    monkeypatch.setenv("OBLIVIATE_CACHE", str(tmp_path / "obliviate-cache"))
    try:
        from obliviate.models.fingerprint import clear_memory_cache
    except ImportError:  # code without a fingerprint cache: nothing to clear
        yield
        return
    clear_memory_cache()
    yield
    clear_memory_cache()


def copy_run(model_dir: str, run: Path) -> Path:
    """A run folder ``run`` holding a copy of ``model_dir`` as ``run/model``."""
    shutil.copytree(model_dir, run / "model")
    return run


def middle_tensor(weights: Path) -> str:
    """The tensor whose bytes lie nearest the middle of a safetensors file (well away from its
    first and last MiB)."""
    with open(weights, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    size = weights.stat().st_size
    best, dist = "", float("inf")
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = (8 + n + o for o in spec["data_offsets"])
        d = abs((start + end) / 2 - size / 2)
        if start > (1 << 20) and end < size - (1 << 20) and d < dist:
            best, dist = name, d
    assert best, f"{weights}: no tensor lies between the first and last MiB"
    return best


def edit_middle_weight(model_dir: str | Path, delta: float = 0.5) -> str:
    """Add ``delta`` to ONE element (not the first) of the middle tensor of ``model.safetensors``
    and rewrite the file; returns the tensor's name."""
    from safetensors.torch import load_file, save_file

    weights = Path(model_dir) / "model.safetensors"
    name = middle_tensor(weights)
    tensors = load_file(str(weights))
    flat = tensors[name].view(-1)
    flat[flat.numel() // 2 + 1] += delta
    save_file(tensors, str(weights), metadata={"format": "pt"})
    return name
