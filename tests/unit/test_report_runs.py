"""Loading run and group folders, and the errors for missing or malformed files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from obliviate.data.types import DataError
from obliviate.runs import (
    find_references,
    group_images,
    load_group,
    load_run,
    load_runs,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "runs"


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """A writable copy of the demo group."""
    return Path(shutil.copytree(FIXTURES / "demo", tmp_path / "demo"))


def _edit_metrics(run_dir: Path, **changes) -> None:
    info = json.loads((run_dir / "metrics.json").read_text())
    info.update(changes)
    (run_dir / "metrics.json").write_text(json.dumps(info))


def test_load_run_fixture():
    r = load_run(FIXTURES / "demo" / "npo")
    assert (r.name, r.role, r.method, r.benchmark, r.split) == (
        "npo",
        "unlearned",
        "npo",
        "builtin-tofu",
        "forget10",
    )
    assert r.metrics["privleak"].direction == "zero"
    assert r.value("forget_quality") == pytest.approx(0.9307, abs=1e-4)
    assert r.value("nonexistent") is None
    assert r.timing == {"train_s": 27.9, "eval_s": 4.3}
    assert len(r.samples) == 16 and len(r.samples_of("forget")) == 6
    assert [row["step"] for row in r.train_log] == list(range(1, 13))
    assert r.images == []


def test_load_diffusion_run_images():
    r = load_run(FIXTURES / "shapes" / "esd")
    assert [p.name for p in r.images] == ["grid_before.png", "grid_after.png"]
    assert r.samples == [] and r.train_log == []


def test_load_group_follows_comparison_json_order():
    runs = load_group(FIXTURES / "demo")
    assert [r.name for r in runs] == ["target", "retain", "graddiff", "npo"]
    assert {r.group for r in runs} == {"demo"}


def test_load_group_without_comparison_json_orders_by_role(demo: Path):
    (demo / "comparison.json").unlink()
    assert [r.name for r in load_group(demo)] == ["target", "retain", "graddiff", "npo"]


def test_load_runs_expands_groups_and_dedupes():
    runs = load_runs([FIXTURES / "demo" / "npo", FIXTURES / "demo"])
    assert [r.name for r in runs] == ["npo", "target", "retain", "graddiff"]


def test_find_references_from_siblings():
    npo = load_run(FIXTURES / "demo" / "npo")
    refs = find_references([npo])
    assert refs["target"].name == "target" and refs["retain"].name == "retain"


def test_find_references_skips_other_tasks(demo: Path):
    _edit_metrics(demo / "retain", split="forget05")
    refs = find_references([load_run(demo / "npo")])
    assert "retain" not in refs and "target" in refs


def test_missing_metrics_json(tmp_path: Path):
    (tmp_path / "run").mkdir()
    with pytest.raises(DataError, match=r"run/metrics.json: file not found"):
        load_run(tmp_path / "run")
    with pytest.raises(DataError, match="neither a run folder"):
        load_runs([tmp_path / "run"])
    with pytest.raises(DataError, match="no such file or folder"):
        load_runs([tmp_path / "nope"])
    with pytest.raises(ValueError, match="no run folder given"):
        load_runs([])


def test_invalid_json_names_file_line_and_column(demo: Path):
    (demo / "npo" / "metrics.json").write_text('{\n  "name": "npo",\n  "role": }\n')
    with pytest.raises(DataError, match=r"npo/metrics.json: invalid JSON at line 3, column 11"):
        load_run(demo / "npo")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"role": "oracle"}, r"'role' is \"oracle\"; expected one of 'target', 'retain'"),
        ({"schema": 2}, "schema 2 is not supported"),
        (
            {"metrics": {"fq": {"value": 0.1, "direction": "up"}}},
            r"metrics.fq.direction is \"up\"; expected one of 'higher', 'lower', 'zero'",
        ),
        (
            {"metrics": {"fq": {"value": "0.1", "direction": "higher"}}},
            r"metrics.fq.value must be a number or null",
        ),
        ({"metrics": {"fq": 0.1}}, r"metrics.fq must be an object"),
        ({"timing": {"train_s": "fast"}}, "'timing' must be an object"),
        (
            {"metrics": {"auc": {"value": 0.1, "direction": "zero", "ideal": "half"}}},
            r"metrics.auc.ideal must be a number or absent",
        ),
        ({"name": ""}, "'name' must be a non-empty string"),
    ],
)
def test_bad_metrics_json_fields(demo: Path, changes: dict, message: str):
    _edit_metrics(demo / "npo", **changes)
    with pytest.raises(DataError, match=message):
        load_run(demo / "npo")


def test_missing_required_key(demo: Path):
    info = json.loads((demo / "npo" / "metrics.json").read_text())
    del info["metrics"]
    (demo / "npo" / "metrics.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match="missing required key 'metrics'"):
        load_run(demo / "npo")


def test_null_and_nan_metric_values_are_missing(demo: Path):
    _edit_metrics(
        demo / "npo",
        metrics={
            "a": {"value": None, "direction": "higher"},
            "b": {"value": float("nan"), "direction": "lower"},
        },
    )
    r = load_run(demo / "npo")
    assert r.value("a") is None and r.value("b") is None


@pytest.mark.parametrize(
    "line, message",
    [
        ("not json", r"samples.jsonl, line 3: invalid JSON at column 1"),
        ("[1, 2]", r"samples.jsonl, line 3: expected a JSON object, got list"),
        ('{"split": "forget", "index": "7"}', r"line 3: 'index' must be an integer"),
        ('{"index": 7}', r"line 3: 'split' must be a non-empty string"),
        (
            '{"split": "forget", "index": 0}',
            (
                r"line 3: duplicate sample split='forget' index=0 "
                r"\(first on line 1\)"
            ),
        ),
        ('{"split": "x", "index": 0, "generation": 5}', r"line 3: 'generation' must be a string"),
    ],
)
def test_bad_samples_line(demo: Path, line: str, message: str):
    path = demo / "npo" / "samples.jsonl"
    lines = path.read_text().splitlines()
    lines.insert(2, line)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message):
        load_run(demo / "npo")


def test_blank_lines_are_skipped(demo: Path):
    path = demo / "npo" / "samples.jsonl"
    path.write_text(path.read_text().replace("\n", "\n\n", 2))
    assert len(load_run(demo / "npo").samples) == 16


def test_bad_train_log_line(demo: Path):
    (demo / "npo" / "train_log.jsonl").write_text('{"step": 1, "loss": 1}\n{"loss": 2}\n')
    with pytest.raises(DataError, match=r"train_log.jsonl, line 2: 'step' must be a number"):
        load_run(demo / "npo")


def test_image_errors(tmp_path: Path):
    esd = Path(shutil.copytree(FIXTURES / "shapes" / "esd", tmp_path / "esd"))
    _edit_metrics(esd, images=["../secret.png"])
    with pytest.raises(DataError, match="outside the run folder"):
        load_run(esd)
    _edit_metrics(esd, images=["grid_missing.png"])
    with pytest.raises(DataError, match=r"lists image 'grid_missing.png', but .* does not exist"):
        load_run(esd)
    (esd / "grid_fake.png").write_text("GIF89a")
    _edit_metrics(esd, images=["grid_fake.png"])
    with pytest.raises(DataError, match=r"grid_fake.png: not a PNG file"):
        load_run(esd)
    _edit_metrics(esd, images="grid_before.png")
    with pytest.raises(DataError, match="'images' must be a list"):
        load_run(esd)


def test_comparison_json_errors(demo: Path):
    (demo / "comparison.json").write_text(json.dumps({"runs": ["target", "ghost"]}))
    with pytest.raises(DataError, match=r"comparison.json: lists run 'ghost', but .*ghost"):
        load_group(demo)
    (demo / "comparison.json").write_text(json.dumps({"runs": "target"}))
    with pytest.raises(DataError, match="expected an object with 'runs'"):
        load_group(demo)


def test_group_images_from_comparison_json(tmp_path: Path):
    assert [p.name for p in group_images(FIXTURES / "shapes")] == ["grid_comparison.png"]
    assert group_images(FIXTURES / "demo") == []  # no "images" key
    shapes = Path(shutil.copytree(FIXTURES / "shapes", tmp_path / "shapes"))
    comp = json.loads((shapes / "comparison.json").read_text())
    comp["images"] = ["nope.png"]
    (shapes / "comparison.json").write_text(json.dumps(comp))
    with pytest.raises(DataError, match=r"comparison.json: lists image 'nope.png'"):
        group_images(shapes)
