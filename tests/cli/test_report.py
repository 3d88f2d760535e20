"""``obliviate report``: group report, single-run report, comparison, leaderboard, diffusion
grids and errors, built from the fixtures under tests/fixtures/runs/.

The reports are built once, in a subprocess through the CLI, which also checks that reporting
never imports torch.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from obliviate.cli import main
from obliviate.reporting import write_comparison, write_report
from obliviate.runs import load_run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "runs"
DEMO = FIXTURES / "demo"

BUILD = """
import json, sys
from obliviate.cli import main
a = sys.argv[1:]
codes = [
    main(["report", a[0], "-o", a[1] + "/report.html"]),
    main(["report", a[2]]),
    main(["report", "--compare", a[0] + "/graddiff", a[0] + "/npo", "-o", a[1] + "/cmp.html"]),
    main(["report", "--leaderboard", a[0], "-o", a[1] + "/lb"]),
    main(["report", a[3]]),
]
print(json.dumps({"codes": codes, "heavy": [m for m in ("torch", "transformers", "diffusers")
                                             if m in sys.modules]}))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("reports")
    demo_copy = Path(shutil.copytree(DEMO, tmp / "demo"))
    shapes_copy = Path(shutil.copytree(FIXTURES / "shapes", tmp / "shapes"))
    out = tmp / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            BUILD,
            str(DEMO),
            str(out),
            str(demo_copy / "npo"),
            str(shapes_copy),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    *printed, result = proc.stdout.strip().splitlines()
    return {
        "result": json.loads(result),
        "printed": printed,
        "report": (out / "report.html").read_text(encoding="utf-8"),
        "npo": (demo_copy / "npo" / "report.html").read_text(encoding="utf-8"),
        "cmp": (out / "cmp.html").read_text(encoding="utf-8"),
        "lb": out / "lb",
        "shapes": (shapes_copy / "report.html").read_text(encoding="utf-8"),
        "out": out,
    }


def _rows(page: str, table_id: str) -> list[str]:
    m = re.search(rf'<table id="{table_id}"[^>]*>.*?<tbody>(.*?)</tbody>', page, re.DOTALL)
    assert m, f"no table {table_id}"
    return re.findall(r"<tr[^>]*>.*?</tr>", m.group(1), re.DOTALL)


def _sections(page: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)">', page)


def test_reporting_never_imports_torch(built: dict):
    assert built["result"]["codes"] == [0, 0, 0, 0, 0]
    assert built["result"]["heavy"] == []


