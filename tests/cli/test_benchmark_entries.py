"""Benchmarks as registered entries: `--benchmark NAME` on eval / unlearn / ls and the API,
one clear sentence on bad input (unknown name, missing split, wrong path)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from obliviate.cli import main

FAST_MUSE = [
    "--people",
    "5",
    "--set",
    "max_items=2",
    "--set",
    "verbmem_max_new_tokens=4",
    "--set",
    "knowmem_max_new_tokens=4",
    "--no-progress",
]
EVERY = (
    "tofu",
    "muse-news",
    "muse-books",
    "builtin-muse",
    "muse",
    "wmdp",
    "builtin-wmdp",
    "qa",
    "documents",
)


def test_ls_benchmarks_lists_every_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "benchmarks"]) == 0
    out = capsys.readouterr().out
    for name in EVERY:
        assert f"  {name} " in out
    assert main(["ls", "benchmarks", "builtin-muse"]) == 0
    assert "forget_verbmem" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, words",
    [
        (
            ["eval", "--benchmark", "muse-new", "--model", "x"],
            ["unknown benchmark 'muse-new'", "Did you mean 'muse-news'"],
        ),
        (
            ["eval", "--benchmark", "builtin-muse", "--split", "forget10", "--model", "x"],
            ["has one forget split"],
        ),
        (["unlearn", "--benchmark", "qa", "--model", "x", "--out", "o"], ["needs --forget"]),
        (["eval", "--benchmark", "documents", "--model", "x"], ["needs --forget"]),
        (
            ["eval", "--benchmark", "tofu", "--data", "/no/such/folder", "--model", "x"],
            ["no such folder"],
        ),
        (
            ["eval", "--benchmark", "muse-news", "--data", "/no/such/folder", "--model", "x"],
            ["no such folder"],
        ),
        (["eval", "--benchmark", "tofu", "--split", "forget33", "--model", "x"], ["forget33"]),
        (["benchmark", "--benchmark", "tofuu", "--out", "o"], ["Did you mean 'tofu'"]),
    ],
)
def test_bad_input_is_one_sentence(
    argv: list[str], words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err


def test_every_entry_knows_its_source_and_suite() -> None:
    from obliviate.benchmarks import BenchmarkSpec
    from obliviate.registry import BENCHMARKS, resolve

    for name in EVERY:
        spec = BENCHMARKS.get(name)
        assert isinstance(spec, BenchmarkSpec) and callable(resolve(spec.suite))
    assert BENCHMARKS.get("tofu").split == "forget10"
    assert BENCHMARKS.get("qa").data is None and BENCHMARKS.get("documents").data is None


def test_builtin_entries_load_offline() -> None:
    from obliviate.api import load_request, load_suite

    muse = load_request(benchmark="builtin-muse", builtin={"n_people": 5})
    assert muse.name == "builtin-muse" and muse.forget and all(it.is_document for it in muse.forget)
    # "muse" reads the source named by --data; its default is the same offline corpus
    generic = load_request(benchmark="muse", builtin={"n_people": 5})
    assert [it.answer for it in generic.forget] == [it.answer for it in muse.forget]
    assert [it.answer for it in generic.retain] == [it.answer for it in muse.retain]
    wmdp = load_suite("builtin-wmdp", builtin={"n_people": 5})
    assert set(wmdp.sets) == {"forget", "retain"} and wmdp.request.forget
    tofu = load_request(benchmark="tofu", split="forget05", builtin={"n_people": 20})
    assert (
        tofu.split == "forget05"
        and load_request("builtin", "forget05", builtin={"n_people": 20}).forget == tofu.forget
    )


def test_documents_entry_reads_txt_files_and_jsonl(tmp_path: Path) -> None:
    from obliviate.api import load_suite

    (tmp_path / "forget").mkdir()
    (tmp_path / "forget" / "a.txt").write_text("Alice Moreau was born in Lyon and writes poems.")
    (tmp_path / "forget" / "b.txt").write_text("Bruno Diaz keeps bees near the old mill.")
    (tmp_path / "retain.jsonl").write_text(
        json.dumps({"text": "Paris is the capital of France."}) + "\n"
    )
    suite = load_suite("documents", forget=tmp_path / "forget", retain=tmp_path / "retain.jsonl")
    req = suite.request
    assert req.forget[0].answer.startswith("Alice") and len(req.retain) == 1
    assert suite.data.verbmem[0].question == "Alice Moreau was born" and suite.documents


def test_eval_and_unlearn_on_builtin_muse(
    tmp_path: Path, tiny_models: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                "--benchmark",
                "builtin-muse",
                "--model",
                tiny_models["target"],
                "--retain-model",
                tiny_models["retain"],
                "--out",
                str(out),
                *FAST_MUSE,
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    for name in (
        "forget_verbmem",
        "forget_knowmem",
        "retain_knowmem",
        "privleak",
        "wmdp_forget_accuracy",
    ):
        assert name in printed
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["benchmark"] == "builtin-muse" and doc["split"] == "forget"
    # resume: the same key is reused, not recomputed
    mtime = (out / "metrics.json").stat().st_mtime_ns
    assert (
        main(
            [
                "eval",
                "--benchmark",
                "builtin-muse",
                "--model",
                tiny_models["target"],
                "--out",
                str(out),
                *FAST_MUSE,
            ]
        )
        == 0
    )
    assert (out / "metrics.json").stat().st_mtime_ns == mtime

    run = tmp_path / "unlearned"
    assert (
        main(
            [
                "unlearn",
                "--benchmark",
                "builtin-muse",
                "--model",
                tiny_models["target"],
                "--method",
                "graddiff",
                "--out",
                str(run),
                "--eval",
                *FAST_MUSE[:2],
                "--set",
                "train.max_steps=1",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (run / "model" / "config.json").exists()
    import yaml

    assert yaml.safe_load((run / "config.yaml").read_text())["benchmark"] == "builtin-muse"
    assert json.loads((run / "metrics.json").read_text())["benchmark"] == "builtin-muse"


def test_eval_builtin_wmdp_and_documents(
    tmp_path: Path, tiny_models: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "eval",
                "--benchmark",
                "builtin-wmdp",
                "--model",
                tiny_models["target"],
                "--people",
                "5",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "forget_accuracy" in capsys.readouterr().out
    (tmp_path / "f.txt").write_text("Question: who wrote the book? Answer: a fictitious author.")
    (tmp_path / "r.txt").write_text("Question: where was she born? Answer: in a small town.")
    (tmp_path / "h.txt").write_text("Question: what did he sell? Answer: old maps and atlases.")
    assert (
        main(
            [
                "eval",
                "--benchmark",
                "documents",
                "--forget",
                str(tmp_path / "f.txt"),
                "--retain",
                str(tmp_path / "r.txt"),
                "--holdout",
                str(tmp_path / "h.txt"),
                "--model",
                tiny_models["target"],
                "--set",
                "verbmem_max_new_tokens=4",
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for name in ("forget_verbmem", "forget_perplexity", "retain_perplexity", "mia_min_k_auc"):
        assert name in out


def test_api_tofu_default_is_unchanged(tiny_models: dict) -> None:
    """--benchmark tofu and the former default (no benchmark) give the same numbers."""
    from obliviate import api

    kw = {
        "data": "builtin",
        "split": tiny_models["split"],
        "builtin": tiny_models["builtin"],
        "settings": {"generate": False},
        "progress": False,
    }
    a = api.evaluate(tiny_models["target"], **kw)
    b = api.evaluate(tiny_models["target"], benchmark="tofu", **kw)
    assert a.values() == b.values() and a.key == b.key


def test_hub_entries_read_a_local_copy_in_the_hub_layout(tmp_path: Path) -> None:
    """muse-news / muse-books / wmdp take --data FOLDER (a snapshot of the hub data) offline."""
    from obliviate.api import load_suite

    assert main(["muse", "export", "--out", str(tmp_path / "news"), "--people", "5"]) == 0
    news = load_suite("muse-news", data=str(tmp_path / "news"))
    assert news.request.forget and news.data.verbmem and news.split == "forget"
    rows = [{"question": "2 + 2?", "choices": ["3", "4", "5", "6"], "answer": 1}]
    (tmp_path / "mcq.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    mcq = load_suite("wmdp", data=str(tmp_path / "mcq.jsonl"))
    assert list(mcq.sets) == ["mcq"] and mcq.mode == "letters"
    with pytest.raises(ValueError, match="needs the forget corpus"):
        mcq.request  # noqa: B018
