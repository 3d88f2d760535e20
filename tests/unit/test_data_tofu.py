"""TOFU loader: builtin, local folder and (monkeypatched) hub sources, invariants and errors."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import pytest

from obliviate.data.builtin import generate_builtin
from obliviate.data.tofu import (
    check_tofu_invariants,
    load_tofu,
    load_tofu_configs,
    normalize_split,
    required_configs,
)
from obliviate.data.types import DataError, QAItem

TOFU_DIR = Path(os.environ.get("OBLIVIATE_TOFU_DIR", "/work/shared/data/tofu"))
needs_tofu = pytest.mark.skipif(
    not (TOFU_DIR / "full.jsonl").exists(), reason=f"real TOFU files not found in {TOFU_DIR}"
)
SMALL = {"n_people": 20, "qa_per_person": 3, "n_world_facts": 10}


def write_folder(folder: Path, configs: dict[str, list[dict]], skip=()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in configs.items():
        if name not in skip:
            (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture()
def small_folder(tmp_path):
    return write_folder(tmp_path / "tofu", generate_builtin(**SMALL))


# --- split names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, expected",
    [
        ("forget01", "forget01"),
        ("1", "forget01"),
        ("01", "forget01"),
        (1, "forget01"),
        ("forget1", "forget01"),
        ("5", "forget05"),
        ("FORGET05", "forget05"),
        (10, "forget10"),
        ("forget10", "forget10"),
    ],
)
def test_normalize_split(given, expected):
    assert normalize_split(given) == expected


@pytest.mark.parametrize("bad", ["forget02", "20", "retain90", "", "ten"])
def test_bad_split(bad):
    with pytest.raises(ValueError, match="unknown TOFU split"):
        normalize_split(bad)


def test_required_configs():
    assert required_configs("5") == [
        "full",
        "forget05",
        "retain95",
        "forget05_perturbed",
        "retain_perturbed",
        "holdout05",
    ]


# --- builtin ---------------------------------------------------------------------------------


def test_builtin_request():
    data = generate_builtin(**SMALL)
    req = load_tofu("builtin", "forget05", **SMALL)
    assert (req.name, req.split) == ("builtin-tofu", "forget05")
    assert [(x.question, x.answer) for x in req.forget] == [
        (r["question"], r["answer"]) for r in data["forget05"]
    ]
    assert len(req.retain) == len(data["retain95"]) and len(req.full) == len(data["full"])
    assert len(req.holdout) == len(data["holdout05"]) == 3
    assert set(req.eval) == {"forget", "retain", "holdout", "world_facts"}
    first = req.eval["forget"][0]
    src = data["forget05_perturbed"][0]
    assert first.paraphrased_answer == src["paraphrased_answer"]
    assert first.perturbed_answers == tuple(src["perturbed_answer"])
    assert first.paraphrased_question == src["paraphrased_question"]
    assert len(req.eval["retain"]) == len(data["retain_perturbed"])
    wf = req.eval["world_facts"]
    assert len(wf) == 10
    for item, plain in zip(wf, data["world_facts"], strict=True):
        assert item.options == tuple(plain[f"option{k}"] for k in range(1, 5))
        assert len(item.perturbed_answers) == 3 and item.answer not in item.perturbed_answers


def test_builtin_defaults_match_generator():
    req = load_tofu()
    assert (len(req.forget), len(req.retain), len(req.holdout), len(req.full)) == (
        100,
        960,
        100,
        1060,
    )


# --- local folder ----------------------------------------------------------------------------


def test_folder_equals_builtin(small_folder):
    for split in ("1", "5", "10"):
        a, b = load_tofu(small_folder, split), load_tofu("builtin", split, **SMALL)
        assert a.name == "tofu" and a.split == b.split
        assert (a.forget, a.retain, a.holdout, a.full, a.eval) == (
            b.forget,
            b.retain,
            b.holdout,
            b.full,
            b.eval,
        )


def test_folder_json_variant(small_folder):
    rows = [json.loads(line) for line in (small_folder / "full.jsonl").read_text().splitlines()]
    (small_folder / "full.jsonl").unlink()
    (small_folder / "full.json").write_text(json.dumps({"data": rows}))
    assert len(load_tofu(small_folder).full) == len(rows)


def test_missing_config_names_folder_and_file(tmp_path):
    folder = write_folder(tmp_path / "t", generate_builtin(**SMALL), skip={"forget10_perturbed"})
    with pytest.raises(
        DataError, match=r"t: missing forget10_perturbed\.jsonl \(or forget10_perturbed\.json\)"
    ):
        load_tofu(folder, "forget10")
    assert load_tofu(folder, "forget05").split == "forget05"  # not needed there


def test_optional_configs_may_be_missing(tmp_path):
    folder = write_folder(
        tmp_path / "t", generate_builtin(**SMALL), skip={"world_facts", "world_facts_perturbed"}
    )
    assert "world_facts" not in load_tofu(folder).eval


def test_world_facts_without_perturbed_file(tmp_path):
    data = generate_builtin(**SMALL)
    folder = write_folder(tmp_path / "t", data, skip={"world_facts_perturbed"})
    wf = load_tofu(folder).eval["world_facts"]
    assert [x.perturbed_answers for x in wf] == [
        tuple(r["perturbed_answer"]) for r in data["world_facts_perturbed"]
    ]


def test_misaligned_world_facts(tmp_path):
    data = generate_builtin(**SMALL)
    data["world_facts_perturbed"][2]["question"] = "Something else?"
    folder = write_folder(tmp_path / "t", data)
    with pytest.raises(DataError, match=r"world_facts_perturbed\.jsonl: line 3: question differs"):
        load_tofu(folder)


def test_row_missing_field_names_file_row_and_field(tmp_path):
    data = generate_builtin(**SMALL)
    del data["retain90"][2]["answer"]
    folder = write_folder(tmp_path / "t", data)
    with pytest.raises(DataError, match=r"retain90\.jsonl: line 3: field 'answer' is missing"):
        load_tofu(folder, "10")


def test_perturbed_row_needs_variants(tmp_path):
    data = generate_builtin(**SMALL)
    del data["retain_perturbed"][1]["perturbed_answer"]
    folder = write_folder(tmp_path / "t", data)
    with pytest.raises(
        DataError, match=r"retain_perturbed\.jsonl: line 2: field 'perturbed_answer'"
    ):
        load_tofu(folder)


def test_inconsistent_configs(tmp_path):
    data = generate_builtin(**SMALL)
    data["retain90"][0], data["retain90"][1] = data["retain90"][1], data["retain90"][0]
    data["holdout10"][0] = dict(data["full"][5])
    folder = write_folder(tmp_path / "t", data)
    with pytest.raises(
        DataError,
        match=r"retain90 is not the first \d+ rows of full \(first "
        r"difference at row 1\).*holdout10 questions are in full",
    ):
        load_tofu(folder)
    assert len(load_tofu(folder, check=False).retain) == len(data["retain90"])


def test_check_invariants_each_problem():
    req = load_tofu("builtin", "10", **SMALL)
    items = {
        "full": req.full,
        "forget10": req.forget,
        "retain90": req.retain,
        "forget10_perturbed": req.eval["forget"],
        "retain_perturbed": req.eval["retain"],
        "holdout10": req.holdout,
    }
    assert check_tofu_invariants(items, "10") == []
    bad = dict(items, forget10=req.forget[:-1])
    problems = check_tofu_invariants(bad, "10")
    assert any("full has" in p for p in problems) and any("tail of full" in p for p in problems)
    assert any("forget10_perturbed does not" in p for p in problems)
    bad = dict(items, retain_perturbed=[QAItem("Not a retain question?", "x")])
    assert check_tofu_invariants(bad, "10") == [
        "1 retain_perturbed questions are not in retain90, e.g. 'Not a retain question?'"
    ]


def test_source_errors(tmp_path, small_folder):
    with pytest.raises(DataError, match=r"no such folder"):
        load_tofu(str(tmp_path / "nope"))
    with pytest.raises(DataError, match=r"no such folder"):
        load_tofu("./relative/nope")
    with pytest.raises(DataError, match=r"is a file"):
        load_tofu(small_folder / "full.jsonl")
    with pytest.raises(ValueError, match=r"apply only to source='builtin'"):
        load_tofu(small_folder, n_people=5)


def test_load_tofu_configs(small_folder):
    rows = load_tofu_configs(
        str(small_folder), ["forget01", "real_authors"], optional=["real_authors"]
    )
    assert list(rows) == ["forget01"] and rows["forget01"] == generate_builtin(**SMALL)["forget01"]
    assert (
        load_tofu_configs("builtin", ["world_facts"], n_people=3, n_world_facts=2)["world_facts"]
        == generate_builtin(n_people=3, n_world_facts=2)["world_facts"]
    )
    with pytest.raises(DataError, match=r"builtin: no config 'real_authors'"):
        load_tofu_configs("builtin", ["real_authors"])


# --- hub (datasets.load_dataset monkeypatched; no network) --------------------------------


def fake_datasets(monkeypatch, folder: Path, calls: list):
    def load_dataset(name, config, split=None):
        calls.append((name, config, split))
        file = folder / f"{config}.jsonl"
        if not file.exists():
            raise ValueError(f"BuilderConfig '{config}' not found")
        return [json.loads(line) for line in file.read_text().splitlines()]

    module = types.ModuleType("datasets")
    module.load_dataset = load_dataset  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", module)


@pytest.mark.filterwarnings("ignore:hub dataset .* optional config 'real_authors")
def test_hub_same_as_folder(monkeypatch, small_folder):
    calls: list = []
    fake_datasets(monkeypatch, small_folder, calls)
    hub, local = load_tofu("locuslab/TOFU", "forget05"), load_tofu(small_folder, "forget05")
    assert hub.name == "tofu"
    assert (hub.forget, hub.retain, hub.holdout, hub.full, hub.eval) == (
        local.forget,
        local.retain,
        local.holdout,
        local.full,
        local.eval,
    )
    assert {c[0] for c in calls} == {"locuslab/TOFU"} and {c[2] for c in calls} == {"train"}
    assert {c[1] for c in calls} >= set(required_configs("forget05"))


@pytest.mark.filterwarnings("ignore:hub dataset .* optional config 'real_authors")
def test_hub_errors(monkeypatch, tmp_path):
    folder = write_folder(
        tmp_path / "t", generate_builtin(**SMALL), skip={"holdout10", "world_facts"}
    )
    fake_datasets(monkeypatch, folder, [])
    with pytest.raises(
        DataError, match=r"hub dataset 'someone/TOFU', config 'holdout10': could not load"
    ):
        load_tofu("someone/TOFU", "forget10")
    with pytest.warns(UserWarning, match=r"optional config 'world_facts' not loaded"):
        req = load_tofu("someone/TOFU", "forget05")
    assert "world_facts" in req.eval  # rebuilt from world_facts_perturbed alone
    assert req.eval["world_facts"][0].options == ()


@pytest.mark.filterwarnings("ignore:hub dataset .* optional config 'real_authors")
def test_hub_row_error_names_config_and_row(monkeypatch, tmp_path):
    data = generate_builtin(**SMALL)
    data["forget05"][1]["question"] = None
    fake_datasets(monkeypatch, write_folder(tmp_path / "t", data), [])
    with pytest.raises(
        DataError, match=r"hub dataset 'a/b' config 'forget05': row 2: field 'question' is null"
    ):
        load_tofu("a/b", "5")


# --- the real TOFU files ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_forget10():
    return load_tofu(TOFU_DIR, "forget10")


@needs_tofu
@pytest.mark.parametrize(
    "split, n_forget, n_retain", [("forget01", 40, 3960), ("forget05", 200, 3800)]
)
def test_real_tofu_sizes(split, n_forget, n_retain):
    req = load_tofu(TOFU_DIR, split)
    assert (len(req.forget), len(req.retain), len(req.holdout), len(req.full)) == (
        n_forget,
        n_retain,
        n_forget,
        4000,
    )
    assert len(req.eval["forget"]) == n_forget


@needs_tofu
def test_real_tofu_forget10(real_forget10):
    req = real_forget10
    assert (req.name, req.split) == ("tofu", "forget10")
    assert (len(req.forget), len(req.retain), len(req.holdout), len(req.full)) == (
        400,
        3600,
        400,
        4000,
    )
    assert req.full[:3600] == req.retain
    assert [x.question for x in req.eval["forget"]] == [x.question for x in req.full[3600:]]
    full_questions = {x.question for x in req.full}
    assert not any(x.question in full_questions for x in req.holdout)
    assert len(req.eval["retain"]) == 400
    assert all(
        len(x.perturbed_answers) == 5 and x.paraphrased_answer and x.paraphrased_question
        for x in req.eval["forget"] + req.eval["retain"]
    )
    assert (len(req.eval["real_authors"]), len(req.eval["world_facts"])) == (100, 117)
    for x in req.eval["world_facts"] + req.eval["real_authors"]:
        assert len(x.options) == 4 and x.answer in x.options and len(x.perturbed_answers) == 3
        assert set(x.perturbed_answers) == set(x.options) - {x.answer}
