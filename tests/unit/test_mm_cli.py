"""`obliviate unlearn` and `obliviate eval` on a vision-language model and the builtin-mllmu
benchmark, end to end on a random micro LLaVA (tests/unit/mm_micro.py) saved the way
`obliviate demo --multimodal` saves its target: run folders, the built-in people found from the
model's records, the multimodal metrics, the run protections, and one-sentence errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mm_micro import micro_vlm  # tests/unit/mm_micro.py

from obliviate.cli import main

FAST = ["--set", "train.epochs=1", "--set", "train.batch_size=64", "--no-progress"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo-like folder: ``target/`` (4 + 1 people, micro) and ``models.json``."""
    from obliviate.multimodal.loading import save_vision_lm

    root = tmp_path_factory.mktemp("mm-demo")
    save_vision_lm(micro_vlm(4)["model"], root / "target")
    record = {"n_people": 4, "n_real": 1, "size": "micro", "train": {}}
    (root / "models.json").write_text(json.dumps(record))
    return root


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(code: int, err: str, *expected: str) -> None:
    assert code == 2 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for text in expected:
        assert text in lines[0], lines[0]


def test_unlearn_then_eval_writes_run_folders(
    demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "graddiff"
    argv = ["unlearn", "--model", str(demo / "target"), "--method", "graddiff"]
    argv += ["--benchmark", "builtin-mllmu", "--out", str(run), "--set", "part=vision", *FAST]
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    assert "saved" in out
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["benchmark"] == "builtin-mllmu" and config["part"] == "vision"
    assert config["builtin"] == {"n_people": 4, "n_real": 1, "seed": 0}  # from models.json
    assert "vision_tower" in config["trainable"]
    assert (run / "model" / "model.safetensors").is_file()
    assert not (run / "checkpoint").exists()  # the trainer's checkpoints, removed when done

    # eval of the run finds the people in its config.yaml; the retain model adds the gaps
    code, out, err = _run(
        ["eval", "--model", str(run), "--benchmark", "builtin-mllmu", "--out", str(run)]
        + ["--retain-model", str(demo / "target"), "--no-progress"],
        capsys,
    )
    assert code == 0, err
    doc = json.loads((run / "metrics.json").read_text())
    assert doc["benchmark"] == "builtin-mllmu" and doc["role"] == "unlearned"
    metrics = doc["metrics"]
    # 1 forget person: 3 image MCQs (name, birthplace, job), 2 text MCQs; 3 retain people
    assert metrics["forget_image_mcq_acc"]["n"] == 3 and metrics["forget_text_mcq_acc"]["n"] == 2
    assert metrics["retain_image_mcq_acc"]["n"] == 9 and metrics["real_text_cloze_acc"]["n"] == 2
    assert metrics["forget_image_mcq_acc"]["direction"] == "lower"
    assert metrics["retain_text_rouge_l"]["direction"] == "higher"
    assert metrics["test_image_mcq_acc_retain_gap"]["direction"] == "zero"
    assert "forget_image_mcq_acc" in out
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert {s["split"] for s in samples} == {"forget", "test", "retain", "real"}
    assert all("choice" in s for s in samples if s["task"] == "qa")
    # the retain model's evaluation is cached in its own tree
    assert list((demo / "target" / "evals").iterdir())

    # a finished run is not overwritten without --overwrite
    code, _, err = _run(argv, capsys)
    _one_line_error(code, err, "already holds a run", "--overwrite")


def test_unlearn_with_eval_and_mmunlearner(
    demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "mm"
    code, _, err = _run(
        ["unlearn", "--model", str(demo / "target"), "--method", "mmunlearner", "--eval"]
        + ["--benchmark", "builtin-mllmu", "--out", str(run), "--set", "part=language", *FAST],
        capsys,
    )
    assert code == 0, err
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["method"] == "mmunlearner" and config["part"] == "language"
    assert config["threshold"] == 1.0 and config["train"]["epochs"] == 1
    assert json.loads((run / "method.json").read_text())["info"]["saliency_kept"] > 0
    assert "forget_text_rouge_l" in json.loads((run / "metrics.json").read_text())["metrics"]


def test_mismatches_are_one_sentence(
    demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = str(demo / "target")
    out = str(tmp_path / "x")
    bench = ["--benchmark", "builtin-mllmu"]
    code, _, err = _run(
        ["unlearn", "--model", target, "--method", "rmu", *bench, "--out", out], capsys
    )
    _one_line_error(code, err, "'rmu' does not run on vision-language models", "graddiff")
    code, _, err = _run(
        ["unlearn", "--model", target, "--method", "mmunlearner", "--out", out], capsys
    )
    _one_line_error(code, err, "'mmunlearner' unlearns vision-language models", "builtin-mllmu")
    code, _, err = _run(["eval", "--model", target, "--benchmark", "tofu"], capsys)
    _one_line_error(code, err, "is a vision-language model", "--benchmark builtin-mllmu")
    text_model = tmp_path / "llama"
    text_model.mkdir()
    (text_model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    code, _, err = _run(["eval", "--model", str(text_model), *bench], capsys)
    _one_line_error(code, err, "is a text language model", "needs a vision-language model")
    code, _, err = _run(["eval", "--model", target, *bench, "--people", "6"], capsys)
    _one_line_error(code, err, "trained on the built-in people with n_people=4", "models.json")
    code, _, err = _run(
        ["unlearn", "--model", target, "--method", "ga", *bench, "--out", out]
        + ["--sequence", "forget10:1/2,forget10:2/2"],
        capsys,
    )
    _one_line_error(code, err, "--sequence runs on text benchmarks")
    assert not Path(out).exists()
