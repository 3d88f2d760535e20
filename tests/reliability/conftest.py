"""Fixtures of the reliability suite (helpers are in trust_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _own_fingerprint_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test gets its own obliviate cache folder and an empty in-process hash cache."""
    from obliviate.models.fingerprint import clear_memory_cache

    monkeypatch.setenv("OBLIVIATE_CACHE", str(tmp_path / "obliviate-cache"))
    clear_memory_cache()
    yield
    clear_memory_cache()
