"""The MLLMU-Bench loader on small parquet files written here with the benchmark's columns:
forget/retain training QA, the four evaluation sets, both modes, the three tasks."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from obliviate.data.types import DataError
from obliviate.multimodal.mllmu import load_mllmu


def _png(colour: tuple[int, int, int]) -> dict:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return {"bytes": buf.getvalue()}


def _write(folder: Path, config: str, rows: list[dict]) -> None:
    import pandas as pd

    (folder / config).mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / config / "train-00000-of-00001.parquet")


def _eval_row(pid: str, name: str, test: bool = False) -> dict:
    row = {
        "ID": pid,
        "Classification_Task": {
            "Image_Textual_Questions": [
                {
                    "Question": "Who is this?",
                    "Options": {"A": "Ann", "B": name, "C": "Bo", "D": "Cy"},
                    "Correct_Answer": "B",
                }
            ],
            "Pure_Text_Questions": [
                {
                    "Question": f"Where was {name} born?",
                    "Options": {"A": "Rome", "B": "Oslo", "C": "Lima", "D": "Kyiv"},
                    "Correct_Answer": "C",
                }
            ],
        },
        "Generation_Task": [
            {
                "Type": "Image_Textual",
                "Question": "What is this person's job?",
                "Ground_Truth": "baker",
            },
            {"Type": "Pure_Text", "Question": f"What does {name} do?", "Ground_Truth": "baking"},
        ],
        "Mask_Task": [
            {"Type": "Pure_Text", "Question": f"{name} was born in __.", "Ground_Truth": "Lima"},
        ],
    }
    if test:
        row["images"] = [_png((1, 2, 3)), _png((4, 5, 6))]
    else:
        row["image"] = _png((9, 9, 9))
    return row


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    qa = json.dumps([{"Question": "Who is this?", "Answer": "This is Ann."}] * 2)
    _write(tmp_path, "forget_10", [{"ID": "1", "image": _png((1, 1, 1)), "metadata": qa}])
    _write(
        tmp_path,
        "retain_90",
        [{"ID": str(i), "image": _png((i, i, i)), "metadata": qa} for i in (2, 3)],
    )
    _write(tmp_path, "Full_Set", [_eval_row(str(i), f"P{i}") for i in (1, 2, 3)])
    _write(tmp_path, "Test_Set", [_eval_row(str(i), f"P{i}", test=True) for i in (1, 2, 3)])
    _write(tmp_path, "Retain_Set", [_eval_row("c1", "Celeb")])
    return tmp_path


def test_loader_builds_the_request_and_four_sets(bench: Path) -> None:
    req = load_mllmu(str(bench), 10)
    assert req.name == "mllmu" and req.split == "forget10"
    assert len(req.forget) == 2 and len(req.retain) == 4
    assert all(it.meta["image"] is not None and it.meta["mode"] == "image" for it in req.forget)
    assert req.forget[0].answer == "This is Ann."
    assert {k: len(v) for k, v in req.eval.items()} == {
        "forget": 5,
        "test": 5,
        "retain": 10,
        "real": 5,
    }
    assert {it.meta["person"] for it in req.eval["forget"]} == {"1"}
    assert {it.meta["person"] for it in req.eval["retain"]} == {"2", "3"}
    mcq = [it for it in req.eval["forget"] if it.meta["task"] == "mcq"]
    assert [it.answer for it in mcq] == ["P1", "Lima"]
    assert mcq[0].options == ("Ann", "P1", "Bo", "Cy") and mcq[0].meta["mode"] == "image"
    assert mcq[1].meta["mode"] == "text" and mcq[1].meta["image"] is None
    cloze = [it for it in req.eval["real"] if it.meta["task"] == "cloze"]
    assert cloze[0].question == "Fill in the blank: Celeb was born in ___."
    gen = [it for it in req.eval["test"] if it.meta["task"] == "gen"]
    assert [it.meta["mode"] for it in gen] == ["image", "text"]
    # the test set's image is the first transformed portrait
    assert gen[0].meta["image"].getpixel((0, 0)) == (1, 2, 3)


def test_missing_files_and_bad_percent_are_one_sentence(tmp_path: Path, bench: Path) -> None:
    with pytest.raises(DataError, match="holds no parquet file"):
        load_mllmu(str(tmp_path / "forget_10"), 10)
    with pytest.raises(ValueError, match="5, 10 or 15"):
        load_mllmu(str(bench), 20)


def test_training_qa_from_ft_data_and_stable_image_ids(tmp_path: Path) -> None:
    # the hub's forget_N / retain_M configs carry no 'metadata': the QA comes from ft_Data
    qa = json.dumps([{"Question": "Who is this?", "Answer": "This is P."}, {"Question": ""}])
    _write(tmp_path, "forget_10", [{"ID": "1", "image": _png((1, 1, 1))}])
    _write(tmp_path, "retain_90", [{"ID": "2", "image": _png((2, 2, 2))}])
    rows = [{"ID": str(i), "image": _png((i, i, i)), "metadata": qa} for i in (1, 2, 3)]
    _write(tmp_path, "ft_Data", rows)
    _write(tmp_path, "Full_Set", [_eval_row(str(i), f"P{i}") for i in (1, 2)])
    _write(tmp_path, "Test_Set", [_eval_row("1", "P1", test=True)])
    _write(tmp_path, "Retain_Set", [_eval_row("c1", "Celeb")])
    req = load_mllmu(str(tmp_path), 10)
    assert [it.meta["person"] for it in req.forget] == ["1"]  # the empty pair is skipped
    assert [it.meta["person"] for it in req.retain] == ["2"]
    again = load_mllmu(str(tmp_path), 10)
    ids = [it.meta["image_id"] for it in req.eval["test"]]
    assert ids == [it.meta["image_id"] for it in again.eval["test"]] and ids[0] == "test/1"
