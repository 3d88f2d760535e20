"""Field mapping: read files whose columns have other names than obliviate's fields.

A field map says which column of the file holds which field, ``{file column: field}``, e.g.
``{"query": "question", "target": "answer"}`` for a file with the columns ``query`` and
``target``; on the command line ``--map query=question,target=answer`` (README.md,
"Columns with other names"). Fields: ``question``, ``answer``, ``text`` (a document),
``paraphrased_answer``, ``perturbed_answer``, ``paraphrased_question``, ``options``,
``subject`` (read by the editing methods, ``subject_field``) or any other name, kept in the
item's ``meta``. A column named in the map that the file does not have is an error listing the
columns it has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from obliviate.data.types import DataError

FieldMap = Mapping[str, str]

# the fields parse_qa_row reads itself; any other column is kept in the item's meta
KNOWN_FIELDS = (
    "question",
    "answer",
    "text",
    "paraphrased_answer",
    "perturbed_answer",
    "perturbed_answers",
    "paraphrased_question",
    "options",
)


def parse_field_map(spec: str | Mapping[str, str] | None) -> dict[str, str] | None:
    """``"query=question,target=answer"`` (or a mapping) as ``{file column: field}``;
    ``None`` or ``""`` gives ``None``. A malformed entry raises :class:`ValueError`."""
    if spec is None or spec == "":
        return None
    if isinstance(spec, Mapping):
        pairs = [(str(k), v) for k, v in spec.items()]
    else:
        pairs = []
        for part in str(spec).split(","):
            col, sep, name = part.partition("=")
            if not sep:
                raise ValueError(
                    f"field map entry {part.strip()!r} has no '='; write FILE_COLUMN=FIELD, "
                    "e.g. --map query=question,target=answer"
                )
            pairs.append((col.strip(), name.strip()))
    out: dict[str, str] = {}
    for col, name in pairs:
        if not col or not isinstance(name, str) or not name:
            raise ValueError(
                f"field map entry {col!r}={name!r} is incomplete; write FILE_COLUMN=FIELD, "
                "e.g. query=question"
            )
        if name in out.values():
            raise ValueError(f"field map: two columns are mapped to the field {name!r}")
        out[col] = name
    return out


def map_row(row: Any, field_map: FieldMap | None) -> Any:
    """``row`` with the mapped columns renamed (a mapped column replaces a column already
    named like its field); other values are untouched."""
    if not field_map or not isinstance(row, dict):
        return row
    out = {k: v for k, v in row.items() if k not in field_map}
    for col, name in field_map.items():
        if col in row:
            out[name] = row[col]
    return out


def check_columns(rows: Sequence[Any], field_map: FieldMap | None, where: str) -> None:
    """Raise a :class:`DataError` naming the mapped columns that no row of ``rows`` has, with the
    columns the rows do have."""
    if not field_map:
        return
    have: dict[str, None] = {}
    for row in rows:
        if isinstance(row, dict):
            have.update(dict.fromkeys(row))
    missing = [c for c in field_map if c not in have]
    if missing:
        cols = ", ".join(repr(c) for c in have) or "none"
        raise DataError(
            f"{where}: the field map names the column(s) {', '.join(map(repr, missing))}, which "
            f"the file does not have; its columns are: {cols}"
        )


def extra_fields(row: dict[str, Any], skip: Sequence[str] = ()) -> dict[str, Any]:
    """The scalar columns of ``row`` that are not obliviate fields (e.g. ``subject``): kept in
    the item's ``meta``."""
    return {
        k: v
        for k, v in row.items()
        if isinstance(k, str)
        and k not in KNOWN_FIELDS
        and k not in skip
        and not k.startswith("option")
        and isinstance(v, (str, int, float))
        and not isinstance(v, bool)
    }
