"""Where obliviate keeps caches that belong to no run folder: ``$OBLIVIATE_CACHE`` or
``~/.cache/obliviate`` (the built-in diffusion model, the per-file fingerprint cache of
:mod:`obliviate.models.fingerprint`). ``obliviate clean`` removes them (docs/run-format.md)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir`` when given, else ``$OBLIVIATE_CACHE``, else ``~/.cache/obliviate``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("OBLIVIATE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "obliviate"
