"""The builtin-mllmu / mllmu benchmark entries, the demo's comparison table and its CLI flags
(no model is trained here)."""

from __future__ import annotations

import math

import pytest

from obliviate.cli import main
from obliviate.recipes.multimodal import comparison_markdown


def test_builtin_entry_builds_the_request() -> None:
    from obliviate.api import load_suite

    suite = load_suite("builtin-mllmu", builtin={"n_people": 10, "n_real": 2})
    req = suite.request
    assert req.split == "forget10" and set(req.eval) == {"forget", "test", "retain", "real"}
    assert {it.meta["person"] for it in req.forget} == {req.eval["forget"][0].meta["person"]}
    assert load_suite(
        "builtin-mllmu", split="forget20", builtin={"n_people": 10}
    ).request.split == ("forget20")
    with pytest.raises(ValueError, match="unknown built-in option"):
        load_suite("builtin-mllmu", builtin={"people": 3})
    with pytest.raises(ValueError, match="evaluates vision-language models"):
        suite.evaluate(object(), None, None, "", False)


def test_hub_entry_offline_is_one_sentence(monkeypatch) -> None:
    from obliviate.api import load_suite
    from obliviate.data.types import DataError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="HF_HUB_OFFLINE=1 forbids downloading"):
        _ = load_suite("mllmu").request


def test_comparison_table_has_one_column_per_set_task_and_mode() -> None:
    doc = {
        "models": {
            "target": {"forget/image": {"mcq_acc": 1.0, "rouge_l": 0.5, "cloze_acc": math.nan}},
            "npo": {},
        }
    }
    lines = comparison_markdown(doc).splitlines()
    head = lines[0].strip("| ").split(" | ")
    assert len(head) == 1 + 4 * 3 * 2
    assert head[1:4] == ["forget MCQ img", "forget MCQ txt", "forget ROUGE img"]
    assert lines[2].split(" | ")[1:4] == ["1.00", "-", "0.50"]
    assert lines[3].startswith("| npo | - |")


def test_demo_flags(capsys) -> None:
    assert main(["demo", "--multimodal", "--diffusion", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert "choose one of --diffusion and --multimodal" in err and "Traceback" not in err
