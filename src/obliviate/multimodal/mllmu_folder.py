"""MLLMU-Bench (Liu+ 2024, arXiv 2410.22108) from the authors' folder release, as the same
:class:`~obliviate.data.types.UnlearningRequest` as the hub's parquet files
(:mod:`obliviate.multimodal.mllmu`).

Layout, as the authors' evaluation and split scripts read it::

    Full_Set/  Test_Set/  Retain_Set/     the fictitious people, the same people in transformed
                                          portraits, the real celebrities; each with
        data_original/<ID>.png|.jpg|.jpeg     the portrait (Test_Set: also <ID>/ holding
                                              <ID>_pose*.png variants; the first is used)
        data_profile/<ID>.json                the profile (its question/answer pair: the
                                              fine-tuning QA when Train_data/ is absent)
        classification_qa/<ID>_questions.json {"ID", "Image_Textual_Questions",
                                              "Pure_Text_Questions": [{"Question", "Options":
                                              {"A".."D"}, "Correct_Answer"}]}
        generation_qa/<ID>_generation_questions.json
                                              {"ID", "Generation_Questions": [{"Type":
                                              "Image_Textual"|"Pure_Text", "Question",
                                              "Ground_Truth"}]}
    Data_split/forget_<N>/forget_ids.json     JSON list of the forget IDs (N = 5, 10, 15)
    Data_split/retain_<100-N>/retain_ids.json JSON list of the retain IDs
    Train_data/full_train/<ID>_qa.json        optional: {"metadata": [{"Question", "Answer"}]},
                                              the fine-tuning QA that unlearning uses

Sets as in the parquet layout: forget = ``Full_Set`` people of the forget IDs, test =
``Test_Set`` people of the forget IDs, retain = ``Full_Set`` people of the retain IDs, real =
every ``Retain_Set`` person. The folder release has no fill-in-the-blank files, so it gives no
cloze items. Any missing or malformed piece is one :class:`~obliviate.data.types.DataError`
naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from obliviate.data.types import DataError, QAItem, UnlearningRequest

SETS = ("Full_Set", "Test_Set", "Retain_Set")
PARTS = ("data_original", "classification_qa", "generation_qa")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
LAYOUT = (
    "the MLLMU-Bench folder release holds Full_Set/, Test_Set/ and Retain_Set/ (each with "
    "data_original/, classification_qa/, generation_qa/) and Data_split/forget_N/forget_ids.json "
    "with Data_split/retain_M/retain_ids.json"
)


def is_folder_release(root: Path) -> bool:
    """``root`` is laid out as the folder release (not the parquet layout)."""
    return (root / "Data_split").is_dir() or (root / "Full_Set" / "classification_qa").is_dir()


def _json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path} is missing; {LAYOUT}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc})") from exc


def _ids(path: Path) -> list[str]:
    ids = _json(path)
    if not isinstance(ids, list) or not all(isinstance(i, (str, int)) for i in ids):
        raise DataError(f'{path} must be a JSON list of person IDs such as ["001", "002"]')
    return [str(i) for i in ids]


def _image(folder: Path, pid: str) -> Any:
    """The portrait ``<pid>.png|.jpg|.jpeg`` in ``folder``, or the first image of ``folder/<pid>/``
    (the transformed portraits of the test set, ``<pid>_pose*`` ones first)."""
    from PIL import Image

    candidates = [folder / f"{pid}{s}" for s in IMAGE_SUFFIXES]
    sub = folder / pid
    if sub.is_dir():
        files = sorted(f for f in sub.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        candidates += sorted(files, key=lambda f: "pose" not in f.name)
    for path in candidates:
        if path.is_file():
            try:
                return Image.open(path).convert("RGB")
            except OSError as exc:
                raise DataError(f"{path} is not a readable image ({exc})") from exc
    raise DataError(f"{folder} has no portrait of person {pid!r} ({pid}.png, .jpg or {pid}/)")


def _tasks(root: Path, set_name: str, pid: str, classification: Any = None) -> dict[str, Any]:
    """One person's questions as the parquet row's ``Classification_Task`` and
    ``Generation_Task`` structures."""
    base = root / set_name
    cls = classification
    if cls is None:
        cls = _json(base / "classification_qa" / f"{pid}_questions.json")
    gen = _json(base / "generation_qa" / f"{pid}_generation_questions.json")
    for path, doc, key in (
        (base / "classification_qa" / f"{pid}_questions.json", cls, "Image_Textual_Questions"),
        (base / "generation_qa" / f"{pid}_generation_questions.json", gen, "Generation_Questions"),
    ):
        if not isinstance(doc, dict) or not isinstance(doc.get(key, []), list):
            raise DataError(f"{path} must be a JSON object whose {key!r} is a list")
    return {
        "ID": pid,
        "Classification_Task": {
            k: cls.get(k, []) for k in ("Image_Textual_Questions", "Pure_Text_Questions")
        },
        "Generation_Task": gen.get("Generation_Questions", []),
    }


def _person(root: Path, set_name: str, pid: str, tag: str, cls: Any = None) -> list[QAItem]:
    from obliviate.multimodal.mllmu import task_items

    row = _tasks(root, set_name, pid, cls)
    image = _image(root / set_name / "data_original", pid)
    try:
        return task_items(row, image, f"{tag}/{pid}")
    except (KeyError, TypeError, AttributeError) as exc:
        raise DataError(
            f"{root / set_name}: a question of person {pid!r} lacks a field ({exc}); "
            "classification questions need Question, Options and Correct_Answer, generation "
            "questions Type, Question and Ground_Truth"
        ) from exc


def _celebrities(root: Path) -> list[tuple[str, Any]]:
    """``(ID, classification JSON)`` of every ``Retain_Set`` person, in file-name order."""
    out = []
    for path in sorted((root / "Retain_Set" / "classification_qa").glob("*.json")):
        doc = _json(path)
        if not isinstance(doc, dict) or not doc.get("ID"):
            raise DataError(f"{path} must be a JSON object with the person's 'ID'")
        out.append((str(doc["ID"]), doc))
    return out


def _training(root: Path, ids: list[str]) -> list[QAItem]:
    """The fine-tuning QA of ``ids``, asked with the ``Full_Set`` portrait: the
    ``metadata`` of ``Train_data/full_train/<ID>_qa.json`` when that folder exists, else the
    profile's own pair (``question``, ``answer`` of ``Full_Set/data_profile/<ID>.json``, which
    the authors' split script adds to a person's QA)."""
    from obliviate.multimodal.mllmu import qa_items

    folder = root / "Train_data" / "full_train"
    out: list[QAItem] = []
    for pid in ids:
        path = folder / f"{pid}_qa.json"
        if not folder.is_dir():
            path = root / "Full_Set" / "data_profile" / f"{pid}.json"
        doc = _json(path)
        if not isinstance(doc, dict):
            raise DataError(f"{path} must be a JSON object")
        pairs = doc.get("metadata")
        if pairs is None:
            pairs = [{"Question": doc.get("question"), "Answer": doc.get("answer")}]
        out += qa_items(pid, _image(root / "Full_Set" / "data_original", pid), pairs)
    return out


def check_layout(root: Path, forget_percent: int) -> tuple[Path, Path]:
    """The two ID files of the split, after checking every folder of the layout exists."""
    for set_name in SETS:
        for part in PARTS:
            if not (root / set_name / part).is_dir():
                raise DataError(f"{root / set_name / part} is missing; {LAYOUT}")
    split = root / "Data_split"
    forget = split / f"forget_{forget_percent}" / "forget_ids.json"
    retain = split / f"retain_{100 - forget_percent}" / "retain_ids.json"
    return forget, retain


def load_folder_release(root: Path, forget_percent: int) -> UnlearningRequest:
    """The request of the folder release at ``root`` for ``forget_percent`` (5, 10 or 15)."""
    forget_file, retain_file = check_layout(root, forget_percent)
    forget_ids, retain_ids = _ids(forget_file), _ids(retain_file)
    both = sorted(set(forget_ids) & set(retain_ids))
    if both:
        raise DataError(f"{forget_file} and {retain_file} share the IDs {both[:5]}")
    sets: dict[str, list[QAItem]] = {"forget": [], "test": [], "retain": [], "real": []}
    for pid in forget_ids:
        sets["forget"] += _person(root, "Full_Set", pid, "full")
        sets["test"] += _person(root, "Test_Set", pid, "test")
    for pid in retain_ids:
        sets["retain"] += _person(root, "Full_Set", pid, "full")
    for pid, doc in _celebrities(root):
        sets["real"] += _person(root, "Retain_Set", pid, "real", doc)
    return UnlearningRequest(
        forget=_training(root, forget_ids),
        retain=_training(root, retain_ids),
        eval=sets,
        name="mllmu",
        split=f"forget{forget_percent}",
    )
