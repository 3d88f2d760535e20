"""`obliviate benchmark --tuned N` (obliviate.recipes.tuned): each method also at the setting
its sweep selects, on the trained tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest

from obliviate.io import read_json

FAST = {"train": {"max_steps": 2}}
NO_GEN = {"generate": False}


@pytest.mark.slow
def test_tuned_rows_are_the_selected_trials(tiny_models: dict, tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    from obliviate.recipes.tofu import comparison_markdown, run_benchmark
    from obliviate.reporting import write_report

    out = tmp_path / "bench"
    kw = {
        "methods": ("graddiff",),
        "split": tiny_models["split"],
        "target": tiny_models["target"],
        "retain": tiny_models["retain"],
        "builtin": tiny_models["builtin"],
        "method_overrides": {"graddiff": FAST},
        "eval_settings": NO_GEN,
        "progress": False,
        "log": None,
        "tuned": 2,
    }
    doc = run_benchmark(out, **kw)
    summary = read_json(out / "tuned" / "graddiff" / "summary.json")
    assert summary["counts"] == {"COMPLETE": 2}
    trial = next(t for t in summary["trials"] if t["number"] == summary["selected"][0])
    pick = doc["tuned"]["methods"]["graddiff"]
    assert doc["tuned"]["trials"] == 2 and doc["tuned"]["objective"] == "oracle"
    assert pick["trial"] == trial["number"] and pick["params"] == trial["params"]
    assert "train.lr" in pick["params"] and "train.max_steps" not in pick["params"]  # fixed
    rows = {r["name"]: r for r in doc["rows"]}
    # the first trial is the preset (the fixed max_steps included), so it repeats the preset row
    first = summary["trials"][0]
    assert first["params"] == {"train.lr": 5.1e-4, "train.epochs": 28, "alpha": 8.8}
    assert first["metrics"]["forget_prob"] == pytest.approx(rows["graddiff"]["forget_prob"])
    assert trial["values"][0] >= first["values"][0]  # oracle: forget quality, maximised
    assert pick["run"] == f"tuned/graddiff/trials/{trial['number']:04d}"
    assert set(rows) == {"retain", "target", "graddiff", pick["run"]}
    assert rows[pick["run"]]["forget_prob"] == pytest.approx(trial["metrics"]["forget_prob"])
    assert rows[pick["run"]]["forget_quality"] == pytest.approx(trial["metrics"]["forget_quality"])
    assert "- graddiff" in comparison_markdown(doc) and pick["run"] in comparison_markdown(doc)
    # the oracle-free selection among the same trials, rescored from their kept metrics
    other = pick["compare"]
    assert doc["tuned"]["compare"] == "mia" and other["objective"] == "mia"
    mia_trial = next(t for t in summary["trials"] if t["number"] == other["trial"])
    assert other["metrics"] == mia_trial["metrics"] and other["params"] == mia_trial["params"]
    assert "Selected by oracle and by mia" in comparison_markdown(doc)
    assert write_report([out]).is_file()  # the group's report reads the nested run folder
    again = run_benchmark(out, **kw)  # finished: nothing re-runs, the same table
    assert again["rows"] == doc["rows"]
    assert read_json(out / "tuned" / "graddiff" / "summary.json")["counts"] == {"COMPLETE": 2}
