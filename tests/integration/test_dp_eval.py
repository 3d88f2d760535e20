"""Data-parallel evaluation (obliviate.parallel_eval) with 2 gloo processes on CPU (torchrun)
against one process on the session's tiny models: `obliviate eval` on TOFU with generation
(ROUGE) and the retain model's reference, the API on builtin-wmdp (multiple choice) inside
``data_parallel()``, and an evaluation rank 0 runs alone while a process group exists (the
default mode: it must not wait for the other rank). Every per-sample value within 1e-6, every
aggregate the same to 6 significant figures, only rank 0 writes and prints
(docs/scale-out.md). About 2-3 minutes on 2 idle CPU cores besides the session's tiny models."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from torchrun_launch import launch, worker_env  # tests/integration/torchrun_launch.py

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("dp_eval_worker.py")
SAMPLE_TOL = 1e-6
TIMEOUT = 900  # s per launch: generous, the shared CPU machines are often several times slower


def _single(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, str(WORKER), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=worker_env(),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]


def _launch(args: list[str]) -> None:
    launch(WORKER, args, timeout=TIMEOUT)


def _same_samples(one: list[dict[str, Any]], two: list[dict[str, Any]]) -> None:
    assert len(one) == len(two) > 0
    for a, b in zip(one, two):
        assert a.keys() == b.keys()
        for k, v in a.items():
            if isinstance(v, float) and not isinstance(v, bool):
                assert isinstance(b[k], float), (k, b[k])
                assert (math.isnan(v) and math.isnan(b[k])) or abs(v - b[k]) <= SAMPLE_TOL, (
                    a["split"],
                    a.get("index"),
                    k,
                    v,
                    b[k],
                )
            else:
                assert v == b[k], (a.get("split"), a.get("index"), k)


def _same_metrics(one: dict[str, Any], two: dict[str, Any]) -> None:
    assert one.keys() == two.keys() and one
    for k in one:
        assert f"{one[k]['value']:.6g}" == f"{two[k]['value']:.6g}", k


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def tofu(tiny_models: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`obliviate eval` in one process and under torchrun, generation on, retain reference
    recomputed by both (--no-reuse)."""
    args = ["eval", "--model", tiny_models["target"], "--retain-model", tiny_models["retain"]]
    args += ["--split", tiny_models["split"], "--people", str(tiny_models["builtin"]["n_people"])]
    args += ["--no-reuse", "--no-progress", "--set", "max_new_tokens=40"]
    folders = {}
    for name, run in (("one", _single), ("two", _launch)):
        work = tmp_path_factory.mktemp(f"dp_{name}")
        run(["cli", str(work), *args, "--out", str(work / "eval")])
        folders[name] = work
    return folders


def test_tofu_eval_two_processes_equals_one(tofu: dict[str, Path]) -> None:
    one, two = (tofu[k] / "eval" for k in ("one", "two"))
    s1, s2 = _read_jsonl(one / "samples.jsonl"), _read_jsonl(two / "samples.jsonl")
    assert any(r.get("generation") for r in s1)  # generation ran: ROUGE is compared
    assert any("rouge_l_recall" in r for r in s1)
    _same_samples(s1, s2)
    m1 = json.loads((one / "metrics.json").read_text())
    m2 = json.loads((two / "metrics.json").read_text())
    _same_metrics(m1["metrics"], m2["metrics"])
    for name in ("forget_rouge", "forget_quality", "model_utility", "mia_min_k_auc"):
        assert name in m1["metrics"]
    assert m1["unavailable"] == m2["unavailable"]
    assert m1["eval_key"] == m2["eval_key"]


def test_only_rank0_writes_and_prints(tofu: dict[str, Path]) -> None:
    two = tofu["two"]
    writes0 = json.loads((two / "writes-0.json").read_text())
    assert json.loads((two / "writes-1.json").read_text()) == []
    assert str(two / "eval") in writes0  # the evaluation
    assert any(Path(w).parent.name == "evals" for w in writes0)  # the retain model's cache
    assert (two / "stdout-1.txt").read_text() == ""
    printed = (two / "stdout-0.txt").read_text()
    assert "forget_quality" in printed
    assert printed == (tofu["one"] / "stdout-0.txt").read_text()
    assert not list((two / "eval").rglob("*.tmp"))


@pytest.fixture(scope="module")
def api_runs(tiny_models: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    args = [tiny_models["target"], tiny_models["retain"], json.dumps(tiny_models["builtin"])]
    folders = {}
    for name, run in (("one", _single), ("two", _launch)):
        work = tmp_path_factory.mktemp(f"dp_api_{name}")
        run(["api", str(work), *args])
        folders[name] = work
    return folders


def test_api_mcq_two_processes_equals_one(api_runs: dict[str, Path]) -> None:
    one = json.loads((api_runs["one"] / "api.json").read_text())["mcq"]
    two = json.loads((api_runs["two"] / "api.json").read_text())["mcq"]
    assert any(k.endswith("_accuracy") for k in one["metrics"])
    _same_samples(one["samples"], two["samples"])
    _same_metrics(one["metrics"], two["metrics"])
    writes = [json.loads((api_runs["two"] / f"writes-{r}.json").read_text()) for r in (0, 1)]
    assert writes[0] and writes[1] == []


def test_rank0_alone_does_not_wait_for_the_others(api_runs: dict[str, Path]) -> None:
    """The default mode inside a process group: rank 0 evaluated alone, finished (the launch
    ended with status 0 within its timeout) and got the one-process values."""
    one = json.loads((api_runs["one"] / "api.json").read_text())["alone"]
    two = json.loads((api_runs["two"] / "api.json").read_text())["alone"]
    assert "forget_quality" in one["metrics"]
    _same_samples(one["samples"], two["samples"])
    _same_metrics(one["metrics"], two["metrics"])
