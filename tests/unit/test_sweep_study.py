"""The study machinery of `obliviate sweep` without training: failing the trials of dead
processes and retrying them, the model scale, the flat metrics, the trial cache."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from obliviate.sweep.study import _fail_dead_trials, flat_metrics, model_scale, retry_trial
from obliviate.sweep.trial import _finished_with

optuna.logging.set_verbosity(optuna.logging.WARNING)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def running(study: optuna.Study, pid: int, host: str) -> optuna.Trial:
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.set_user_attr("pid", pid)
    trial.set_user_attr("host", host)
    return trial


def test_running_trials_of_dead_local_processes_are_failed_and_retried() -> None:
    study = optuna.create_study()
    host = socket.gethostname()
    dead = running(study, dead_pid(), host)
    alive = running(study, os.getppid(), host)  # a live process (pytest's parent)
    mine = running(study, os.getpid(), host)
    remote = running(study, dead_pid(), "another-machine")  # left to the heartbeat check
    _fail_dead_trials(optuna, study, study._storage)
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL", "RUNNING", "RUNNING", "RUNNING", "WAITING"]
    retried = study.trials[4]
    assert retried.params == {"x": dead.params["x"]}
    assert retried.system_attrs["failed_trial"] == dead.number
    assert {t.number for t in (alive, mine, remote)} == {1, 2, 3}


def test_a_trial_is_retried_at_most_twice() -> None:
    study = optuna.create_study()
    t = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study.tell(t, state=optuna.trial.TrialState.FAIL)
    retry_trial(study, study.trials[0])  # first retry: trial 1
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # trial 1 fails too
    retry_trial(study, study.trials[1])  # second retry: trial 2
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    retry_trial(study, study.trials[2])  # no third
    assert len(study.trials) == 3
    assert study.trials[2].system_attrs["retry_history"] == [0, 1]
    assert study.trials[2].system_attrs["failed_trial"] == 0
    assert study.trials[2].params == study.trials[0].params


def test_model_scale_reads_the_run_config(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    assert model_scale(str(tmp_path / "model")) == "real"
    (tmp_path / "config.yaml").write_text("command: finetune\nmodel: tiny-llama-xs\n")
    assert model_scale(str(tmp_path / "model")) == "tiny"


def test_flat_metrics_add_the_holdout_probability() -> None:
    metrics = {"forget_prob": {"value": 0.4, "direction": "lower"}, "privleak": {"value": None}}
    samples = [
        {"split": "holdout", "prob": 0.2},
        {"split": "holdout", "prob": 0.1},
        {"split": "forget", "prob": 0.9},
    ]
    flat = flat_metrics(metrics, samples)
    assert flat == {"forget_prob": 0.4, "privleak": None, "holdout_prob": pytest.approx(0.15)}
    assert "holdout_prob" not in flat_metrics(metrics, samples[2:])


def test_the_trial_cache_finds_only_finished_trials_with_the_same_configuration(
    tmp_path: Path,
) -> None:
    trials = tmp_path / "trials"
    assert _finished_with(trials, "sha256:a") is None
    for name, fp, finished in (("0000", "sha256:a", False), ("0001", "sha256:a", True)):
        d = trials / name
        d.mkdir(parents=True)
        (d / "stage.json").write_text(json.dumps({"fingerprint": fp}))
        if finished:
            (d / "metrics.json").write_text("{}")
            (d / "samples.jsonl").write_text("")
    assert _finished_with(trials, "sha256:a") == trials / "0001"
    assert _finished_with(trials, "sha256:b") is None
