"""The tuned leaderboard seeds each method's sampler differently and reproducibly."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import pytest

from obliviate.recipes import tuned


def test_sampler_seed_is_per_method_and_stable() -> None:
    assert tuned.sampler_seed("npo") == zlib.crc32(b"npo") % 2**31 == tuned.sampler_seed("npo")
    seeds = {m: tuned.sampler_seed(m) for m in ("graddiff", "npo", "ga_kl", "simnpo")}
    assert len(set(seeds.values())) == 4


def test_tune_methods_hands_each_sweep_its_own_seed(tmp_path: Path, monkeypatch) -> None:
    import obliviate.sweep.study as study

    seen: dict[str, int] = {}

    def fake_sweep(model: str, method: str, **kw: Any) -> Any:
        seen[method] = kw["seed"]
        raise RuntimeError("stop here")

    monkeypatch.setattr(study, "sweep", fake_sweep)
    for method in ("graddiff", "npo"):
        with pytest.raises(RuntimeError, match="stop here"):
            tuned.tune_methods(
                tmp_path, [method], "t", "r", 2, "oracle", {}, {}, None, 1, False, None
            )
    assert seen == {m: tuned.sampler_seed(m) for m in ("graddiff", "npo")}
