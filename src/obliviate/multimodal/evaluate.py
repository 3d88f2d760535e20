"""Evaluate a vision-language model on the four MLLMU-Bench sets in both modes: multiple-choice
accuracy, generation ROUGE-L recall and cloze accuracy (:mod:`obliviate.multimodal.metrics`)
per (set, mode), from one scoring pass over every option and one generation pass over every
question."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from obliviate.data.templates import PromptTemplate
from obliviate.data.types import QAItem
from obliviate.metrics.rouge import rouge_scores
from obliviate.multimodal.engine import generate_items, score_items
from obliviate.multimodal.lm import VisionLM
from obliviate.multimodal.metrics import cloze_correct, mcq_accuracy, mcq_choice, mean

METRICS = ("mcq_acc", "rouge_l", "cloze_acc")
GENERATED = ("qa", "gen", "cloze")  # the tasks whose items are answered by greedy generation


def answer_generations(
    model: VisionLM, tokenizer: Any, items: Sequence[QAItem], template: PromptTemplate
) -> list[str]:
    return generate_items(model, tokenizer, items, template, max_new_tokens=12)


def evaluate_sets(
    model: VisionLM,
    tokenizer: Any,
    sets: Mapping[str, Sequence[QAItem]],
    template: PromptTemplate | None = None,
    batch_size: int = 32,
) -> dict[str, dict[str, float]]:
    """``{"<set>/<mode>": {"mcq_acc", "rouge_l", "cloze_acc"}}`` over the items of each set.

    Items with options give MCQ accuracy; ``meta["task"]`` ``qa`` (built-in: options and a
    generated answer) and ``gen`` items give ROUGE-L, ``cloze`` items cloze accuracy; ``mcq``
    items are only scored, never generated."""
    template = template or PromptTemplate()
    items = [(name, it) for name, group in sets.items() for it in group]
    mcq = [(name, it) for name, it in items if it.options]
    flat_items = [it for _, it in mcq for _ in it.options]
    flat_answers = [o for _, it in mcq for o in it.options]
    scores = score_items(model, tokenizer, flat_items, template, flat_answers, batch_size)
    generated = [(name, it) for name, it in items if it.meta.get("task") in GENERATED]
    gens = answer_generations(model, tokenizer, [it for _, it in generated], template)
    rows: dict[str, dict[str, list[float]]] = {}

    def row(name: str, it: QAItem) -> dict[str, list[float]]:
        key = f"{name}/{it.meta.get('mode', 'text')}"
        return rows.setdefault(key, {m: [] for m in METRICS})

    at = 0
    for name, it in mcq:
        k = len(it.options)
        choice = mcq_choice(scores[at : at + k])
        at += k
        row(name, it)["mcq_acc"].append(mcq_accuracy([choice], [it.options.index(it.answer)]))
    qa = [(name, it, g) for (name, it), g in zip(generated, gens) if it.meta["task"] != "cloze"]
    rouge = rouge_scores([g for *_, g in qa], [it.answer for _, it, _ in qa])
    for (name, it, _), r in zip(qa, rouge):
        row(name, it)["rouge_l"].append(r["rouge_l_recall"])
    for (name, it), g in zip(generated, gens):
        if it.meta.get("task") == "cloze":
            row(name, it)["cloze_acc"].append(float(cloze_correct(g, it.answer)))
    return {key: {m: mean(v) for m, v in vals.items()} for key, vals in rows.items()}
