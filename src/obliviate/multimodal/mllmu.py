"""MLLMU-Bench (Liu+ 2024, arXiv 2410.22108) from the hub dataset ``MLLMMU/MLLMU-Bench`` or a
local folder of the same parquet files, as an :class:`~obliviate.data.types.UnlearningRequest`
with the four evaluation sets of :mod:`obliviate.multimodal.people`. The authors' folder release
(``Full_Set/classification_qa/`` ..., ``Data_split/``) is read by
:mod:`obliviate.multimodal.mllmu_folder`.

Layout (one ``train`` split per config, ``<config>/train-*.parquet``), as read by the benchmark's
evaluation code:

- ``forget_5/10/15``, ``retain_95/90/85``: ``ID`` (the split), ``image`` (``{"bytes": ...}``),
  the profile's ``question``/``answer`` and the evaluation tasks below; ``ft_Data``: ``ID``,
  ``image`` and ``metadata``, a JSON list of ``{"Question", "Answer"}`` (the fine-tuning QA,
  asked with the image). The unlearning request's forget and retain items are the ``metadata``
  of the split's IDs (of the split rows when they carry it, else of ``ft_Data``; without
  either, each row's profile pair).
- ``Full_Set`` (fictitious people), ``Test_Set`` (the same people, ``images``: a list of
  transformed portraits) and ``Retain_Set`` (real celebrities): ``ID``, ``image``/``images``,
  ``Classification_Task`` (``{"Image_Textual_Questions"|"Pure_Text_Questions": [{"Question",
  "Options": {"A".."D"}, "Correct_Answer"}]}``), ``Generation_Task`` and ``Mask_Task`` (lists of
  ``{"Type": "Image_Textual"|"Pure_Text", "Question", "Ground_Truth"}``; a cloze question marks
  its blank with ``__``).

Sets: forget = ``Full_Set`` rows of the forget IDs, test = ``Test_Set`` rows of the forget IDs
(the first of their transformed images: deterministic, where the benchmark's script draws one at
random), retain = ``Full_Set`` rows of the other IDs, real = ``Retain_Set``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from obliviate.data.types import DataError, QAItem, UnlearningRequest

HUB_NAME = "MLLMMU/MLLMU-Bench"
PERCENTS = (5, 10, 15)


def _image(cell: Any) -> Any:
    from PIL import Image

    data = cell.get("bytes") if isinstance(cell, Mapping) else cell
    if not isinstance(data, (bytes, bytearray)):
        raise DataError("an MLLMU-Bench image cell holds no bytes; expected {'bytes': ...}")
    return Image.open(io.BytesIO(data)).convert("RGB")


def _rows(folder: Path, config: str) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    files = sorted((folder / config).glob("*.parquet"))
    if not files:
        raise DataError(
            f"{folder / config} holds no parquet file; give a copy of {HUB_NAME} with one "
            "folder per config (forget_10/, retain_90/, Full_Set/, Test_Set/, Retain_Set/)"
        )
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def _list(value: Any) -> list[Any]:
    return [] if value is None else list(value)


def _meta(image: Any, image_id: str, mode: str, task: str, person: str) -> dict[str, Any]:
    return {
        "image": image if mode == "image" else None,
        "image_id": image_id if mode == "image" else None,
        "mode": mode,
        "task": task,
        "person": person,
    }


def training_items(rows: Iterable[Mapping[str, Any]]) -> list[QAItem]:
    """The fine-tuning QA of ``ft_Data`` rows (or of ``forget_N``/``retain_M`` rows that carry
    ``metadata``), asked with the image."""
    out = []
    for row in rows:
        pid = str(row.get("ID", ""))
        out += qa_items(pid, _image(row["image"]), row["metadata"])
    return out


def qa_items(pid: str, image: Any, metadata: Any) -> list[QAItem]:
    """``metadata`` (a JSON list of ``{"Question", "Answer"}``, or the list itself) as items
    asked with ``image``; pairs without both fields are skipped, as the authors' loader does."""
    try:
        pairs = json.loads(metadata) if isinstance(metadata, (str, bytes)) else list(metadata)
    except (TypeError, ValueError) as exc:
        raise DataError(f"MLLMU-Bench person {pid!r}: 'metadata' is not a JSON list") from exc
    meta = _meta(image, f"train/{pid}", "image", "train", pid)
    return [
        QAItem(str(qa["Question"]), str(qa["Answer"]), meta=dict(meta))
        for qa in pairs
        if isinstance(qa, Mapping) and qa.get("Question") and qa.get("Answer")
    ]


def eval_items(row: Mapping[str, Any], image_cell: Any, image_id: str) -> list[QAItem]:
    """The classification (``mcq``), generation (``gen``) and fill-in-the-blank (``cloze``)
    items of one evaluation row, both modes; ``image_id`` names its image (stable across
    runs: part of the evaluation key)."""
    return task_items(row, _image(image_cell), image_id)


