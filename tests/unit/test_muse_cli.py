"""`obliviate muse` / `obliviate wmdp`: argument handling and the export verb (no model runs)."""

from __future__ import annotations

import pytest

from obliviate.cli import main


def test_subcommands_are_registered(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "muse" in out and "wmdp" in out


def test_muse_without_verb_prints_help(capsys):
    assert main(["muse"]) == 2
    assert "run" in capsys.readouterr().out


def test_export_writes_the_hub_layout(tmp_path, capsys):
    from obliviate.data.muse import load_muse

    assert main(["muse", "export", "--out", str(tmp_path / "m"), "--people", "10"]) == 0
    assert (tmp_path / "m" / "knowmem" / "forget_qa_icl.jsonl").exists()
    data, ref = load_muse(tmp_path / "m"), load_muse("builtin", n_people=10)
    assert [x.answer for x in data.forget] == [x.answer for x in ref.forget]
    assert [(x.question, x.answer) for x in data.verbmem] == [
        (x.question, x.answer) for x in ref.verbmem
    ]


def test_run_rejects_unknown_methods_and_stray_overrides(tmp_path, capsys):
    assert main(["muse", "run", "--out", str(tmp_path), "--methods", "npoo"]) == 2
    assert "Did you mean 'npo'" in capsys.readouterr().err
    assert (
        main(
            [
                "muse",
                "run",
                "--out",
                str(tmp_path),
                "--methods",
                "graddiff",
                "--method-set",
                "npo.train.lr=1e-4",
            ]
        )
        == 2
    )
    assert "not in --methods" in capsys.readouterr().err


def test_bad_data_is_one_clear_line(tmp_path, capsys):
    assert main(["muse", "eval", "--model", str(tmp_path), "--data", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["wmdp", "--model", str(tmp_path), "--data", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_benchmarks_are_registered_and_cheap_to_import():
    import subprocess
    import sys

    from obliviate.registry import BENCHMARKS

    assert {"builtin-muse", "muse-news", "muse-books", "wmdp", "builtin-wmdp"} <= set(
        BENCHMARKS.names()
    )
    spec = BENCHMARKS.get("builtin-muse")
    assert "privleak" in spec.metrics and not spec.needs_network
    from obliviate.metrics import direction_of

    assert direction_of("privleak") == "zero"
    assert spec.load(n_people=10).name == "builtin-muse"
    assert callable(spec.evaluator_fn())
    assert BENCHMARKS.get("muse-news").loader_kwargs == {"source": "news"}
    code = (
        "import sys, obliviate.benchmarks, obliviate.cli.muse, obliviate.cli.wmdp; "
        "from obliviate.registry import BENCHMARKS; BENCHMARKS.names(); "
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
