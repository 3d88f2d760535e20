"""Overwrite protection: a run folder is never overwritten by accident, never mixed with an
older run's files, the input model's folder is never written to, and `obliviate clean`
removes caches only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from trust_helpers import copy_run, own_fingerprint_cache  # noqa: F401 (autouse)

from obliviate import api
from obliviate.cli import main

FAST = {"generate": False, "batch_size": 64}
TINY_GA = ["--method", "ga", "--set", "train.epochs=1", "--set", "train.max_steps=1"]


def _unlearn_args(model: str | Path, out: Path) -> list[str]:
    return ["unlearn", "--model", str(model), "--out", str(out), *TINY_GA, "--people", "20"]


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_unlearn_into_the_input_run_folder_is_refused(
    tiny_models: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(tiny_models["target"], tmp_path / "target")
    before = _tree(run)
    for out in (run, run / "model", run / "model" / "sub", run / "sub"):
        for extra in ([], ["--overwrite"]):
            assert main(_unlearn_args(run, out) + ["--no-progress", *extra]) == 2
            err = capsys.readouterr().err
            assert "input model" in err and "Traceback" not in err
    assert _tree(run) == before  # nothing written, nothing removed


def test_out_holding_another_run_is_refused(
    tiny_models: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = copy_run(tiny_models["retain"], tmp_path / "other")
    (other / "config.yaml").write_text("command: finetune\n")
    before = _tree(other)
    assert main(_unlearn_args(tiny_models["target"], other) + ["--no-progress"]) == 2
    err = capsys.readouterr().err
    assert str(other) in err and "--overwrite" in err
    assert _tree(other) == before
    code = main(
        ["finetune", "--out", str(other), "--people", "20", "--size", "xs", "--no-progress"]
    )
    assert code == 2 and "--overwrite" in capsys.readouterr().err
    assert _tree(other) == before


def test_overwrite_removes_every_stale_file(
    tiny_models: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "npo"
    assert main(_unlearn_args(tiny_models["target"], out) + ["--no-progress"]) == 0
    api.evaluate(
        str(out),
        data="builtin",
        builtin={"n_people": 20},
        settings=FAST,
        out=out,
        progress=False,
    )
    assert (out / "metrics.json").is_file() and (out / "samples.jsonl").is_file()
    for stale in ("report.html", "grid_before.png"):
        (out / stale).write_text("old")
    (out / "evals" / "old").mkdir(parents=True)
    (out / "model" / "old-shard.safetensors").write_text("old")
    assert main(_unlearn_args(tiny_models["target"], out) + ["--no-progress", "--overwrite"]) == 0
    left = sorted(p.name for p in out.iterdir())
    assert left == ["config.yaml", "method.json", "model", "train_log.jsonl"], left
    assert not (out / "model" / "old-shard.safetensors").exists()


def test_eval_out_holding_another_models_evaluation_is_refused(
    tiny_models: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    kw = {"data": "builtin", "builtin": {"n_people": 20}, "settings": FAST, "progress": False}
    api.evaluate(tiny_models["target"], out=out, **kw)  # type: ignore[arg-type]
    first = (out / "metrics.json").read_bytes()
    with pytest.raises(ValueError, match=r"another model.*--overwrite"):
        api.evaluate(tiny_models["retain"], out=out, **kw)  # type: ignore[arg-type]
    assert (out / "metrics.json").read_bytes() == first
    # a run folder holding its own model: evaluating another model into it is refused
    run = copy_run(tiny_models["retain"], tmp_path / "run")
    with pytest.raises(ValueError, match="holds the model of another run"):
        api.evaluate(tiny_models["target"], out=run, overwrite=True, **kw)  # type: ignore[arg-type]
    res = api.evaluate(tiny_models["retain"], out=out, overwrite=True, **kw)  # type: ignore[arg-type]
    info = json.loads((out / "metrics.json").read_text())
    assert info["model"]["fingerprint"] == res.key["model"]


def test_clean_removes_caches_only(
    tiny_models: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from obliviate.models.fingerprint import cache_file, model_fingerprint

    retain = copy_run(tiny_models["retain"], tmp_path / "retain")
    target = copy_run(tiny_models["target"], tmp_path / "target")
    api.evaluate(
        str(target),
        retain_model=str(retain),
        data="builtin",
        builtin={"n_people": 20},
        settings=FAST,
        out=target,
        progress=False,
    )
    assert (retain / "evals").is_dir()  # the retain cache lives inside the retain run
    (target / "checkpoint").mkdir()
    (target / "checkpoint" / "state.pt").write_bytes(b"x" * 100)
    import os
    import time

    old = time.time() - 60
    for f in (retain / "model").iterdir():
        os.utime(f, (old, old))
    model_fingerprint(retain / "model")
    assert cache_file().is_file()
    keep = {p for p in _tree(target) if not p.startswith("checkpoint")}
    assert main(["clean", str(tmp_path), "--fingerprints"]) == 0
    out = capsys.readouterr().out
    assert "evals" in out and "checkpoint" in out and "fingerprints.json" in out
    assert not (retain / "evals").exists() and not (target / "checkpoint").exists()
    assert not cache_file().exists()
    assert set(_tree(target)) == keep  # model, metrics, samples stay
    assert main(["clean", str(tmp_path / "missing")]) == 2


def test_bare_retain_model_caches_inside_its_folder(tiny_models: dict, tmp_path: Path) -> None:
    import shutil

    bare = tmp_path / "models" / "retain-bare"
    shutil.copytree(tiny_models["retain"], bare)
    api.evaluate(
        tiny_models["target"],
        retain_model=str(bare),
        data="builtin",
        builtin={"n_people": 20},
        settings=FAST,
        progress=False,
    )
    assert (bare / "evals").is_dir()
    assert not (tmp_path / "models" / "evals").exists()  # never beside it, outside its tree