def task_items(row: Mapping[str, Any], image: Any, image_id: str) -> list[QAItem]:
    """The items of one person's ``Classification_Task``, ``Generation_Task`` and
    ``Mask_Task`` (the folder release's JSON files hold the same structures)."""
    pid = str(row.get("ID", ""))
    out = []
    tasks = row.get("Classification_Task") or {}
    for key, mode in (("Image_Textual_Questions", "image"), ("Pure_Text_Questions", "text")):
        for q in _list(tasks.get(key)):
            options = {k: str(v) for k, v in dict(q["Options"]).items() if v is not None}
            letters = sorted(options)
            answer = options.get(str(q["Correct_Answer"]))
            if answer is None:
                raise DataError(f"MLLMU-Bench row {pid!r}: the correct option is not an option")
            out.append(
                QAItem(
                    str(q["Question"]),
                    answer,
                    options=tuple(options[k] for k in letters),
                    meta=_meta(image, image_id, mode, "mcq", pid),
                )
            )
    for column, task in (("Generation_Task", "gen"), ("Mask_Task", "cloze")):
        for q in _list(row.get(column)):
            mode = "image" if q["Type"] == "Image_Textual" else "text"
            question = str(q["Question"])
            if task == "cloze":
                question = "Fill in the blank: " + question.replace("__", "___")
            meta = _meta(image, image_id, mode, task, pid)
            out.append(QAItem(question, str(q["Ground_Truth"]), meta=meta))
    return out


def check_percent(forget_percent: int) -> None:
    if forget_percent not in PERCENTS:
        raise ValueError(f"MLLMU-Bench forgets 5, 10 or 15 % of its people, not {forget_percent}")


def load_mllmu(
    source: str = HUB_NAME, forget_percent: int = 10, revision: str | None = None
) -> UnlearningRequest:
    """MLLMU-Bench from a local folder (the hub's parquet layout, or the authors' folder release:
    :mod:`obliviate.multimodal.mllmu_folder`) or the hub (downloaded once, ``revision``
    pinned)."""
    check_percent(forget_percent)
    folder = Path(source).expanduser()
    if not folder.is_dir():
        folder = _download(source, forget_percent, revision)
    from obliviate.multimodal.mllmu_folder import is_folder_release, load_folder_release

    if is_folder_release(folder):
        return load_folder_release(folder, forget_percent)
    forget_rows = _rows(folder, f"forget_{forget_percent}")
    retain_rows = _rows(folder, f"retain_{100 - forget_percent}")
    forget_ids = {str(r.get("ID")) for r in forget_rows}
    sets: dict[str, list[QAItem]] = {"forget": [], "test": [], "retain": [], "real": []}
    for row in _rows(folder, "Full_Set"):
        name = "forget" if str(row.get("ID")) in forget_ids else "retain"
        sets[name] += eval_items(row, row["image"], f"full/{row.get('ID')}")
    for row in _rows(folder, "Test_Set"):
        if str(row.get("ID")) in forget_ids:
            images = _list(row.get("images")) or [row["image"]]
            sets["test"] += eval_items(row, images[0], f"test/{row.get('ID')}")
    for row in _rows(folder, "Retain_Set"):
        sets["real"] += eval_items(row, row["image"], f"real/{row.get('ID')}")
    forget, retain = _training(folder, forget_rows, retain_rows)
    return UnlearningRequest(
        forget=forget,
        retain=retain,
        eval=sets,
        name="mllmu",
        split=f"forget{forget_percent}",
    )


def _training(
    folder: Path, forget_rows: list[dict[str, Any]], retain_rows: list[dict[str, Any]]
) -> tuple[list[QAItem], list[QAItem]]:
    """The forget and retain people's fine-tuning QA: the split rows' ``metadata`` when they
    carry it, else the ``ft_Data`` rows' of their IDs (the hub's ``forget_N``/``retain_M``
    configs list no ``metadata`` column; ``ft_Data`` does), else each row's own profile pair
    (``question``, ``answer``, which the authors' split script adds to a person's QA)."""
    if all("metadata" in r for r in forget_rows + retain_rows):
        return training_items(forget_rows), training_items(retain_rows)
    if (folder / "ft_Data").is_dir():
        by_id = {str(r.get("ID")): r for r in _rows(folder, "ft_Data")}
        if any("metadata" not in r for r in by_id.values()):
            raise DataError(f"{folder / 'ft_Data'} has rows without 'metadata' (the QA list)")

        def qa(rows: list[dict[str, Any]]) -> list[QAItem]:
            return training_items(
                by_id[str(r.get("ID"))] for r in rows if str(r.get("ID")) in by_id
            )

        return qa(forget_rows), qa(retain_rows)
    return profile_items(forget_rows), profile_items(retain_rows)


def profile_items(rows: Iterable[Mapping[str, Any]]) -> list[QAItem]:
    """Each row's profile question and answer (``question``, ``answer``) asked with its image."""
    out = []
    for row in rows:
        if row.get("question") and row.get("answer"):
            pair = [{"Question": row["question"], "Answer": row["answer"]}]
            out += qa_items(str(row.get("ID", "")), _image(row["image"]), pair)
    return out


def _download(name: str, forget_percent: int, revision: str | None) -> Path:
    from obliviate.models.locate import _offline

    if _offline():
        raise DataError(
            f"{name!r} is not a local folder and HF_HUB_OFFLINE=1 forbids downloading it; give a "
            "local copy of MLLMU-Bench (one folder per config) or unset HF_HUB_OFFLINE"
        )
    from huggingface_hub import snapshot_download

    configs = [f"forget_{forget_percent}", f"retain_{100 - forget_percent}"]
    configs += ["Full_Set", "Test_Set", "Retain_Set", "ft_Data"]
    path = snapshot_download(
        name,
        repo_type="dataset",
        revision=revision,
        allow_patterns=[f"{c}/*.parquet" for c in configs],
    )
    return Path(path)
