"""The MLLMU-Bench folder release (obliviate.multimodal.mllmu_folder) on small local files of
the authors' layout, written here: Full_Set/Test_Set/Retain_Set with data_original/,
classification_qa/, generation_qa/, and Data_split/forget_N, retain_M ID lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from obliviate.data.types import DataError
from obliviate.multimodal.mllmu import load_mllmu


def _png(path: Path, colour: tuple[int, int, int]) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def _json(path: Path, doc: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def _person(root: Path, set_name: str, pid: str, name: str) -> None:
    base = root / set_name
    _json(
        base / "classification_qa" / f"{pid}_questions.json",
        {
            "ID": pid,
            "Image_Textual_Questions": [
                {
                    "Question": "Who is this?",
                    "Options": {"A": name, "B": "Bo", "C": "Cy", "D": "Di"},
                    "Correct_Answer": "A",
                }
            ],
            "Pure_Text_Questions": [
                {
                    "Question": f"Where was {name} born?",
                    "Options": {"A": "Rome", "B": "Oslo", "C": "Lima", "D": "Kyiv"},
                    "Correct_Answer": "D",
                }
            ],
        },
    )
    _json(
        base / "generation_qa" / f"{pid}_generation_questions.json",
        {
            "ID": pid,
            "Generation_Questions": [
                {"Type": "Image_Textual", "Question": "What is her job?", "Ground_Truth": "baker"},
                {
                    "Type": "Pure_Text",
                    "Question": f"What does {name} do?",
                    "Ground_Truth": "baking",
                },
            ],
        },
    )
    profile = {"ID": pid, "biography": {"Name": name}, "question": "Who?", "answer": name}
    _json(base / "data_profile" / f"{pid}.json", profile)


@pytest.fixture
def release(tmp_path: Path) -> Path:
    for pid in ("001", "002", "003"):
        _person(tmp_path, "Full_Set", pid, f"P{pid}")
        _person(tmp_path, "Test_Set", pid, f"P{pid}")
        _png(tmp_path / "Full_Set" / "data_original" / f"{pid}.png", (1, 1, 1))
        # the test set's transformed portraits: a folder per person
        _png(tmp_path / "Test_Set" / "data_original" / pid / f"{pid}_pose1_gen1.png", (7, 7, 7))
    _person(tmp_path, "Retain_Set", "c01", "Celeb")
    _png(tmp_path / "Retain_Set" / "data_original" / "c01.jpg", (5, 5, 5))
    _json(tmp_path / "Data_split" / "forget_5" / "forget_ids.json", ["001"])
    _json(tmp_path / "Data_split" / "retain_95" / "retain_ids.json", ["002", "003"])
    qa = {"metadata": [{"Question": "Who is this?", "Answer": "This is P."}]}
    for pid in ("001", "002", "003"):
        _json(tmp_path / "Train_data" / "full_train" / f"{pid}_qa.json", qa)
    return tmp_path


def test_folder_release_builds_the_same_request_shape(release: Path) -> None:
    req = load_mllmu(str(release), 5)
    assert req.split == "forget5" and req.name == "mllmu"
    assert {k: len(v) for k, v in req.eval.items()} == {
        "forget": 4,
        "test": 4,
        "retain": 8,
        "real": 4,
    }
    assert [it.meta["person"] for it in req.forget] == ["001"]
    assert len(req.retain) == 2 and all(it.meta["mode"] == "image" for it in req.retain)
    mcq = [it for it in req.eval["forget"] if it.meta["task"] == "mcq"]
    assert [it.answer for it in mcq] == ["P001", "Kyiv"]
    assert [it.meta["mode"] for it in mcq] == ["image", "text"]
    test_image = req.eval["test"][0].meta["image"]
    assert test_image.getpixel((0, 0)) == (7, 7, 7)
    assert req.eval["real"][0].meta["image"].getpixel((0, 0)) == (5, 5, 5)
    assert not any(it.meta["task"] == "cloze" for v in req.eval.values() for it in v)


def test_without_train_data_the_profile_pair_is_the_training_qa(release: Path) -> None:
    import shutil

    shutil.rmtree(release / "Train_data")
    req = load_mllmu(str(release), 5)
    assert [(it.question, it.answer) for it in req.forget] == [("Who?", "P001")]
    assert req.forget[0].meta["image"] is not None and len(req.retain) == 2


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: (r / "Data_split" / "forget_5" / "forget_ids.json").unlink(), "is missing"),
        (lambda r: _json(r / "Data_split" / "forget_5" / "forget_ids.json", {"a": 1}), "JSON list"),
        (lambda r: _json(r / "Data_split" / "forget_5" / "forget_ids.json", ["002"]), "share"),
        (
            lambda r: (r / "Test_Set" / "generation_qa").rename(r / "gen"),
            "generation_qa is missing",
        ),
        (lambda r: (r / "Full_Set" / "data_original" / "001.png").unlink(), "no portrait"),
        (
            lambda r: (r / "Full_Set" / "classification_qa" / "002_questions.json").write_text("{"),
            "not valid JSON",
        ),
        (
            lambda r: _json(
                r / "Full_Set" / "classification_qa" / "003_questions.json",
                {"ID": "003", "Image_Textual_Questions": [{"Question": "?"}]},
            ),
            "lacks a field",
        ),
    ],
)
def test_bad_layouts_are_one_sentence(release: Path, damage, message: str) -> None:
    damage(release)
    with pytest.raises(DataError, match=message) as err:
        load_mllmu(str(release), 5)
    assert "\n" not in str(err.value)
