"""Evaluate a vision-language model on the four MLLMU-Bench sets in both modes: multiple-choice
accuracy, generation ROUGE-L recall and cloze accuracy (:mod:`obliviate.multimodal.metrics`)
per (set, mode), from one scoring pass over every option and one generation pass over every
question."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


@dataclass
class SetScores:
    """The metrics of :func:`score_sets`: ``values`` (``{"<set>/<mode>": {metric: mean}}``,
    ``nan`` where a set has no item of that task), ``counts`` (items behind each mean) and one
    ``samples`` row per item (split, index, mode, task, question, answer and the model's
    choice and/or generation)."""

    values: dict[str, dict[str, float]]
    counts: dict[str, dict[str, int]]
    samples: list[dict[str, Any]]


def evaluate_sets(
    model: VisionLM,
    tokenizer: Any,
    sets: Mapping[str, Sequence[QAItem]],
    template: PromptTemplate | None = None,
    batch_size: int = 32,
) -> dict[str, dict[str, float]]:
    """``{"<set>/<mode>": {"mcq_acc", "rouge_l", "cloze_acc"}}`` over the items of each set
    (:func:`score_sets`)."""
    return score_sets(model, tokenizer, sets, template, batch_size).values


def score_sets(
    model: VisionLM,
    tokenizer: Any,
    sets: Mapping[str, Sequence[QAItem]],
    template: PromptTemplate | None = None,
    batch_size: int = 32,
) -> SetScores:
    """The three MLLMU-Bench tasks on every set, in both modes.

    Items with options give MCQ accuracy; ``meta["task"]`` ``qa`` (built-in: options and a
    generated answer) and ``gen`` items give ROUGE-L, ``cloze`` items cloze accuracy; ``mcq``
    items are only scored, never generated."""
    template = template or PromptTemplate()
    items = [(name, it) for name, group in sets.items() for it in group]
    rows = [_sample(name, i, it) for name, group in sets.items() for i, it in enumerate(group)]
    mcq = [k for k, (_, it) in enumerate(items) if it.options]
    flat_items = [items[k][1] for k in mcq for _ in items[k][1].options]
    flat_answers = [o for k in mcq for o in items[k][1].options]
    scores = score_items(model, tokenizer, flat_items, template, flat_answers, batch_size)
    generated = [k for k, (_, it) in enumerate(items) if it.meta.get("task") in GENERATED]
    gens = answer_generations(model, tokenizer, [items[k][1] for k in generated], template)
    at = 0
    for k in mcq:
        options = items[k][1].options
        choice = mcq_choice(scores[at : at + len(options)])
        at += len(options)
        gold = options.index(items[k][1].answer)
        rows[k].update(choice=options[choice], mcq_acc=mcq_accuracy([choice], [gold]))
    qa = [(k, g) for k, g in zip(generated, gens) if items[k][1].meta["task"] != "cloze"]
    rouge = rouge_scores([g for _, g in qa], [items[k][1].answer for k, _ in qa])
    for (k, g), r in zip(qa, rouge):
        rows[k].update(generation=g, rouge_l=r["rouge_l_recall"])
    for k, g in zip(generated, gens):
        if items[k][1].meta.get("task") == "cloze":
            rows[k].update(generation=g, cloze_acc=float(cloze_correct(g, items[k][1].answer)))
    return _aggregate(rows)


def _sample(name: str, index: int, it: QAItem) -> dict[str, Any]:
    keys = ("mode", "task", "person")
    return {
        "split": name,
        "index": index,
        **{k: it.meta.get(k) for k in keys},
        "question": it.question,
        "answer": it.answer,
    }


def _aggregate(rows: list[dict[str, Any]]) -> SetScores:
    per: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        key = f"{row['split']}/{row.get('mode') or 'text'}"
        group = per.setdefault(key, {m: [] for m in METRICS})
        for m in METRICS:
            if m in row:
                group[m].append(float(row[m]))
    values = {key: {m: mean(v) for m, v in vals.items()} for key, vals in per.items()}
    counts = {key: {m: len(v) for m, v in vals.items()} for key, vals in per.items()}
    return SetScores(values, counts, rows)
