"""Users' own forget / retain / holdout files: JSON, JSON Lines, CSV and plain-text documents.

Formats (chosen by the file extension, case-insensitive):

- ``.json``: a list of objects, or an object ``{"data": [...]}``.
- ``.jsonl``: one JSON object per line; blank lines are skipped.
- ``.csv``: a header row naming the columns (UTF-8, an optional BOM is ignored).
- ``.txt``: **one document per file** (the whole text, not split on blank lines: a book chapter or
  an article is one unit; chunking into model-sized pieces is the tokenizer/collator's job).
  It becomes ``QAItem(question="", answer=text)``.
- a **folder**: every ``.json``/``.jsonl``/``.csv``/``.txt`` file directly inside it, in name
  order (hidden files and other extensions are ignored); a folder of ``.txt`` files gives one
  document per file.

Fields of an object/row: ``question`` and ``answer`` (names configurable) are required. Optional:
``paraphrased_answer``, ``perturbed_answer`` (or ``perturbed_answers``: a list of strings, a JSON
string holding such a list, or one plain string), ``paraphrased_question``, and multiple-choice
options ``option1``, ``option2``, ... (or a list ``options``), ``sensitive_spans`` (substrings of
the answer, a list like ``perturbed_answers``: read by SeUL, docs/methods.md). A row with a ``text`` field and
neither a question nor an answer field is a document (MUSE-style corpora). Other scalar columns
(e.g. ``subject``, read by the editing methods) are kept in the item's ``meta``. Columns with
other names are mapped with a field map (:mod:`obliviate.data.fields`, ``--map
query=question,target=answer``).

Every error is a :class:`~obliviate.data.types.DataError` naming the file, the line/item and the
expected format.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from obliviate.data.fields import FieldMap, check_columns, extra_fields, map_row
from obliviate.data.types import DataError, QAItem, UnlearningRequest

SUPPORTED = (".json", ".jsonl", ".csv", ".txt")

FORMAT_HELP = (
    'expected a .json file (a list of objects or {{"data": [...]}}), a .jsonl file (one JSON '
    "object per line), a .csv file with a header row, a .txt document, or a folder of these; "
    "each object/row needs the fields {q!r} and {a!r}"
)

SPANS = "sensitive_spans"  # substrings of the answer, read by SeUL (docs/methods.md)
Record = tuple[str, Any]  # (where in the file, e.g. "line 3", the raw row)


def _help(question_key: str = "question", answer_key: str = "answer") -> str:
    return FORMAT_HELP.format(q=question_key, a=answer_key)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not valid UTF-8 text (byte {exc.start}); save the file as UTF-8"
        ) from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file: {exc.strerror or exc}") from exc


def read_records(path: str | os.PathLike[str]) -> list[Record]:
    """Read the raw rows of one ``.json``/``.jsonl``/``.csv``/``.txt`` file.

    Returns ``(where, row)`` pairs, ``where`` being ``"line N"`` (JSONL, CSV) or ``"item N"``
    (JSON list, 1-based) so that later errors can name the row. A ``.txt`` file gives one record
    ``{"text": content}``. Raises :class:`DataError` for a missing file, an unknown extension,
    malformed JSON/CSV (with the line number) or a file without any row.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    ext = path.suffix.lower()
    if ext not in SUPPORTED:
        raise DataError(
            f"{path}: unsupported file extension {path.suffix or '(none)'!r}; use one of "
            f"{', '.join(SUPPORTED)} ({_help()})"
        )
    text = _read_text(path)
    records: list[Record]
    if ext == ".jsonl":
        records = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append((f"line {lineno}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path}: line {lineno}: invalid JSON ({exc.msg} at column {exc.colno}); "
                    "expected one JSON object per line"
                ) from exc
    elif ext == ".json":
        try:
            data = json.loads(text) if text.strip() else []
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}: line {exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno}); "
                + _help()
            ) from exc
        if isinstance(data, dict) and "data" in data:
            data = data["data"]
        if not isinstance(data, list):
            raise DataError(
                f"{path}: top-level JSON is a {type(data).__name__}; expected a list of objects "
                'or an object {"data": [...]}'
            )
        records = [(f"item {i}", row) for i, row in enumerate(data, start=1)]
    elif ext == ".csv":
        records = _read_csv(path, text)
    else:  # .txt
        records = [("document", {"text": text})] if text.strip() else []
    if not records:
        raise DataError(f"{path}: the file has no rows; {_help()}")
    return records


