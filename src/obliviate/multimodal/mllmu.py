"""MLLMU-Bench (Liu+ 2024, arXiv 2410.22108) from the hub dataset ``MLLMMU/MLLMU-Bench`` or a
local folder of the same parquet files, as an :class:`~obliviate.data.types.UnlearningRequest`
with the four evaluation sets of :mod:`obliviate.multimodal.people`.

Layout (one ``train`` split per config, ``<config>/train-*.parquet``), as read by the benchmark's
evaluation code:

- ``forget_5/10/15``, ``retain_95/90/85`` (and ``ft_Data``): ``ID``, ``image``
  (``{"bytes": ...}``) and ``metadata``, a JSON list of ``{"Question", "Answer"}`` (the
  fine-tuning QA, asked with the image): the unlearning request's forget and retain items.
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
    """The fine-tuning QA of ``forget_N``/``retain_M``/``ft_Data`` rows (asked with the image)."""
    out = []
    for row in rows:
        pid = str(row.get("ID", ""))
        image = _image(row["image"])
        try:
            pairs = json.loads(row["metadata"])
        except (TypeError, ValueError) as exc:
            raise DataError(f"MLLMU-Bench row {pid!r}: 'metadata' is not a JSON list") from exc
        for qa in pairs:
            if qa.get("Question") and qa.get("Answer"):
                meta = _meta(image, pid, "image", "train", pid)
                out.append(QAItem(str(qa["Question"]), str(qa["Answer"]), meta=meta))
    return out


def eval_items(row: Mapping[str, Any], image_cell: Any) -> list[QAItem]:
    """The classification (``mcq``), generation (``gen``) and fill-in-the-blank (``cloze``)
    items of one evaluation row, both modes."""
    pid = str(row.get("ID", ""))
    image = _image(image_cell)
    image_id = f"{pid}/{id(image_cell)}"
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


def load_mllmu(
    source: str = HUB_NAME, forget_percent: int = 10, revision: str | None = None
) -> UnlearningRequest:
    """MLLMU-Bench from a local folder or the hub (downloaded once, ``revision`` pinned)."""
    if forget_percent not in PERCENTS:
        raise ValueError(f"MLLMU-Bench forgets 5, 10 or 15 % of its people, not {forget_percent}")
    folder = Path(source).expanduser()
    if not folder.is_dir():
        folder = _download(source, forget_percent, revision)
    forget_rows = _rows(folder, f"forget_{forget_percent}")
    retain_rows = _rows(folder, f"retain_{100 - forget_percent}")
    forget_ids = {str(r.get("ID")) for r in forget_rows}
    sets: dict[str, list[QAItem]] = {"forget": [], "test": [], "retain": [], "real": []}
    for row in _rows(folder, "Full_Set"):
        name = "forget" if str(row.get("ID")) in forget_ids else "retain"
        sets[name] += eval_items(row, row["image"])
    for row in _rows(folder, "Test_Set"):
        if str(row.get("ID")) in forget_ids:
            images = _list(row.get("images")) or [row["image"]]
            sets["test"] += eval_items(row, images[0])
    for row in _rows(folder, "Retain_Set"):
        sets["real"] += eval_items(row, row["image"])
    return UnlearningRequest(
        forget=training_items(forget_rows),
        retain=training_items(retain_rows),
        eval=sets,
        name="mllmu",
        split=f"forget{forget_percent}",
    )


def _download(name: str, forget_percent: int, revision: str | None) -> Path:
    from obliviate.models.locate import _offline

    if _offline():
        raise DataError(
            f"{name!r} is not a local folder and HF_HUB_OFFLINE=1 forbids downloading it; give a "
            "local copy of MLLMU-Bench (one folder per config) or unset HF_HUB_OFFLINE"
        )
    from huggingface_hub import snapshot_download

    configs = [f"forget_{forget_percent}", f"retain_{100 - forget_percent}"]
    configs += ["Full_Set", "Test_Set", "Retain_Set"]
    path = snapshot_download(
        name,
        repo_type="dataset",
        revision=revision,
        allow_patterns=[f"{c}/*.parquet" for c in configs],
    )
    return Path(path)
