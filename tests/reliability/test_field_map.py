"""Field mapping (README.md, "Columns with other names"): files whose columns have other names
load with ``--map COLUMN=FIELD`` / ``field_map={column: field}``; a mapped column the file lacks
is a one-sentence error listing its columns; extra columns such as ``subject`` reach the editing
methods (``subject_field``), which record what they edited in ``<run>/method.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from obliviate.data.types import DataError

ROWS = [
    {"query": "Where was Anna Berg born?", "target": "Paris", "entity": "Anna Berg"},
    {"query": "What did Anna Berg write?", "target": "Novels", "entity": "Anna Berg"},
]


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_csv_with_other_column_names(tmp_path: Path) -> None:
    from obliviate.data.files import make_request

    path = write_csv(tmp_path / "export.csv", ROWS)
    with pytest.raises(DataError, match="field 'question' is missing"):
        make_request(path)
    req = make_request(path, field_map={"query": "question", "target": "answer"})
    assert [(it.question, it.answer) for it in req.forget] == [
        (r["query"], r["target"]) for r in ROWS
    ]
    assert req.forget[0].meta["entity"] == "Anna Berg"  # other columns are kept


def test_unknown_column_lists_the_columns(tmp_path: Path) -> None:
    from obliviate.data.files import load_qa_file

    path = tmp_path / "export.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_qa_file(path, field_map={"prompt": "question", "target": "answer"})
    msg = str(err.value)
    assert "'prompt'" in msg and "its columns are: 'query', 'target', 'entity'" in msg
    assert "\n" not in msg


def test_cli_map_option_and_malformed_entries() -> None:
    import argparse

    from obliviate.cli._common import add_data_args, data_kwargs
    from obliviate.data.fields import parse_field_map

    p = argparse.ArgumentParser()
    add_data_args(p)
    args = p.parse_args(["--forget", "f.csv", "--map", "query=question, target=answer"])
    assert data_kwargs(args)["field_map"] == {"query": "question", "target": "answer"}
    with pytest.raises(ValueError, match="has no '='"):
        parse_field_map("query:question")
    with pytest.raises(ValueError, match="two columns are mapped to the field 'answer'"):
        parse_field_map("a=answer,b=answer")


def test_api_load_suite_maps_user_files(tmp_path: Path) -> None:
    from obliviate import api

    path = write_csv(tmp_path / "forget.csv", ROWS)
    suite = api.load_suite(forget=str(path), field_map="query=question,target=answer")
    assert suite.request.forget[1].answer == "Novels"
    docs = write_csv(tmp_path / "docs.csv", [{"body": "Anna Berg was born in Paris."}])
    dsuite = api.load_suite("documents", forget=str(docs), field_map={"body": "text"})
    assert dsuite.request.forget[0].answer == "Anna Berg was born in Paris."


def test_training_items_of_a_mapped_file(tmp_path: Path) -> None:
    from obliviate.api import training_items

    path = write_csv(tmp_path / "train.csv", ROWS)
    items = training_items(str(path), "full", field_map="query=question,target=answer")
    assert [it.answer for it in items] == ["Paris", "Novels"]


def test_tofu_folder_with_renamed_columns(tmp_path: Path, tiny_builtin: dict) -> None:
    from obliviate.api import TOFU_CONFIGS
    from obliviate.data.tofu import load_tofu, load_tofu_configs

    rows = load_tofu_configs("builtin", TOFU_CONFIGS, optional=TOFU_CONFIGS, **tiny_builtin)
    rename = {"question": "prompt", "answer": "response"}
    for config, config_rows in rows.items():
        with (tmp_path / f"{config}.jsonl").open("w", encoding="utf-8") as f:
            for r in config_rows:
                f.write(json.dumps({rename.get(k, k): v for k, v in r.items()}) + "\n")
    expected = load_tofu("builtin", "forget10", **tiny_builtin)
    got = load_tofu(tmp_path, "forget10", field_map={"prompt": "question", "response": "answer"})
    for split in ("forget", "retain", "holdout"):
        a, b = getattr(expected, split), getattr(got, split)
        assert [(x.question, x.answer) for x in a] == [(x.question, x.answer) for x in b]
    with pytest.raises(DataError, match="its columns are"):
        load_tofu(tmp_path, "forget10", field_map={"query": "question"})


def test_subject_field_names_a_column_of_any_source(tmp_path: Path) -> None:
    from obliviate.data.files import load_qa_file
    from obliviate.editing.subjects import subject_of
    from obliviate.methods.editing import check_subject_field

    path = write_csv(tmp_path / "forget.csv", ROWS)
    items = load_qa_file(path, field_map={"query": "question", "target": "answer"})
    assert subject_of(items[0], "entity") == "Anna Berg"
    check_subject_field(items, "entity")
    with pytest.raises(ValueError, match=r"no forget item has that column .* entity"):
        check_subject_field(items, "person")
    mapped = load_qa_file(
        path, field_map={"query": "question", "target": "answer", "entity": "subject"}
    )
    assert subject_of(mapped[0]) == "Anna Berg"


def test_rome_reads_the_subject_column_and_writes_method_json(
    tmp_path: Path, builtin_tok: Any, random_model: Any
) -> None:
    from obliviate import api

    model_dir = tmp_path / "target"
    random_model.save_pretrained(model_dir)
    builtin_tok.save_pretrained(model_dir)
    # the subject is in a column, not guessable from the question (no capitalised words)
    rows = [
        {"q": "where was anna berg born?", "a": "in Paris", "who": "anna berg"},
        {"q": "what did anna berg write?", "a": "novels", "who": "anna berg"},
    ]
    forget = write_csv(tmp_path / "forget.csv", rows)
    retain = write_csv(
        tmp_path / "retain.csv", [{"q": "what is paris?", "a": "a city", "who": "x"}]
    )
    res = api.unlearn(
        str(model_dir),
        method="rome",
        forget=str(forget),
        retain=str(retain),
        out=tmp_path / "run",
        overrides={"layers": 0, "steps": 2, "stats_tokens": 64, "subject_field": "who"},
        field_map="q=question,a=answer",
        progress=False,
    )
    info = json.loads((tmp_path / "run" / "method.json").read_text())
    assert info["method"] == "rome"
    assert info["info"]["subjects"] == ["anna berg"] and info["info"]["layers"] == [0]
    assert info["info"]["subject_field"] == "who"
    assert res.config["field_map"] == {"q": "question", "a": "answer"}
