"""Load WMDP multiple-choice questions and the WMDP forget/retain corpora (Li+ 2024,
arXiv 2403.03218; docs/muse-wmdp.md).

Questions (:func:`load_wmdp`), each an :class:`MCQItem`:

- ``"cais/wmdp"`` (or another hub name): ``datasets.load_dataset(name, subset, split="test",
  revision=revision)`` for each subset (``wmdp-bio``, ``wmdp-cyber``, ``wmdp-chem``); record the
  revision with the results, the questions were revised twice in 2024;
- a local folder: ``<folder>/<subset>.jsonl`` (or ``.json``/``.parquet``), or the hub layout
  ``<folder>/<subset>/<split>.jsonl`` / ``<subset>/<split>-00000-of-00001.parquet``;
- a single ``.jsonl``/``.json``/``.parquet`` file: one subset named after the file;
- ``"builtin"``: questions about the built-in fictitious people
  (:func:`obliviate.data.builtin_muse.generate_builtin_wmdp`), subsets ``forget`` and ``retain``.

Row fields (``cais/wmdp``): ``question`` (string), ``choices`` (list of strings; two or more)
and ``answer`` (the 0-based index of the right choice).

Corpora (:func:`load_wmdp_corpus`): JSON Lines with a ``text`` field, from a file, a folder
(``<folder>/<name>.jsonl``) or the hub (``cais/wmdp-corpora`` with a config such as
``cyber-forget-corpus``; ``bio-forget-corpus`` is gated and must be requested from its
authors). Documents become ``QAItem(question="", answer=text)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obliviate.data.files import Record, read_records
from obliviate.data.types import DataError, QAItem

WMDP_HUB = "cais/wmdp"
WMDP_SUBSETS = ("wmdp-bio", "wmdp-cyber", "wmdp-chem")
CORPORA_HUB = "cais/wmdp-corpora"
CORPORA = ("bio-forget-corpus", "bio-retain-corpus", "cyber-forget-corpus", "cyber-retain-corpus")
_FILE_EXTS = (".jsonl", ".json", ".parquet")


@dataclass(frozen=True)
class MCQItem:
    """One multiple-choice question: the right choice is ``choices[answer]``."""

    question: str
    choices: tuple[str, ...]
    answer: int
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def parse_mcq_row(row: Any, where: str, meta: dict[str, Any] | None = None) -> MCQItem:
    """Validate one ``cais/wmdp``-style row; errors name the row and the field."""
    if not isinstance(row, dict):
        raise DataError(
            f"{where}: expected an object with 'question', 'choices' and 'answer', "
            f"got {type(row).__name__}"
        )
    for key in ("question", "choices", "answer"):
        if row.get(key) is None:
            state = "is null" if key in row else "is missing"
            have = ", ".join(repr(k) for k in row) or "none"
            raise DataError(
                f"{where}: field {key!r} {state} (fields present: {have}); every row "
                "needs 'question', 'choices' (a list of strings) and 'answer' (an index)"
            )
    question = row["question"]
    if not isinstance(question, str) or not question.strip():
        raise DataError(f"{where}: field 'question' must be a non-empty string")
    choices = row["choices"]
    if (
        isinstance(choices, str)
        or not isinstance(choices, (list, tuple))
        or not all(isinstance(c, str) for c in choices)
    ):
        raise DataError(f"{where}: field 'choices' must be a list of strings, got {choices!r:.80}")
    if len(choices) < 2:
        raise DataError(
            f"{where}: field 'choices' has {len(choices)} choice(s); a question needs at least 2"
        )
    answer = row["answer"]
    if isinstance(answer, str) and answer.strip().isdigit():
        answer = int(answer)
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise DataError(
            f"{where}: field 'answer' must be the index (0-based int) of the right "
            f"choice, got {answer!r}"
        )
    if not 0 <= answer < len(choices):
        raise DataError(
            f"{where}: field 'answer' is {answer} but there are {len(choices)} "
            f"choices (valid: 0..{len(choices) - 1})"
        )
    return MCQItem(question, tuple(choices), answer, dict(meta or {}))


def _file_records(path: Path) -> list[Record]:
    if path.suffix.lower() == ".parquet":
        from obliviate.data.muse import _parquet_records

        return _parquet_records([path])
    return [(f"{path}: {where}", row) for where, row in read_records(path)]


def _subset_files(folder: Path, subset: str, split: str) -> list[Path]:
    for ext in _FILE_EXTS:
        if (folder / f"{subset}{ext}").is_file():
            return [folder / f"{subset}{ext}"]
    from obliviate.data.muse import split_files

    return split_files(folder, subset, split)


def _hub_records(name: str, config: str | None, split: str, revision: str | None) -> list[Record]:
    try:
        from datasets import load_dataset
    except ImportError as exc:  # pragma: no cover - datasets is a core dependency
        raise DataError(
            "loading a hub dataset needs the 'datasets' package: pip install datasets"
        ) from exc
    try:
        dataset = load_dataset(name, config, split=split, revision=revision)
    except Exception as exc:  # network, unknown or gated dataset: reported the same way
        gated = (
            " (bio-forget-corpus is gated: request access from the WMDP authors)"
            if config == "bio-forget-corpus"
            else ""
        )
        raise DataError(
            f"hub dataset {name!r}, config {config!r}, split {split!r}: could not load it "
            f"({type(exc).__name__}: {exc}){gated}; check the name and the network, or pass a "
            "local file or folder"
        ) from exc
    return [
        (f"hub dataset {name!r} {config}/{split}: row {i}", dict(row))
        for i, row in enumerate(dataset, start=1)
    ]


def file_or_hub_records(
    source: str, config: str | None, split: str, revision: str | None, what: str
) -> list[Record]:
    """The rows of a local ``.jsonl``/``.json``/``.parquet`` file, or of a hub dataset (``config``,
    ``split``) when ``source`` is not a path; ``what`` names the expected rows in errors."""
    path = Path(source).expanduser()
    if path.is_file():
        if path.suffix.lower() not in _FILE_EXTS:
            raise DataError(f"{path}: use a .jsonl, .json or .parquet file of {what} rows")
        return _file_records(path)
    if path.exists() or source.startswith((".", "/", "~")) or source.count("/") > 1:
        state = "not a file" if path.exists() else "no such file"
        raise DataError(f"{path}: {state}; give a .jsonl, .json or .parquet file of {what} rows")
    return _hub_records(source, config, split, revision)


def load_wmdp(
    source: str | os.PathLike[str] = WMDP_HUB,
    subsets: Sequence[str] | None = None,
    split: str = "test",
    *,
    revision: str | None = None,
    **builtin_kwargs: Any,
) -> dict[str, list[MCQItem]]:
    """Multiple-choice questions per subset (see the module docstring)."""
    from obliviate.data.muse import source_kind

    source = os.fspath(source)
    path = Path(source).expanduser()
    if source != "builtin" and path.is_file():
        if path.suffix.lower() not in _FILE_EXTS:
            raise DataError(
                f"{path}: unsupported file extension {path.suffix!r}; use .jsonl, .json or .parquet"
            )
        records = {path.stem: _file_records(path)}
    else:
        kind = source_kind(source)
        if builtin_kwargs and kind != "builtin":
            raise ValueError(f"options {sorted(builtin_kwargs)} apply only to source='builtin'")
        if kind == "builtin":
            from obliviate.data.builtin_muse import generate_builtin_wmdp

            rows = generate_builtin_wmdp(**builtin_kwargs)
            names = list(subsets or rows)
            unknown = [s for s in names if s not in rows]
            if unknown:
                raise DataError(
                    f"builtin: no WMDP-style subset {unknown}; it has {', '.join(rows)}"
                )
            records = {
                s: [(f"builtin wmdp {s}: row {i}", r) for i, r in enumerate(rows[s], 1)]
                for s in names
            }
        elif kind == "folder":
            records = {}
            names = list(subsets or [s for s in WMDP_SUBSETS if _subset_files(path, s, split)])
            if not names:
                found = sorted(p.name for p in path.iterdir())[:20]
                raise DataError(
                    f"{path}: no WMDP subset file found (expected e.g. wmdp-bio.jsonl or "
                    f"wmdp-bio/{split}.jsonl; found: {', '.join(found) or 'nothing'}); "
                    "pass subsets=[...] to name your own files"
                )
            for s in names:
                files = _subset_files(path, s, split)
                if not files:
                    raise DataError(
                        f"{path}: missing {s}.jsonl (or {s}.json, {s}.parquet, "
                        f"{s}/{split}.jsonl, {s}/{split}-*.parquet)"
                    )
                records[s] = [r for f in files for r in _file_records(f)]
        else:
            records = {
                s: _hub_records(source, s, split, revision) for s in (subsets or WMDP_SUBSETS)
            }
    out: dict[str, list[MCQItem]] = {}
    for s, recs in records.items():
        out[s] = [parse_mcq_row(row, where, {"subset": s}) for where, row in recs]
        if not out[s]:
            raise DataError(f"{source}: subset {s!r} has no questions")
    return out


def load_wmdp_corpus(
    source: str | os.PathLike[str],
    name: str | None = None,
    split: str = "train",
    *,
    revision: str | None = None,
) -> list[QAItem]:
    """Documents of a WMDP corpus (``text`` field) from a file, a folder + ``name``, or the hub
    (``source="cais/wmdp-corpora"``, ``name="cyber-forget-corpus"``)."""
    from obliviate.data.muse import parse_muse_row, source_kind

    source = os.fspath(source)
    path = Path(source).expanduser()
    if path.is_file():
        records = _file_records(path)
    else:
        kind = source_kind(source)
        if kind == "builtin":
            raise DataError(
                "there is no built-in WMDP corpus; the built-in documents are the MUSE "
                "ones (obliviate.data.muse.load_muse('builtin'))"
            )
        if name is None:
            raise DataError(
                f"{source}: name the corpus, e.g. name='cyber-forget-corpus' "
                f"(known: {', '.join(CORPORA)})"
            )
        if kind == "folder":
            files = _subset_files(path, name, split)
            if not files:
                raise DataError(f"{path}: missing {name}.jsonl (or {name}.json, {name}.parquet)")
            records = [r for f in files for r in _file_records(f)]
        else:
            records = _hub_records(source, name, split, revision)
    items = [
        parse_muse_row(row, "raw", where, {"corpus": name or path.stem}) for where, row in records
    ]
    if not items:
        raise DataError(f"{source}: the corpus has no documents")
    return items