def _read_csv(path: Path, text: str) -> list[Record]:
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    records: list[Record] = []
    try:
        if not reader.fieldnames:
            return []
        blank = [i + 1 for i, name in enumerate(reader.fieldnames) if not (name or "").strip()]
        if blank:
            raise DataError(
                f"{path}: line 1: the header has an empty column name (column {blank[0]})"
            )
        for row in reader:
            lineno = reader.line_num
            if None in row:  # more cells than header columns
                n_header = len(reader.fieldnames)
                raise DataError(
                    f"{path}: line {lineno}: {n_header + len(row[None])} cells but the header has "
                    f"{n_header} columns; quote cells that contain commas"
                )
            if all(v is None or v == "" for v in row.values()):
                continue
            records.append((f"line {lineno}", row))
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: malformed CSV ({exc})") from exc
    return records


def _text_field(
    row: dict[str, Any], key: str, where: str, required: bool, hint: str = ""
) -> str | None:
    """A string field; numbers are accepted and converted to strings."""
    value = row.get(key)
    if value is None:
        if required:
            state = "is null" if key in row else "is missing"
            have = ", ".join(repr(k) for k in row) or "none"
            raise DataError(f"{where}: field {key!r} {state} (fields present: {have}){hint}")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    return str(value)


def _string_list(value: Any, where: str, key: str) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped.startswith("["):
            return (value,)
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{where}: field {key!r} starts with '[' but is not a valid JSON list ({exc.msg}); "
                'write it as ["wrong answer 1", "wrong answer 2"]'
            ) from exc
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise DataError(f"{where}: field {key!r} must be a list of strings")
    return tuple(value)


def _options(row: dict[str, Any], where: str) -> tuple[str, ...]:
    if "options" in row:
        return _string_list(row["options"], where, "options")
    options = []
    k = 1
    while f"option{k}" in row:
        options.append(_text_field(row, f"option{k}", where, required=True))
        k += 1
    return tuple(o for o in options if o)  # empty CSV cells are no option


def parse_qa_row(
    row: Any,
    where: str,
    question_key: str = "question",
    answer_key: str = "answer",
    meta: dict[str, Any] | None = None,
) -> QAItem:
    """Turn one raw row (a dict) into a :class:`QAItem`; ``where`` prefixes error messages.

    Shared by the user-file loader and the TOFU loader (local files and hub datasets alike).
    """
    if not isinstance(row, dict):
        raise DataError(
            f"{where}: expected an object with fields {question_key!r} and "
            f"{answer_key!r}, got {type(row).__name__}"
        )
    if question_key not in row and answer_key not in row and "text" in row:
        text = _text_field(row, "text", where, required=True)
        if not text or not text.strip():
            raise DataError(f"{where}: field 'text' is empty")
        return QAItem(
            question="",
            answer=text,
            meta={**extra_fields(row, (SPANS,)), **_spans(row, where), **(meta or {})},
        )
    hint = f"; every row needs the fields {question_key!r} and {answer_key!r}"
    question = _text_field(row, question_key, where, required=True, hint=hint)
    answer = _text_field(row, answer_key, where, required=True, hint=hint)
    if not answer or not answer.strip():
        raise DataError(f"{where}: field {answer_key!r} is empty; every row needs an answer")
    perturbed_key = "perturbed_answer" if "perturbed_answer" in row else "perturbed_answers"
    return QAItem(
        question=question or "",
        answer=answer,
        paraphrased_answer=_text_field(row, "paraphrased_answer", where, required=False) or None,
        perturbed_answers=_string_list(row.get(perturbed_key), where, perturbed_key),
        paraphrased_question=_text_field(row, "paraphrased_question", where, required=False)
        or None,
        options=_options(row, where),
        meta={
            **extra_fields(row, (question_key, answer_key, SPANS)),
            **_spans(row, where),
            **(meta or {}),
        },
    )


def _spans(row: dict[str, Any], where: str) -> dict[str, Any]:
    """``{"sensitive_spans": (...)}`` when the row gives sensitive substrings, else ``{}``."""
    spans = _string_list(row.get(SPANS), where, SPANS)
    return {SPANS: spans} if spans else {}


