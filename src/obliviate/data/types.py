"""The data model: a QA item and an unlearning request (forget, retain, holdout, eval splits)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class DataError(ValueError):
    """Bad input data. The message names the file, the row and what is expected."""


@dataclass(frozen=True)
class QAItem:
    """One question/answer pair, with the variants the TOFU metrics need.

    ``question == ""`` marks a plain-text document (no prompt, the whole text is the target),
    as used by MUSE-style corpora and plain-text forget files.
    """

    question: str
    answer: str
    paraphrased_answer: str | None = None
    perturbed_answers: tuple[str, ...] = ()
    paraphrased_question: str | None = None
    options: tuple[str, ...] = ()  # multiple-choice options (real authors / world facts / WMDP)
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_document(self) -> bool:
        return self.question == ""


@dataclass
class UnlearningRequest:
    """What to forget and what to keep.

    - ``forget``: D_f, the items to unlearn (training data of the method).
    - ``retain``: D_r, the items whose behaviour must be kept.
    - ``holdout``: same distribution as D_f, never trained on (MIA non-members).
    - ``eval``: evaluation splits by name: ``forget`` (with paraphrased/perturbed answers),
      ``retain`` (perturbed subset), ``real_authors``, ``world_facts``, ``holdout``...
    - ``full``: the target model's training set (forget + retain), when known.
    """

    forget: list[QAItem]
    retain: list[QAItem]
    holdout: list[QAItem] = field(default_factory=list)
    eval: dict[str, list[QAItem]] = field(default_factory=dict)
    full: list[QAItem] = field(default_factory=list)
    name: str = "custom"
    split: str = "forget"

    def __post_init__(self) -> None:
        if not self.forget:
            raise DataError(f"{self.name}: the forget set is empty; give at least one item")
