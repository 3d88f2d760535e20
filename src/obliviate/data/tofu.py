"""Load TOFU (Maini+ 2024, arXiv 2401.06121) as an :class:`UnlearningRequest`.

Three sources give the same rows (one list of dicts per hub config name) and go through the
same row parser (:func:`obliviate.data.files.parse_qa_row`):

- ``"builtin"``: the generated benchmark of :mod:`obliviate.data.builtin` (keyword arguments
  such as ``n_people=20`` go to :func:`~obliviate.data.builtin.generate_builtin`);
- a local folder holding one file per config, ``<config>.jsonl`` (or ``<config>.json``);
- a Hugging Face hub name such as ``"locuslab/TOFU"``, read with
  ``datasets.load_dataset(name, config, split="train")``.

Split names: ``"forget01"``, ``"forget05"``, ``"forget10"``; the short forms ``"1"``, ``"01"``,
``"5"``, ``"05"``, ``"10"`` (or the ints 1, 5, 10) and ``"forget1"``/``"forget5"`` mean the same.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from obliviate.data.fields import FieldMap, check_columns, map_row
from obliviate.data.files import Record, parse_qa_row, read_records
from obliviate.data.types import DataError, QAItem, UnlearningRequest

FORGET_SPLITS = ("forget01", "forget05", "forget10")
MCQ_SETS = ("real_authors", "world_facts")  # optional general-knowledge sets
OPTIONAL_CONFIGS = tuple(n for base in MCQ_SETS for n in (base, f"{base}_perturbed"))
HUB_NAME = "locuslab/TOFU"

_HUB_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def normalize_split(split: str | int) -> str:
    """``"forget10"``, ``"10"``, ``10``, ``"forget1"``, ``"01"``... -> ``"forget01|05|10"``."""
    text = str(split).strip().lower()
    text = text[len("forget") :] if text.startswith("forget") else text
    if text.isdigit() and int(text) in (1, 5, 10):
        return f"forget{int(text):02d}"
    raise ValueError(
        f"unknown TOFU split {split!r}; use one of {', '.join(FORGET_SPLITS)} (or 1, 5, 10)"
    )


def required_configs(split: str | int) -> list[str]:
    """The configs a request for ``split`` needs (``forget10`` -> full, forget10, retain90...)."""
    forget = normalize_split(split)
    pct = int(forget[-2:])
    return [
        "full",
        forget,
        f"retain{100 - pct}",
        f"{forget}_perturbed",
        "retain_perturbed",
        f"holdout{pct:02d}",
    ]


def _source_kind(source: str) -> str:
    if source == "builtin":
        return "builtin"
    path = Path(source).expanduser()
    if path.is_dir():
        return "folder"
    if path.exists():
        raise DataError(
            f"{source}: is a file; give a folder with one <config>.jsonl file per TOFU config, "
            "'builtin', or a hub dataset name such as 'locuslab/TOFU'"
        )
    looks_like_path = source.startswith((".", "/", "~")) or "\\" in source or source.count("/") > 1
    if looks_like_path or not _HUB_PATTERN.match(source):
        raise DataError(
            f"{source}: no such folder; give a folder with one <config>.jsonl file per TOFU "
            "config, 'builtin', or a hub dataset name such as 'locuslab/TOFU'"
        )
    return "hub"


def _folder_records(folder: Path, config: str, optional: bool) -> list[Record] | None:
    for ext in (".jsonl", ".json"):
        file = folder / f"{config}{ext}"
        if file.is_file():
            return [(f"{file}: {where}", row) for where, row in read_records(file)]
    if optional:
        return None
    present = sorted(p.name for p in folder.iterdir() if p.suffix in (".jsonl", ".json"))
    raise DataError(
        f"{folder}: missing {config}.jsonl (or {config}.json); the folder must hold one file per "
        f"TOFU config, named <config>.jsonl (found: {', '.join(present[:20]) or 'none'})"
    )


def _hub_records(name: str, config: str, optional: bool) -> list[Record] | None:
    try:
        from datasets import load_dataset
    except ImportError as exc:  # pragma: no cover - datasets is a core dependency
        raise DataError(
            "loading a hub dataset needs the 'datasets' package: pip install datasets"
        ) from exc
    try:
        dataset = load_dataset(name, config, split="train")
    except Exception as exc:  # network, unknown name or config: all reported the same way
        if optional:
            warnings.warn(
                f"hub dataset {name!r}: optional config {config!r} not loaded ({exc})", stacklevel=3
            )
            return None
        raise DataError(
            f"hub dataset {name!r}, config {config!r}: could not load it ({type(exc).__name__}: "
            f"{exc}); check the name and the network (there is no local folder {name!r} either), "
            "or pass a local folder of <config>.jsonl files"
        ) from exc
    return [
        (f"hub dataset {name!r} config {config!r}: row {i}", dict(row))
        for i, row in enumerate(dataset, start=1)
    ]


def _load_records(
    source: str, names: Iterable[str], optional: Iterable[str], builtin_kwargs: dict[str, Any]
) -> dict[str, list[Record]]:
    names, optional = list(names), set(optional)
    kind = _source_kind(source)
    if builtin_kwargs and kind != "builtin":
        raise ValueError(
            f"options {sorted(builtin_kwargs)} apply only to source='builtin', not {source!r}"
        )
    out: dict[str, list[Record]] = {}
    if kind == "builtin":
        from obliviate.data.builtin import generate_builtin

        data = generate_builtin(**builtin_kwargs)
        for config in names:
            if config in data:
                out[config] = [
                    (f"builtin {config}: row {i}", row)
                    for i, row in enumerate(data[config], start=1)
                ]
            elif config not in optional:
                raise DataError(f"builtin: no config {config!r}; it has {', '.join(data)}")
        return out
    for config in names:
        if kind == "folder":
            records = _folder_records(Path(source).expanduser(), config, config in optional)
        else:
            records = _hub_records(source, config, config in optional)
        if records is not None:
            out[config] = records
    return out


def _mapped(
    records: dict[str, list[Record]], field_map: FieldMap | None, source: str
) -> dict[str, list[Record]]:
    """``records`` with the columns renamed by ``field_map`` ({file column: field},
    :mod:`obliviate.data.fields`); a mapped column no config has is a :class:`DataError`."""
    if not field_map:
        return records
    check_columns([row for rows in records.values() for _, row in rows], field_map, source)
    return {c: [(w, map_row(r, field_map)) for w, r in rows] for c, rows in records.items()}


def load_tofu_configs(
    source: str | os.PathLike[str],
    names: Iterable[str],
    *,
    optional: Iterable[str] = (),
    field_map: FieldMap | None = None,
    **builtin_kwargs: Any,
) -> dict[str, list[dict[str, Any]]]:
    """Raw rows (dicts with the hub's fields) of the named configs of a TOFU source.

    A missing config raises :class:`DataError` unless it is listed in ``optional`` (then it is
    left out of the result). ``field_map`` renames columns (:mod:`obliviate.data.fields`).
    """
    source = os.fspath(source)
    records = _mapped(_load_records(source, names, optional, builtin_kwargs), field_map, source)
    return {config: [row for _, row in rows] for config, rows in records.items()}


def _parse(records: list[Record], config: str) -> list[QAItem]:
    items = [
        parse_qa_row(row, where, meta={"config": config, "row": i})
        for i, (where, row) in enumerate(records, start=1)
    ]
    if config.endswith("_perturbed") and not config.startswith(MCQ_SETS):
        for (where, _), item in zip(records, items, strict=True):
            if item.paraphrased_answer is None:
                raise DataError(f"{where}: field 'paraphrased_answer' is missing or empty")
            if not item.perturbed_answers:
                raise DataError(
                    f"{where}: field 'perturbed_answer' is missing or empty "
                    "(expected a list of wrong answers)"
                )
    return items


def _mcq_eval(
    base: str, items: Mapping[str, list[QAItem]], records: Mapping[str, list[Record]]
) -> list[QAItem] | None:
    """Perturbed version (answer + perturbed answers) with the options of the plain version."""
    plain, perturbed = items.get(base), items.get(f"{base}_perturbed")
    if perturbed is None and plain is None:
        return None
    if perturbed is None:  # derive the wrong answers from the options
        return [
            dataclasses.replace(x, perturbed_answers=tuple(o for o in x.options if o != x.answer))
            for x in plain or []
        ]
    if plain is None:
        return perturbed
    if len(plain) != len(perturbed):
        raise DataError(
            f"{base} has {len(plain)} rows but {base}_perturbed has {len(perturbed)}; "
            "they must list the same questions in the same order"
        )
    merged = []
    for (where, _), p, o in zip(records[f"{base}_perturbed"], perturbed, plain, strict=True):
        if p.question != o.question:
            raise DataError(
                f"{where}: question differs from row {o.meta.get('row')} of {base} "
                f"({p.question!r} vs {o.question!r}); the files must be aligned"
            )
        merged.append(dataclasses.replace(p, options=o.options))
    return merged


def _qa(items: Iterable[QAItem]) -> list[tuple[str, str]]:
    return [(x.question, x.answer) for x in items]


def check_tofu_invariants(items: Mapping[str, list[QAItem]], split: str | int) -> list[str]:
    """The structural checks TOFU's configs satisfy; returns the problems found (empty if none).

    ``retainNN == full[:len(retainNN)]``, ``forgetNN == full[len(retainNN):]``, the
    ``forgetNN_perturbed`` questions/answers equal ``forgetNN``'s, every ``retain_perturbed``
    question is in ``retainNN`` and no holdout question is in ``full``.
    """
    forget_name = normalize_split(split)
    pct = int(forget_name[-2:])
    full, forget = _qa(items["full"]), _qa(items[forget_name])
    retain = _qa(items[f"retain{100 - pct}"])
    problems = []
    n_r = len(retain)
    if len(full) != n_r + len(forget):
        problems.append(
            f"full has {len(full)} rows but retain{100 - pct} + {forget_name} have "
            f"{n_r} + {len(forget)}"
        )
    if full[:n_r] != retain:
        i = next(
            (i for i, (a, b) in enumerate(zip(full, retain, strict=False)) if a != b),
            min(len(full), n_r),
        )
        problems.append(
            f"retain{100 - pct} is not the first {n_r} rows of full (first difference "
            f"at row {i + 1})"
        )
    if full[n_r:] != forget:
        problems.append(f"{forget_name} is not the tail of full after retain{100 - pct}")
    if _qa(items[f"{forget_name}_perturbed"]) != forget:
        problems.append(
            f"{forget_name}_perturbed does not have the questions and answers of "
            f"{forget_name} in the same order"
        )
    retain_questions = {q for q, _ in retain}
    outside = [
        x.question for x in items.get("retain_perturbed", []) if x.question not in retain_questions
    ]
    if outside:
        problems.append(
            f"{len(outside)} retain_perturbed questions are not in retain{100 - pct}, "
            f"e.g. {outside[0]!r}"
        )
    full_questions = {q for q, _ in full}
    leaked = [
        x.question for x in items.get(f"holdout{pct:02d}", []) if x.question in full_questions
    ]
    if leaked:
        problems.append(f"{len(leaked)} holdout{pct:02d} questions are in full, e.g. {leaked[0]!r}")
    return problems


def load_tofu(
    source: str | os.PathLike[str] = "builtin",
    split: str | int = "forget10",
    *,
    check: bool = True,
    field_map: FieldMap | None = None,
    **builtin_kwargs: Any,
) -> UnlearningRequest:
    """Load a TOFU split as an :class:`UnlearningRequest`.

    ``forget`` = forgetNN, ``retain`` = retain(100-NN), ``holdout`` = holdoutNN, ``full`` = full;
    ``eval`` = ``{"forget": forgetNN_perturbed, "retain": retain_perturbed, "holdout": holdoutNN}``
    plus ``"real_authors"`` / ``"world_facts"`` when the source has them (the perturbed version,
    i.e. answer + wrong answers, with ``options`` from the plain version when present).
    ``split`` = ``forgetNN:i/k`` is part i of k of forgetNN, cut at whole authors
    (:mod:`obliviate.data.parts`, for continual unlearning).
    With ``check`` (the default) the structure is verified (:func:`check_tofu_invariants`) and a
    violation raises :class:`DataError`. ``name`` is ``"builtin-tofu"`` or ``"tofu"``.
    ``field_map`` ({file column: field}) renames the columns of every config.
    """
    from obliviate.data.parts import parse_part, take_part

    source = os.fspath(source)
    part = parse_part(str(split))
    forget_name = normalize_split(part[0] if part else split)
    pct = int(forget_name[-2:])
    needed = required_configs(forget_name)
    records = _mapped(
        _load_records(source, needed + list(OPTIONAL_CONFIGS), OPTIONAL_CONFIGS, builtin_kwargs),
        field_map,
        source,
    )
    items = {config: _parse(rows, config) for config, rows in records.items()}
    if check:
        problems = check_tofu_invariants(items, forget_name)
        if problems:
            raise DataError(
                f"{source}: the TOFU configs are inconsistent: "
                + "; ".join(problems)
                + " (pass check=False to load anyway)"
            )
    holdout = items[f"holdout{pct:02d}"]
    eval_splits: dict[str, list[QAItem]] = {
        "forget": items[f"{forget_name}_perturbed"],
        "retain": items["retain_perturbed"],
        "holdout": holdout,
    }
    for base in MCQ_SETS:
        mcq = _mcq_eval(base, items, records)
        if mcq is not None:
            eval_splits[base] = mcq
    request = UnlearningRequest(
        forget=items[forget_name],
        retain=items[f"retain{100 - pct}"],
        holdout=holdout,
        eval=eval_splits,
        full=items["full"],
        name="builtin-tofu" if source == "builtin" else "tofu",
        split=forget_name,
    )
    if part is None:
        return request
    per_author = builtin_kwargs.get("qa_per_person", 10) if source == "builtin" else 20
    return take_part(request, part[1], part[2], per_author)
