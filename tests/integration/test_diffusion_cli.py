"""`obliviate erase` end to end on a random built-in-format pipeline (seconds: no training),
checking the run folder against docs/run-format.md and the reporting reader."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("diffusers")

from obliviate.cli import main
from obliviate.diffusion.testing import tiny_builtin_folders


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    return tiny_builtin_folders(tmp_path_factory.mktemp("builtin"))


def test_erase_list(capsys):
    assert main(["erase", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("esd-x", "esd-u", "ca", "uce", "salun", "fmn"):
        assert f"\n{name} " in "\n" + out
    assert "arXiv 2308.14761" in out


def test_erase_writes_a_diffusion_run_folder(folders, tmp_path, capsys):
    pipeline, judge = folders
    out = tmp_path / "run"
    rc = main(
        [
            "erase",
            "--model",
            str(pipeline),
            "--judge",
            str(judge),
            "--concept",
            "red",
            "--method",
            "uce",
            "--images-per-prompt",
            "3",
            "--sampling-steps",
            "2",
            "--out",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    for f in (
        "config.yaml",
        "metrics.json",
        "samples.jsonl",
        "grid_before.png",
        "grid_after.png",
        "model/model_index.json",
        "model/obliviate_shapes.json",
    ):
        assert (out / f).is_file(), f
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["benchmark"] == "builtin-shapes" and doc["role"] == "unlearned"
    assert doc["method"] == "uce" and doc["concept"] == "red"
    assert doc["images"] == ["grid_before.png", "grid_after.png"]
    for k in (
        "unlearning_accuracy",
        "in_domain_retain_accuracy",
        "cross_domain_retain_accuracy",
        "fid",
        "kid",
    ):
        assert doc["metrics"][k]["direction"] in ("higher", "lower")
        assert doc["metrics"][k]["value"] >= 0 or k == "kid"
        assert k in doc["before"]
    assert doc["judge"]["fingerprint"].startswith("sha256:")
    rows = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 9 * 3
    assert sum(r["split"] == "forget" for r in rows) == 3 * 3  # the three red prompts
    assert {"prompt", "shape_pred", "colour_pred", "p_concept"} <= set(rows[0])
    try:
        from obliviate.runs import load_run
    except ImportError:  # reporting not built yet
        return
    run = load_run(out)
    assert run.value("unlearning_accuracy") == doc["metrics"]["unlearning_accuracy"]["value"]
    assert [p.name for p in run.images] == ["grid_before.png", "grid_after.png"]


def test_erased_model_folder_can_be_erased_again(folders, tmp_path):
    """The saved model/ is a complete shapes pipeline: erase from it once more."""
    pipeline, judge = folders
    first, second = tmp_path / "a", tmp_path / "b"
    args = [
        "--judge",
        str(judge),
        "--method",
        "uce",
        "--images-per-prompt",
        "2",
        "--sampling-steps",
        "2",
    ]
    assert (
        main(["erase", "--model", str(pipeline), "--concept", "red", "--out", str(first), *args])
        == 0
    )
    assert (
        main(
            [
                "erase",
                "--model",
                str(first / "model"),
                "--concept",
                "circle",
                "--out",
                str(second),
                "--no-save-model",
                *args,
            ]
        )
        == 0
    )
    assert not (second / "model").exists()
    assert json.loads((second / "metrics.json").read_text())["concept"] == "circle"


def test_bad_input_gives_one_clear_error(folders, tmp_path, capsys):
    pipeline, judge = folders
    assert (
        main(
            [
                "erase",
                "--model",
                str(pipeline),
                "--judge",
                str(judge),
                "--concept",
                "dog",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "concept 'dog' is not in the built-in shapes model" in capsys.readouterr().err
    assert main(["erase", "--concept", "red", "--method", "esdx"]) == 2
    assert "Did you mean 'esd-x'" in capsys.readouterr().err
    assert (
        main(
            [
                "erase",
                "--model",
                str(pipeline),
                "--judge",
                str(judge),
                "--concept",
                "red",
                "--set",
                "lr",
                "--out",
                str(tmp_path / "y"),
            ]
        )
        == 2
    )
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert main(["erase", "--model", str(tmp_path / "missing"), "--concept", "red"]) == 2
    assert main(["erase"]) == 2
    assert "--concept is required" in capsys.readouterr().err
