"""S-MA and S-EL of a model on the forget items that name sensitive spans (SeUL, Wang+ 2024,
arXiv 2402.05813, "evaluation"; definitions in :mod:`obliviate.metrics.span`, docs/metrics.md).

S-MA reuses the argmax hits of the evaluation's one teacher-forced scoring pass (nothing is
run again); S-EL continues the true text before each span run greedily, all runs in batches
through :func:`obliviate.scoring.continue_ids`. Items without a ``sensitive_spans`` field are
left out; a span that is not in its answer is an error naming the item.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from obliviate.data.spans import given_span_mask, item_spans
from obliviate.data.templates import Encoded, PromptTemplate, encode
from obliviate.data.types import QAItem
from obliviate.metrics.span import (
    mean_defined,
    ngram_overlap,
    span_memorisation_accuracy,
    span_positions,
)

if TYPE_CHECKING:
    from obliviate.evaluation import EvalSettings

N_GRAM = 2  # bigram overlap, cut to the run's length for one-token runs


def has_spans(items: Sequence[QAItem]) -> bool:
    """Whether any item names sensitive spans."""
    return any(item_spans(it.meta) for it in items)


def span_scores(
    model: Any,
    tokenizer: Any,
    encoded: Sequence[Encoded],
    masks: Sequence[Sequence[bool]],
    correct: Sequence[Any] | None = None,
    batch_size: int = 32,
    backend: str = "auto",
) -> tuple[list[dict[str, float]], dict[str, float]]:
    """S-MA and S-EL of encoded items under span masks aligned with their input ids
    (``masks[i][t]``: the label at position ``t`` of item ``i`` is sensitive). Returns per item
    ``{"s_ma", "s_el"}`` (without the keys an item has no value for) and the aggregates
    ``{"s_ma", "s_el"}``: S-MA the mean over items with span tokens, S-EL the mean over all span
    runs. ``correct[i]`` (booleans), item ``i``'s teacher-forced argmax hits over its answer tokens, is
    reused when given (the evaluation's scoring pass), else scored here."""
    from obliviate.scoring import continue_ids, score_encoded

    if len(masks) != len(encoded):
        raise ValueError(f"{len(masks)} span masks for {len(encoded)} items")
    if correct is None:
        correct = [s.correct for s in score_encoded(model, tokenizer, encoded, batch_size)]
    rows: list[dict[str, float]] = [{} for _ in encoded]
    prefixes: list[list[int]] = []
    truths: list[list[int]] = []
    owner: list[int] = []
    for i, (enc, mask, hits) in enumerate(zip(encoded, masks, correct)):
        answer_mask, runs = span_positions(enc.labels, mask)
        s_ma = span_memorisation_accuracy(list(hits), answer_mask)
        if s_ma is not None:
            rows[i]["s_ma"] = s_ma
        for a, b in runs:
            prefixes.append(enc.input_ids[:a])
            truths.append(enc.input_ids[a:b])
            owner.append(i)
    gens = continue_ids(model, tokenizer, prefixes, [len(t) for t in truths], batch_size, backend)
    per_item: dict[int, list[float]] = {}
    for i, gen, truth in zip(owner, gens, truths):
        v = ngram_overlap(gen, truth, N_GRAM)
        if v is not None:
            per_item.setdefault(i, []).append(v)
    for i, vals in per_item.items():
        rows[i]["s_el"] = sum(vals) / len(vals)
    out: dict[str, float] = {}
    s_ma_all = mean_defined([r.get("s_ma") for r in rows])
    s_el_all = mean_defined([v for vals in per_item.values() for v in vals])
    if s_ma_all is not None:
        out["s_ma"] = s_ma_all
    if s_el_all is not None:
        out["s_el"] = s_el_all
    return rows, out


def span_metrics(
    model: Any,
    tokenizer: Any,
    items: Sequence[QAItem],
    scores: Mapping[tuple[str, str], Any],
    rows: Sequence[dict[str, Any]],
    template: PromptTemplate,
    settings: EvalSettings,
) -> dict[str, float]:
    """:func:`span_scores` of the forget items that name spans (their ``sensitive_spans``
    field), reusing the argmax hits of the evaluation's ``scores`` (keyed by (question, answer),
    scored with the same template and ``settings.max_length``); each item's ``s_ma`` / ``s_el``
    go into its sample row (``rows`` align with ``items``). Returns the aggregates
    ``forget_s_ma`` / ``forget_s_el``."""
    todo = [i for i, it in enumerate(items) if item_spans(it.meta)]
    encoded, masks = [], []
    for i in todo:
        it = items[i]
        enc = encode(tokenizer, it.question, it.answer, template, max_length=settings.max_length)
        try:
            masks.append(given_span_mask(tokenizer, enc, item_spans(it.meta)))
        except ValueError as exc:
            raise ValueError(f"forget item {i} ({it.question!r}): {exc}") from None
        encoded.append(enc)
    hits = [scores[(items[i].question, items[i].answer)].correct for i in todo]
    per_item, agg = span_scores(
        model,
        tokenizer,
        encoded,
        masks,
        hits,
        settings.batch_size,
        settings.generation_backend,
    )
    for i, values in zip(todo, per_item):
        rows[i].update(values)
    return {f"forget_{k}": v for k, v in agg.items()}
