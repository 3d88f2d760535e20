"""perf/tuned_goal.py: leaderboards of one target split over several folders are merged, and
folders of different targets, retain models or trial budgets are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from perf_scripts import load_perf_script  # tests/unit/perf_scripts.py


def _row(name: str, fq: float, mu: float, rp: float) -> dict:
    return {"name": name, "forget_quality": fq, "model_utility": mu, "retain_prob": rp}


def _folder(root: Path, methods: list[str], target_mu: float = 0.5, trials: int = 3) -> Path:
    rows = [_row("target", 1e-9, target_mu, 0.9), _row("retain", 1.0, 0.55, 0.92)]
    rows += [_row(m, 1e-3, 0.5, 0.85) for m in methods]
    picks = {m: {"trial": 1, "feasible": True, "params": {}, "metrics": rows[-1]} for m in methods}
    doc = {"rows": rows, "tuned": {"trials": trials, "objective": "oracle", "methods": picks}}
    root.mkdir()
    (root / "comparison.json").write_text(json.dumps(doc))
    return root


def test_folders_of_one_leaderboard_merge(tmp_path: Path) -> None:
    mod = load_perf_script("tuned_goal")
    a = _folder(tmp_path / "a", ["graddiff", "npo"])
    b = _folder(tmp_path / "b", ["pdu"])
    tuned, rows, folder = mod.load([a, b])
    assert list(tuned["methods"]) == ["graddiff", "npo", "pdu"]
    assert folder == {"graddiff": a, "npo": a, "pdu": b}
    assert set(rows) == {"target", "retain", "graddiff", "npo", "pdu"}
    assert tuned["trials"] == 3 and tuned["objective"] == "oracle"


def test_folders_of_another_target_or_budget_are_refused(tmp_path: Path) -> None:
    mod = load_perf_script("tuned_goal")
    a = _folder(tmp_path / "a", ["graddiff"])
    other_target = _folder(tmp_path / "b", ["npo"], target_mu=0.6)
    other_budget = _folder(tmp_path / "c", ["npo"], trials=4)
    for folder in (other_target, other_budget):
        with pytest.raises(SystemExit, match="another target, retain model or trial budget"):
            mod.load([a, folder])
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "comparison.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(SystemExit, match="not a tuned leaderboard"):
        mod.load([tmp_path / "d"])
    with pytest.raises(SystemExit, match=r"no comparison\.json"):
        mod.load([a, tmp_path / "missing"])
