"""Several seeds of one method (docs/run-format.md, "Several seeds"): ``unlearn_seeds`` writes
one normal run folder per seed and an aggregate ``metrics.json`` equal to the statistics of
the per-seed files; a rerun reuses finished seeds and redoes the unfinished one."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
import yaml

from obliviate import api

FAST = {"train": {"max_steps": 2}}
NO_GEN = {"generate": False}


def _seeds(tiny_models: dict, out: Path, seeds: int = 2) -> dict:
    return api.unlearn_seeds(
        tiny_models["target"],
        "graddiff",
        out,
        seeds=seeds,
        retain_model=tiny_models["retain"],
        overrides=FAST,
        eval_settings=NO_GEN,
        builtin=tiny_models["builtin"],
        split=tiny_models["split"],
        progress=False,
        log=None,
    )


@pytest.mark.slow
def test_unlearn_seeds_layout_aggregate_and_resume(tiny_models: dict, tmp_path: Path) -> None:
    out = tmp_path / "gd"
    doc = _seeds(tiny_models, out)
    assert doc["seeds"] == [0, 1] and doc["runs"] == ["seed-0", "seed-1"]
    per_seed = []
    for s in (0, 1):
        run = out / f"seed-{s}"
        for name in ("model", "config.yaml", "metrics.json", "samples.jsonl", "stage.json"):
            assert (run / name).exists(), run / name
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        assert cfg["train"]["seed"] == s
        per_seed.append(json.loads((run / "metrics.json").read_text()))
    assert per_seed[0]["seed"] == 0 and per_seed[1]["seed"] == 1
    fps = {
        yaml.safe_load((out / f"seed-{s}" / "config.yaml").read_text())["output_fingerprint"]
        for s in (0, 1)
    }
    assert len(fps) == 2  # the seeds gave different models

    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["metrics"] == doc["metrics"] and on_disk["role"] == "unlearned"
    assert "forget_quality" in on_disk["metrics"]  # the retain model was used
    for name, m in on_disk["metrics"].items():
        values = [d["metrics"][name]["value"] for d in per_seed]
        assert m["per_seed"] == values
        finite = [v for v in values if v is not None and math.isfinite(v)]
        assert m["n"] == len(finite)
        if len(finite) == 2:
            assert m["value"] == pytest.approx(statistics.mean(finite))
            assert m["sd"] == pytest.approx(statistics.stdev(finite))
            assert m["ci_low"] == pytest.approx(min(finite))  # two seeds: their range
            assert m["ci_high"] == pytest.approx(max(finite))
        assert m["direction"] == per_seed[0]["metrics"][name]["direction"]
    from obliviate.runs import load_run

    run = load_run(out)  # reports read the aggregate like any run
    assert run.value("forget_prob") == pytest.approx(on_disk["metrics"]["forget_prob"]["value"])

    # killed after seed 1's evaluation, before it was marked finished: seed 0 is reused,
    # seed 1 is run again and gives the same numbers (seeded, CPU)
    done_at = (out / "seed-0" / "metrics.json").stat().st_mtime_ns
    (out / "seed-1" / "stage.json").unlink()
    (out / "metrics.json").unlink()
    again = _seeds(tiny_models, out)
    assert (out / "seed-0" / "metrics.json").stat().st_mtime_ns == done_at
    for name, m in doc["metrics"].items():
        assert again["metrics"][name]["per_seed"] == pytest.approx(m["per_seed"], nan_ok=True)

    # a finished multi-seed run is rerun by reusing every seed; a single run is protected
    assert _seeds(tiny_models, out)["metrics"]["forget_prob"]["value"] == pytest.approx(
        doc["metrics"]["forget_prob"]["value"]
    )
    assert (out / "seed-0" / "metrics.json").stat().st_mtime_ns == done_at
    single = tmp_path / "single"
    single.mkdir()
    (single / "config.yaml").write_text("method: npo\n")
    with pytest.raises(ValueError, match="already holds a run"):
        _seeds(tiny_models, single)


@pytest.mark.slow
def test_benchmark_with_seeds_ranks_by_the_mean(tiny_models: dict, tmp_path: Path) -> None:
    from obliviate.recipes.tofu import run_benchmark
    from obliviate.reporting import write_leaderboard, write_report

    out = tmp_path / "bench"
    doc = run_benchmark(
        out,
        methods=("graddiff",),
        split=tiny_models["split"],
        target=tiny_models["target"],
        retain=tiny_models["retain"],
        builtin=tiny_models["builtin"],
        method_overrides={"graddiff": FAST},
        eval_settings=NO_GEN,
        progress=False,
        log=None,
        seeds=2,
    )
    assert doc["rank_by"] == "forget_quality"
    assert json.loads((out / "comparison.json").read_text()) == doc
    row = next(r for r in doc["rows"] if r["name"] == "graddiff")
    agg = json.loads((out / "graddiff" / "metrics.json").read_text())
    assert row["seeds"] == [0, 1] and row["best"] is True
    assert row["forget_quality"] == agg["metrics"]["forget_quality"]["value"]
    assert row["stats"]["forget_quality"]["sd"] == agg["metrics"]["forget_quality"]["sd"]
    for s in (0, 1):
        assert (out / "graddiff" / f"seed-{s}" / "stage.json").is_file()
    assert "± " in (out / "comparison.md").read_text()
    assert write_report([out]).is_file()
    csv_text = write_leaderboard([out], out)["csv"].read_text()
    assert "forget_quality_sd" in csv_text.splitlines()[0]


@pytest.mark.slow
def test_sweep_trial_scores_the_mean_over_seeds(tiny_models: dict, tmp_path: Path) -> None:
    out = tmp_path / "study"
    res = api.sweep(
        tiny_models["target"],
        "graddiff",
        out,
        retain_model=tiny_models["retain"],
        trials=1,
        seeds=2,
        sampler="random",
        space=["train.lr=1e-4:1e-3:log"],
        default_space=False,
        overrides={"train": {"max_steps": 1}},
        eval_settings=NO_GEN,
        builtin=tiny_models["builtin"],
        split=tiny_models["split"],
        progress=False,
        log=None,
    )
    (trial,) = res.summary["trials"]
    run = out / trial["run"]
    assert trial["seeds"] == [0, 1]
    per_seed = [json.loads((run / f"seed-{s}" / "metrics.json").read_text()) for s in (0, 1)]
    for key in ("forget_prob", "forget_quality", "model_utility"):
        values = [d["metrics"][key]["value"] for d in per_seed]
        assert [m[key] for m in trial["seed_metrics"]] == pytest.approx(values)
        assert trial["metrics"][key] == pytest.approx(statistics.mean(values))
    assert trial["scores"] == [pytest.approx(trial["metrics"]["forget_quality"])]  # oracle
    assert json.loads((out / "study.json").read_text())["config"]["seeds"] == 2
