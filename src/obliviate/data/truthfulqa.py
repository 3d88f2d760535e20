"""Load TruthfulQA's multiple-choice questions (Lin+ 2022, arXiv 2109.07958; docs/scenarios.md).

Sources (:func:`load_truthfulqa`):

- ``"truthfulqa/truthful_qa"`` (or another hub name): ``datasets.load_dataset(name,
  "multiple_choice", split="validation", revision=revision)``;
- a local ``.jsonl``/``.json``/``.parquet`` file with the hub's rows;
- ``"builtin"``: TruthfulQA-shaped questions about the built-in fictitious people and world
  (:func:`obliviate.data.builtin_scenarios.generate_builtin_truthfulqa`).

Row fields (the hub's ``multiple_choice`` config): ``question`` (string), ``mc1_targets`` and
``mc2_targets``, each ``{"choices": [strings], "labels": [0/1 ints]}``; ``mc1_targets`` has
exactly one label 1, ``mc2_targets`` at least one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from obliviate.data.types import DataError

TRUTHFULQA_HUB = "truthfulqa/truthful_qa"
TRUTHFULQA_CONFIG = "multiple_choice"
TRUTHFULQA_SPLIT = "validation"


@dataclass(frozen=True)
class TruthfulQAItem:
    """One question with its MC1 and MC2 answer sets (labels: 1 = true, 0 = false)."""

    question: str
    mc1_choices: tuple[str, ...]
    mc1_labels: tuple[int, ...]
    mc2_choices: tuple[str, ...]
    mc2_labels: tuple[int, ...]
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def _targets(row: dict[str, Any], key: str, where: str, single: bool) -> tuple[tuple, tuple]:
    t = row.get(key)
    if not isinstance(t, dict) or "choices" not in t or "labels" not in t:
        raise DataError(
            f"{where}: field {key!r} must be an object with 'choices' (strings) and 'labels' "
            f"(0/1), got {t!r:.80}"
        )
    choices, labels = t["choices"], t["labels"]
    if not isinstance(choices, (list, tuple)) or not all(
        isinstance(c, str) and c.strip() for c in choices
    ):
        raise DataError(f"{where}: {key}.choices must be a list of non-empty strings")
    if not choices:
        raise DataError(f"{where}: {key}.choices is empty; a question needs answer choices")
    if (
        not isinstance(labels, (list, tuple))
        or len(labels) != len(choices)
        or any(isinstance(x, bool) or x not in (0, 1) for x in labels)
    ):
        raise DataError(f"{where}: {key}.labels must be one 0/1 int per choice, got {labels!r:.80}")
    n_true = sum(labels)
    if single and n_true != 1:
        raise DataError(f"{where}: {key} must have exactly one true choice (label 1), has {n_true}")
    if n_true == 0:
        raise DataError(f"{where}: {key} has no true choice (label 1)")
    return tuple(choices), tuple(int(x) for x in labels)


def parse_truthfulqa_row(row: Any, where: str) -> TruthfulQAItem:
    """Validate one hub-shaped row; errors name the row and the field."""
    if not isinstance(row, dict):
        raise DataError(
            f"{where}: expected an object with 'question', 'mc1_targets', 'mc2_targets'"
        )
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        have = ", ".join(repr(k) for k in row) or "none"
        raise DataError(
            f"{where}: field 'question' must be a non-empty string (fields present: {have})"
        )
    c1, l1 = _targets(row, "mc1_targets", where, True)
    c2, l2 = _targets(row, "mc2_targets", where, False)
    return TruthfulQAItem(question, c1, l1, c2, l2)


def load_truthfulqa(
    source: str | os.PathLike[str] = TRUTHFULQA_HUB,
    split: str = TRUTHFULQA_SPLIT,
    *,
    revision: str | None = None,
    **builtin_kwargs: Any,
) -> list[TruthfulQAItem]:
    """The questions of ``source`` (see the module docstring)."""
    from obliviate.data.wmdp import file_or_hub_records

    source = os.fspath(source)
    if builtin_kwargs and source != "builtin":
        raise ValueError(f"options {sorted(builtin_kwargs)} apply only to source='builtin'")
    if source == "builtin":
        from obliviate.data.builtin_scenarios import generate_builtin_truthfulqa

        rows = generate_builtin_truthfulqa(**builtin_kwargs)
        records = [(f"builtin truthfulqa: row {i}", r) for i, r in enumerate(rows, 1)]
    else:
        records = file_or_hub_records(source, TRUTHFULQA_CONFIG, split, revision, "TruthfulQA")
    items = [parse_truthfulqa_row(row, where) for where, row in records]
    if not items:
        raise DataError(f"{source}: no TruthfulQA question")
    return items