def _files_in(folder: Path) -> list[Path]:
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SUPPORTED
    )
    if not files:
        found = sorted(p.name for p in folder.iterdir())[:10]
        raise DataError(
            f"{folder}: the folder holds no {'/'.join(SUPPORTED)} file (found: "
            f"{', '.join(found) or 'nothing'}); {_help()}"
        )
    return files


def load_qa_file(
    path: str | os.PathLike[str],
    question_key: str = "question",
    answer_key: str = "answer",
    field_map: FieldMap | None = None,
) -> list[QAItem]:
    """Load QA items (or documents) from a file or a folder of files; see the module docstring.

    ``field_map`` (``{file column: field}``, :mod:`obliviate.data.fields`) renames columns
    first; a mapped column the file lacks is a :class:`DataError` listing its columns.
    ``meta`` of every item records ``source`` (the file) and ``row`` (e.g. ``"line 3"``).
    """
    path = Path(path)
    if path.is_dir():
        items: list[QAItem] = []
        for file in _files_in(path):
            items.extend(load_qa_file(file, question_key, answer_key, field_map))
        return items
    records = read_records(path)
    if path.suffix.lower() != ".txt":
        check_columns([row for _, row in records], field_map, str(path))
    return [
        parse_qa_row(
            map_row(row, field_map),
            f"{path}: {where}",
            question_key,
            answer_key,
            meta={"source": str(path), "row": where},
        )
        for where, row in records
    ]


def _as_items(source: Any, role: str, field_map: FieldMap | None = None) -> list[QAItem]:
    if isinstance(source, (str, os.PathLike)):
        return load_qa_file(source, field_map=field_map)
    if not isinstance(source, Iterable):
        raise DataError(
            f"{role}: expected a path or a list of QA items, got {type(source).__name__}"
        )
    rows = list(source)
    dicts = [x for x in rows if isinstance(x, dict)]
    if dicts:
        check_columns(dicts, field_map, role)
    items = []
    for i, x in enumerate(rows, start=1):
        if isinstance(x, QAItem):
            items.append(x)
        else:
            items.append(parse_qa_row(map_row(x, field_map), f"{role} item {i}"))
    return items


def check_distinct_sources(sources: dict[str, Any]) -> None:
    """Refuse one file or folder given for two roles (``{"--forget": path, "--retain": path}``):
    a model cannot forget and keep the same data, nor use its forget set as MIA non-members."""
    seen: dict[Path, str] = {}
    for role, source in sources.items():
        if not isinstance(source, (str, os.PathLike)):
            continue
        key = Path(source).expanduser().resolve()
        if key in seen:
            raise DataError(
                f"{source} is given as both {seen[key]} and {role}; give {role} a file "
                f"with other items than {seen[key]}"
            )
        seen[key] = role


def make_request(
    forget: str | os.PathLike[str] | Sequence[QAItem | dict[str, Any]],
    retain: str | os.PathLike[str] | Sequence[QAItem | dict[str, Any]] | None = None,
    holdout: str | os.PathLike[str] | Sequence[QAItem | dict[str, Any]] | None = None,
    name: str = "custom",
    field_map: FieldMap | None = None,
) -> UnlearningRequest:
    """Build an :class:`UnlearningRequest` from paths (files or folders) or lists of items/dicts.

    The evaluation splits are the given sets themselves: ``eval["forget"]`` (with paraphrases and
    perturbed answers when the rows have them), ``eval["retain"]`` and ``eval["holdout"]`` when
    given. ``full`` stays empty: the target model's training set is unknown for custom data.
    ``field_map`` (``{file column: field}``) applies to every set.
    """
    forget_items = _as_items(forget, "forget", field_map)
    if not forget_items:
        raise DataError(f"{name}: the forget set is empty; give at least one item")
    retain_items = _as_items(retain, "retain", field_map) if retain is not None else []
    holdout_items = _as_items(holdout, "holdout", field_map) if holdout is not None else []
    eval_splits = {"forget": forget_items}
    if retain_items:
        eval_splits["retain"] = retain_items
    if holdout_items:
        eval_splits["holdout"] = holdout_items
    return UnlearningRequest(
        forget=forget_items,
        retain=retain_items,
        holdout=holdout_items,
        eval=eval_splits,
        name=name,
        split="forget",
    )
