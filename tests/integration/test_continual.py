"""Continual unlearning end to end on the tiny models: a two-request sequence killed between
its steps, resumed, chained by fingerprint and tabulated (docs/continual.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from obliviate.models.loading import model_fingerprint
from obliviate.recipes.continual import run_continual

pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[2] / "src"
SEQUENCE = ["forget10:1/2", "forget10:2/2"]  # the tiny benchmark's 2 forget people, one each
SCRIPT = """
import json, sys
from obliviate.recipes.continual import run_continual
a = json.loads(sys.argv[1])
run_continual(a["target"], "graddiff", a["sequence"], a["out"], **a["kw"])
"""


def _kw(tiny_models) -> dict:
    return {
        "retain_model": tiny_models["retain"],
        "builtin": tiny_models["builtin"],
        "overrides": {"train": {"max_steps": 3, "lr": 1e-3}},
        "eval_settings": {"max_new_tokens": 8},
        "progress": False,
    }


def _config(run: Path) -> dict:
    return yaml.safe_load((run / "config.yaml").read_text())


def test_sequence_killed_between_steps_resumes_chained_and_tabulated(tiny_models, tmp_path):
    out = tmp_path / "seq"
    args = {"target": tiny_models["target"], "sequence": SEQUENCE, "out": str(out)}
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    env["OBLIVIATE_KILL_AT"] = "continual:1"
    first = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps({**args, "kw": _kw(tiny_models)})],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    step1, step2 = out / "01-forget10-1of2", out / "02-forget10-2of2"
    assert (step1 / "stage.json").exists() and (step1 / "model").is_dir()
    assert not step2.exists() and not (out / "continual.json").exists()
    model_file = next((step1 / "model").glob("*.safetensors"))
    mtime = model_file.stat().st_mtime_ns

    logs: list[str] = []
    doc = run_continual(
        tiny_models["target"], "graddiff", SEQUENCE, out, log=logs.append, **_kw(tiny_models)
    )
    # step 1 was reused, not retrained; step 2 ran from step 1's weights
    assert any("step 1 (forget10:1/2): reusing" in line for line in logs)
    assert model_file.stat().st_mtime_ns == mtime
    c1, c2 = _config(step1), _config(step2)
    assert c1["model_fingerprint"] == model_fingerprint(tiny_models["target"])
    assert c1["output_fingerprint"] == model_fingerprint(step1 / "model")
    assert c2["model_fingerprint"] == c1["output_fingerprint"] != c1["model_fingerprint"]
    assert c2["split"] == "forget10:2/2"

    # the table: the input model on both requests, then every request so far after each step
    assert [(r["step"], r["request"]) for r in doc["rows"]] == [
        (0, SEQUENCE[0]),
        (0, SEQUENCE[1]),
        (1, SEQUENCE[0]),
        (2, SEQUENCE[0]),
        (2, SEQUENCE[1]),
    ]
    evals = {
        (0, SEQUENCE[1]): out / "00-start" / "requests" / "02-forget10-2of2",
        (2, SEQUENCE[0]): step2 / "requests" / "01-forget10-1of2",
    }
    for (step, req), folder in evals.items():
        row = next(r for r in doc["rows"] if (r["step"], r["request"]) == (step, req))
        stored = json.loads((folder / "metrics.json").read_text())
        assert stored["split"] == req
        for key in ("forget_quality", "model_utility", "forget_prob"):
            assert row[key] == stored["metrics"][key]["value"]
    rows = {(r["step"], r["request"]): r for r in doc["rows"]}
    # unlearning request A lowers A's forget probability
    assert rows[(1, SEQUENCE[0])]["forget_prob"] < rows[(0, SEQUENCE[0])]["forget_prob"]
    text = (out / "continual.md").read_text()
    assert "| 2 | forget10:1/2, forget10:2/2 | forget10:2/2 |" in text
    assert json.loads((out / "continual.json").read_text())["rows"] == doc["rows"]

    # a finished sequence run again reuses everything; another method in the same folder is refused
    logs.clear()
    again = run_continual(
        tiny_models["target"], "graddiff", SEQUENCE, out, log=logs.append, **_kw(tiny_models)
    )
    assert again["rows"] == doc["rows"] and sum("reusing" in line for line in logs) == 2
    with pytest.raises(ValueError, match="another configuration"):
        run_continual(tiny_models["target"], "npo", SEQUENCE, out, log=None, **_kw(tiny_models))
