"""Disjoint request splits (``forgetNN:i/k``) and the continual table's pure helpers."""

from __future__ import annotations

import pytest

from obliviate.api import load_request
from obliviate.data.parts import author_groups, parse_part
from obliviate.recipes.continual import continual_markdown, request_kwargs, step_folder


def test_parse_part():
    assert parse_part("forget10:2/3") == ("forget10", 2, 3)
    assert parse_part("forget10") is None
    for bad, msg in (("forget10:0/3", "does not exist"), ("forget10:4/3", "does not exist")):
        with pytest.raises(ValueError, match=msg):
            parse_part(bad)
    with pytest.raises(ValueError, match="SPLIT:I/K"):
        parse_part("forget10:2")


def test_author_groups_hand_values():
    # 10 authors of 10 questions into 3 groups: 4 + 3 + 3 authors
    assert author_groups(100, 10, 3) == [range(0, 40), range(40, 70), range(70, 100)]
    assert author_groups(20, 10, 2) == [range(0, 10), range(10, 20)]
    assert author_groups(6, 2, 3) == [range(0, 2), range(2, 4), range(4, 6)]
    with pytest.raises(ValueError, match="2 author"):
        author_groups(20, 10, 3)
    with pytest.raises(ValueError, match="whole number of authors"):
        author_groups(25, 10, 2)


def test_builtin_parts_are_disjoint_author_groups_covering_the_split():
    builtin = {"n_people": 100}
    whole = load_request("builtin", "forget10", builtin=builtin)
    parts = [load_request("builtin", f"forget10:{i}/3", builtin=builtin) for i in (1, 2, 3)]
    assert [len(p.forget) for p in parts] == [40, 30, 30]
    assert [p.split for p in parts] == ["forget10:1/3", "forget10:2/3", "forget10:3/3"]
    assert [it for p in parts for it in p.forget] == whole.forget  # disjoint, in order, complete
    for p in parts:
        # the evaluation forget items are the same questions; holdout cut alike; retain unchanged
        assert [it.question for it in p.eval["forget"]] == [it.question for it in p.forget]
        assert len(p.holdout) == len(p.forget) and p.eval["holdout"] == p.holdout
        assert p.retain == whole.retain
    # each part holds whole people: the name in part 2's first question is not in part 1
    first_two = {q.question for q in parts[0].forget[-10:]}
    assert not first_two & {q.question for q in parts[1].forget}
    with pytest.raises(ValueError, match=r"forget10:1/3: .*2 author"):
        load_request("builtin", "forget10:1/3", builtin={"n_people": 20})


def test_step_folders_and_request_kwargs():
    assert step_folder(2, "forget10:2/3") == "02-forget10-2of3"
    assert step_folder(1, "data/a.jsonl") == "01-a.jsonl"
    assert request_kwargs(None, "forget10:1/2") == {"split": "forget10:1/2"}
    assert request_kwargs("qa", "a.jsonl") == {"forget": "a.jsonl"}


def test_continual_markdown_one_row_per_step_and_request():
    doc = {
        "method": "npo",
        "benchmark": "tofu",
        "sequence": ["A", "B"],
        "columns": ["forget_quality", "model_utility"],
        "labels": {"forget_quality": ["FQ", "higher"], "model_utility": ["MU", "higher"]},
        "rows": [
            {"step": 0, "request": "A", "forget_quality": 0.001, "model_utility": 0.5},
            {"step": 1, "request": "A", "forget_quality": 0.25, "model_utility": None},
        ],
    }
    text = continual_markdown(doc)
    assert "| step | unlearned so far | request | FQ | MU |" in text
    assert "| 0 | (input model) | A | 0.001 | 0.500 |" in text
    assert "| 1 | A | A | 0.250 | - |" in text