def test_import_is_cheap():
    code = (
        "import sys, obliviate.reporting; "
        "print(sorted(m for m in ('torch', 'matplotlib', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_element_ids_are_unique(built: dict):
    pages = [
        built["report"],
        built["npo"],
        built["cmp"],
        built["shapes"],
        (built["lb"] / "leaderboard.html").read_text(),
    ]
    for page in pages:
        ids = re.findall(r' id="([^"]+)"', page)
        assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_cli_prints_written_paths(built: dict):
    out = built["out"]
    assert str(out / "report.html") in built["printed"]
    assert str(out / "cmp.html") in built["printed"]
    assert {str(out / "lb" / f"leaderboard.{e}") for e in ("html", "md", "csv")} <= set(
        built["printed"]
    )


def test_group_report_sections_and_plots(built: dict):
    page = built["report"]
    assert _sections(page) == [
        "summary",
        "tradeoff",
        "truth-ratio",
        "mia",
        "training",
        "samples",
        "runs",
    ]  # no image grids for a text benchmark
    imgs = re.findall(r'<img src="([^"]+)"', page)
    assert len(imgs) == 4 and all(i.startswith("data:image/png;base64,") for i in imgs)
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing fetched at view time
    assert "<title>Unlearning report: demo</title>" in page


def test_group_report_headline(built: dict):
    rows = _rows(built["report"], "headline")
    names = [re.search(r"<td>(\w+)", r).group(1) for r in rows]
    assert names == ["target", "graddiff", "npo", "retain"]
    npo = rows[2]
    fq = load_run(DEMO / "npo").value("forget_quality")
    assert f'<td class="num best" data-v="{fq!r}">' in npo  # best forget quality: npo
    assert 'class="ref"' in rows[0] and 'class="ref"' in rows[3]


def test_samples_table_before_and_after(built: dict):
    rows = _rows(built["report"], "samples-table")
    keys = {
        (s["split"], s["index"])
        for r in ("target", "retain", "graddiff", "npo")
        for s in load_run(DEMO / r).samples
    }
    assert len(rows) == len(keys) == 16
    target = {(s["split"], s["index"]): s for s in load_run(DEMO / "target").samples}
    npo = {(s["split"], s["index"]): s for s in load_run(DEMO / "npo").samples}
    row = next(
        r
        for r in rows
        if 'data-split="forget"' in r and re.search(r'<td class="num" data-v="1.0">1</td>', r)
    )
    assert target[("forget", 1)]["generation"] in row  # before
    assert npo[("forget", 1)]["generation"] in row  # after
    assert "(empty generation)" in built["report"]  # graddiff's empty output is shown as such
    assert 'data-for="samples-table"' in built["report"]  # search bar


def test_single_run_report_finds_references(built: dict):
    page = built["npo"]
    assert "<title>Unlearning report: npo</title>" in page
    names = [re.search(r"<td>(\w+)", r).group(1) for r in _rows(page, "headline")]
    assert names == ["target", "npo", "retain"]
    assert "truth-ratio" in _sections(page)


def test_comparison(built: dict):
    page = built["cmp"]
    assert _sections(page) == ["metrics", "changed", "samples", "truth-ratio", "training", "runs"]
    deltas = {re.search(r'title="(\w+)"', r).group(1): r for r in _rows(page, "metric-deltas")}
    assert 'class="better"' in deltas["forget_quality"]  # 0.002 -> 0.93
    assert 'class="worse"' in deltas["forget_rouge"]  # lower is better; it rose
    assert "<td>—</td>" in deltas["mia_loss_auc"]  # no verdict for MIA AUCs
    # changed most: the largest |Δ ROUGE-L recall| first
    a = {(s["split"], s["index"]): s for s in load_run(DEMO / "graddiff").samples}
    b = {(s["split"], s["index"]): s for s in load_run(DEMO / "npo").samples}
    change = {
        k: abs(b[k]["rouge_l_recall"] - a[k]["rouge_l_recall"])
        for k in a
        if "rouge_l_recall" in a[k]
    }
    top_split, top_index = max(change, key=change.get)
    changed = _rows(page, "changed-table")
    assert len(changed) == min(10, len(change))
    assert f'data-split="{top_split}"' in changed[0]
    assert f'data-v="{float(top_index)!r}">{top_index}</td>' in changed[0]
    full = _rows(page, "compare-samples")
    assert len(full) == 16 and sum('class="hot"' in r for r in full) == len(changed)


def test_leaderboard_files(built: dict):
    lb = built["lb"]
    with open(lb / "leaderboard.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["run"] for r in rows] == ["target", "retain", "npo", "graddiff"]
    assert float(rows[2]["forget_quality"]) == load_run(DEMO / "npo").value("forget_quality")
    md = (lb / "leaderboard.md").read_text()
    assert md.startswith("# Leaderboard: builtin-tofu · forget10")
    assert "| npo | unlearned | npo | **0.9307** |" in md
    page = (lb / "leaderboard.html").read_text()
    assert len(_rows(page, "leaderboard-table")) == 4 and 'class="sortable"' in page


def test_diffusion_report_embeds_grids(built: dict):
    page = built["shapes"]
    assert "images" in _sections(page) and "samples" not in _sections(page)
    for name in (
        "shapes · grid_comparison.png",
        "target · grid_before.png",
        "esd · grid_before.png",
        "esd · grid_after.png",
    ):
        assert f"<figcaption>{name}</figcaption>" in page
    assert "Unlearning accuracy" in page and "FID" in page


def test_html_from_run_files_is_escaped(tmp_path: Path):
    run = Path(shutil.copytree(FIXTURES / "shapes", tmp_path / "shapes"))
    info = json.loads((run / "esd" / "metrics.json").read_text())
    info["method"] = "<script>alert(1)</script>"
    (run / "esd" / "metrics.json").write_text(json.dumps(info))
    page = write_report([run]).read_text()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_errors_name_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    demo = Path(shutil.copytree(DEMO, tmp_path / "demo"))
    (demo / "npo" / "samples.jsonl").write_text('{"split": "forget", "index": 0}\n{oops\n')
    assert main(["report", str(demo)]) == 2
    err = capsys.readouterr().err
    assert f"{demo / 'npo' / 'samples.jsonl'}, line 2: invalid JSON" in err
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "missing: no such file or folder" in capsys.readouterr().err
    assert main(["report", "--compare", str(demo)]) == 2
    assert "--compare takes exactly two run folders" in capsys.readouterr().err
    assert main(["report", "--compare", str(demo), str(demo / "npo")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main(["report", str(DEMO / "npo"), str(DEMO / "graddiff")]) == 2
    assert "say where to write the report" in capsys.readouterr().err
    assert not (tmp_path / "demo" / "report.html").exists()


def test_leaderboard_refuses_mixed_splits(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    demo = Path(shutil.copytree(DEMO, tmp_path / "demo"))
    info = json.loads((demo / "npo" / "metrics.json").read_text())
    info["split"] = "forget05"
    (demo / "npo" / "metrics.json").write_text(json.dumps(info))
    assert main(["report", "--leaderboard", str(demo)]) == 2
    err = capsys.readouterr().err
    assert "one benchmark split" in err and "builtin-tofu/forget05" in err
    assert not (demo / "leaderboard.csv").exists()


def test_out_may_be_a_folder(tmp_path: Path):
    shapes = FIXTURES / "shapes"
    assert write_report([shapes], tmp_path) == tmp_path / "report.html"
    path = write_comparison(shapes / "target", shapes / "esd", tmp_path)
    assert path == tmp_path / "compare_target_vs_esd.html" and path.is_file()


def test_missing_matplotlib_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails
    assert main(["report", str(FIXTURES / "shapes"), "-o", "/nonexistent/never.html"]) == 2
    assert "reports need matplotlib: pip install 'obliviate[report]'" in capsys.readouterr().err
