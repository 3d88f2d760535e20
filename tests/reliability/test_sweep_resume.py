"""A sweep killed with SIGKILL in the middle of a trial and started again continues from its
finished trials: the dead process's RUNNING trial is failed and retried with the same
parameters, finished trials are not run again, and the study ends with the requested number
of finished trials (docs/sweep.md, "Resuming and parallel processes")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
SCRIPT = """
import json, sys
from obliviate import api
s = json.loads(sys.argv[1])
res = api.sweep(s["target"], "graddiff", s["out"], retain_model=s["retain"], trials=s["trials"],
    sampler="random", space=["train.lr=1e-4:1e-3:log"], default_space=False,
    overrides={"train": {"max_steps": 1}}, eval_settings={"generate": False},
    builtin=s["builtin"], split=s["split"], progress=False, log=None)
print(json.dumps(res.summary["counts"]))
"""


def sweep(settings: dict, kill: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    env.pop("OBLIVIATE_KILL_AT", None)
    if kill:
        env["OBLIVIATE_KILL_AT"] = kill
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(settings)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
def test_a_sweep_killed_mid_trial_resumes_from_its_finished_trials(
    tiny_models: dict, tmp_path: Path
) -> None:
    import optuna

    out = tmp_path / "study"
    settings = {
        "target": tiny_models["target"],
        "retain": tiny_models["retain"],
        "builtin": tiny_models["builtin"],
        "split": tiny_models["split"],
        "out": str(out),
        "trials": 3,
    }
    first = sweep(settings, kill="trial:1")  # after trial 1's unlearning, before its evaluation
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    study = optuna.load_study(study_name="sweep", storage=f"sqlite:///{out / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "RUNNING"]
    assert (out / "trials" / "0001" / "model").is_dir()  # the killed trial's run, unfinished
    assert not (out / "trials" / "0001" / "stage.json").exists()
    done_at = (out / "trials" / "0000" / "metrics.json").stat().st_mtime_ns

    second = sweep(settings)
    assert second.returncode == 0, second.stderr[-2000:]
    assert json.loads(second.stdout.splitlines()[-1]) == {"COMPLETE": 3, "FAIL": 1}
    summary = json.loads((out / "summary.json").read_text())
    trials = {t["number"]: t for t in summary["trials"]}
    assert [trials[n]["state"] for n in range(4)] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[2]["retry_of"] == 1 and trials[2]["params"] == trials[1]["params"]
    assert (out / "trials" / "0000" / "metrics.json").stat().st_mtime_ns == done_at  # not rerun
    assert all((out / "trials" / f"{n:04d}" / "stage.json").is_file() for n in (0, 2, 3))
    assert summary["selected"] and (out / "summary.md").is_file()

    third = sweep(settings)  # nothing left to do: the same study, no new trial
    assert third.returncode == 0, third.stderr[-2000:]
    assert json.loads(third.stdout.splitlines()[-1]) == {"COMPLETE": 3, "FAIL": 1}
