"""The command line: a reduced demo end to end, listing, and clear errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from obliviate.cli import main


def test_ls_lists_methods_and_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "methods"]) == 0
    out = capsys.readouterr().out
    for name in ("ga", "graddiff", "npo"):
        assert f"  {name} " in out
    assert "arXiv 2404.05868" in out  # NPO's paper
    assert main(["ls", "metrics"]) == 0
    assert "forget_quality" in capsys.readouterr().out


def test_ls_one_method_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "methods", "npo"]) == 0
    out = capsys.readouterr().out
    assert "beta: 0.1" in out and "lr:" in out


def test_unknown_method_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(
        ["unlearn", "--model", str(tmp_path), "--method", "graddif", "--out", str(tmp_path / "o")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown method 'graddif'" in err and "Did you mean 'graddiff'" in err


def test_missing_model_path_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["eval", "--model", str(tmp_path / "nope"), "--split", "forget10"])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_malformed_forget_file_names_file_and_row(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_models: dict
) -> None:
    bad = tmp_path / "forget.jsonl"
    bad.write_text('{"question": "q1", "answer": "a1"}\n{"question": "q2"}\n')
    code = main(
        [
            "unlearn",
            "--model",
            tiny_models["target"],
            "--method",
            "graddiff",
            "--forget",
            str(bad),
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "forget.jsonl" in err and "2" in err and "answer" in err


def test_unknown_override_is_rejected(
    capsys: pytest.CaptureFixture[str], tiny_models: dict, tmp_path: Path
) -> None:
    code = main(
        [
            "unlearn",
            "--model",
            tiny_models["target"],
            "--method",
            "npo",
            "--set",
            "train.lrr=1",
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )
    assert code == 2
    assert "unknown train setting 'lrr'" in capsys.readouterr().err


def test_reduced_demo_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| target |" in printed and "| npo |" in printed
    doc = json.loads((out / "comparison.json").read_text())
    rows = {r["name"]: r for r in doc["rows"]}
    assert set(rows) == {"target", "retain", "graddiff", "npo"}
    # the oracle is indistinguishable from itself
    assert rows["retain"]["forget_quality"] == pytest.approx(1.0)
    assert rows["retain"]["privleak"] == pytest.approx(0.0)
    # the target memorised the forget set: far from the oracle, higher forget probability.
    # (--quick has only 20 forget items, so the KS p-value cannot get as small as in the full
    # demo, where it is below 1e-3)
    assert rows["target"]["forget_quality"] < 0.5
    assert rows["target"]["forget_prob"] > rows["retain"]["forget_prob"] + 0.3
    assert rows["target"]["privleak"] < -50  # forget set still looks like training data
    # unlearning lowered the forget probability clearly below the target's
    for m in ("graddiff", "npo"):
        assert rows[m]["forget_prob"] < rows["target"]["forget_prob"] - 0.1, rows[m]
        assert rows[m]["forget_rouge"] < rows["target"]["forget_rouge"] - 0.2, rows[m]
    # trained with the training variants (docs/metrics.md), the truth ratios carry signal and
    # model utility falls with the retain probability and ROUGE (measured: target 0.551, NPO 0.514)
    stage = json.loads((out / "target" / "stage.json").read_text())
    assert stage["config"]["builtin"]["paraphrase_training"] is True
    target_metrics = json.loads((out / "target" / "metrics.json").read_text())["metrics"]
    assert target_metrics["retain_truth_ratio"]["value"] > 0.2  # 0.295; ~0.1 without variants
    assert rows["npo"]["retain_prob"] < rows["target"]["retain_prob"]
    assert rows["npo"]["model_utility"] < rows["target"]["model_utility"] - 0.01
    for name in rows:
        run = out / name
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["metrics"]["forget_prob"]["direction"] == "lower"
        assert (run / "samples.jsonl").stat().st_size > 0
    assert (out / "graddiff" / "train_log.jsonl").exists()
    assert (out / "graddiff" / "model" / "model.safetensors").exists()
    # re-running resumes: nothing is retrained, the table is the same
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    again = json.loads((out / "comparison.json").read_text())
    assert [r["forget_prob"] for r in again["rows"]] == [r["forget_prob"] for r in doc["rows"]]
