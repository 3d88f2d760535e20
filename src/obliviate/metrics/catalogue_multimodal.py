"""The multimodal entries of the metric catalogue (:mod:`obliviate.metrics.catalogue`): the
MLLMU-Bench tasks (Liu+ 2024, arXiv 2410.22108, Sec. 3) that
:class:`~obliviate.multimodal.suite.MLLMUSuite` records per set and mode
(docs/multimodal.md). Kept apart only for length; the rules of the catalogue apply.

``<set>_<mode>_<task>``: set forget, test (the forget people in unseen images and wording),
retain or real; mode ``image`` (asked with the portrait) or ``text`` (text only); task
``mcq_acc`` (multiple-choice accuracy), ``rouge_l`` (ROUGE-L recall of the greedy answer) or
``cloze_acc`` (fill-in-the-blank accuracy). Forget and test aim low, retain and real high. With a
retain model, ``<set>_<mode>_<task>_retain_gap`` = |value - the retain model's value| on the
forget and test sets (0: as if never trained on the forget people).
"""

from __future__ import annotations

from obliviate.metrics.base import MetricDef

MLLMU = "Liu+ 2024, arXiv 2410.22108 (MLLMU-Bench)"
SETS = {
    "forget": ("lower", "the forget people (trained images and questions)"),
    "test": ("lower", "the forget people in unseen images, paraphrased questions"),
    "retain": ("higher", "the other fictitious people"),
    "real": ("higher", "the real people (celebrities; built-in: a separate group)"),
}
MODES = {"image": "asked with the portrait", "text": "asked in text only"}
TASKS = {
    "mcq_acc": (
        "multiple-choice accuracy (likelihood of each option)",
        "obliviate.multimodal.metrics:mcq_accuracy",
        "obliviate.multimodal.metrics:mcq_choice",
        ("token_scores",),
        "§3.2 classification",
    ),
    "rouge_l": (
        "ROUGE-L recall of the greedy answer against the gold one",
        "obliviate.multimodal.metrics:mean",
        "obliviate.metrics.rouge:rouge_scores",
        ("generations",),
        "§3.2 generation",
    ),
    "cloze_acc": (
        "fill-in-the-blank accuracy (the gold words occur in the completion)",
        "obliviate.multimodal.metrics:mean",
        "obliviate.multimodal.metrics:cloze_correct",
        ("generations",),
        "§3.2 fill-in-the-blank",
    ),
}
_DEFS: list[MetricDef] = []
for _set, (_direction, _who) in SETS.items():
    for _mode, _how in MODES.items():
        for _task, (_what, _fn, _per_item, _inputs, _section) in TASKS.items():
            _name = f"{_set}_{_mode}_{_task}"
            _DEFS.append(
                MetricDef(
                    _name,
                    f"{_what}, {_who}, {_how}",
                    f"{MLLMU}, {_section}",
                    _direction,  # type: ignore[arg-type]
                    _fn,
                    _per_item,
                    1,
                    None,
                    _inputs,
                )
            )
            if _direction == "lower":
                _DEFS.append(
                    MetricDef(
                        f"{_name}_retain_gap",
                        f"|{_name} - the retain model's|: 0 is as if never trained on them",
                        f"{MLLMU}, {_section}; the retain model as the reference",
                        "zero",
                        "obliviate.multimodal.suite:retain_gap",
                        None,
                        1,
                        None,
                        (*_inputs, "reference"),
                    )
                )

MULTIMODAL_DEFINITIONS: tuple[MetricDef, ...] = tuple(_DEFS)
