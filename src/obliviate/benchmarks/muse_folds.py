"""MUSE C5 scalability and C6 sustainability (Shi+ 2024, arXiv 2407.06460;
docs/muse-wmdp.md): unlearn each ``scal`` fold from the target, or the ``sust`` folds one after
another, and evaluate C1-C4 after each fold."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from obliviate.benchmarks.muse import unlearn_documents
from obliviate.data.types import QAItem


@dataclass
class FoldResult:
    fold: int
    n_docs: int
    metrics: dict[str, float]
    train_s: float
    stopped: str | None = None
    same_as: str | None = None  # the finished run this fold repeats exactly (see FinishedRun)


@dataclass
class FinishedRun:
    """A finished run of the method from the target, standing in for a fold that would repeat
    it: the same documents in the same order, the same starting model, retain set and settings
    give the same weights (one seed, one result: docs/run-format.md, "Checkpoints and
    resuming"). On the built-in corpus the first ``scal`` and ``sust`` folds are the forget set.
    """

    name: str
    docs: tuple[tuple[str, str, str], ...]
    evaluation: Any
    output: Any  # UnlearnOutput; a sustainability fold goes on training its model
    train_s: float


# where the MUSE loader read a document from (obliviate.data.muse.parse_muse_row): not content
PROVENANCE = ("config", "split")


def docs_key(docs: Sequence[QAItem]) -> tuple[tuple[str, str, str], ...]:
    """The documents an unlearning run reads, in order, with the metadata a method may read
    (spans, subjects, ...): every key but :data:`PROVENANCE`."""
    return tuple(
        (d.question, d.answer, json.dumps(_content(d.meta), sort_keys=True, default=str))
        for d in docs
    )


def _content(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k not in PROVENANCE}


def run_scalability(
    load_target: Callable[[], Any],
    tokenizer: Any,
    data: Any,
    method: str,
    evaluate: Callable[[Any], Any],
    overrides: dict[str, Any] | None = None,
    progress: bool = False,
    on_fold: Callable[[int, Any, Any], None] | None = None,
    finished: FinishedRun | None = None,
) -> list[FoldResult]:
    """MUSE C5: for each ``scal`` fold (growing forget sets), unlearn it from a fresh target
    (``load_target()``) and evaluate the result with ``evaluate(model)``; a fold with the
    documents of ``finished`` is taken from it instead of being run again."""
    if not data.scal:
        raise ValueError(f"{data.source}: no 'scal' folds (MUSE-Books has none)")
    out = []
    for k, fold in enumerate(data.scal, start=1):
        if finished is not None and finished.docs == docs_key(fold):
            out.append(_repeat(k, fold, finished, on_fold))
            continue
        t0 = time.perf_counter()
        res = unlearn_documents(
            load_target(), tokenizer, method, data.request(fold), overrides, progress=progress
        )
        train_s = time.perf_counter() - t0
        ev = evaluate(res.model)
        if on_fold:
            on_fold(k, ev, res)
        out.append(FoldResult(k, len(fold), ev.values(), round(train_s, 2), res.stopped))
    return out


def _repeat(
    k: int,
    fold: list[QAItem],
    run: FinishedRun,
    on_fold: Callable[[int, Any, Any], None] | None,
) -> FoldResult:
    """Fold ``k`` taken from ``run``, which unlearned the same documents from the target."""
    if on_fold:
        on_fold(k, run.evaluation, run.output)
    return FoldResult(
        k,
        len(fold),
        run.evaluation.values(),
        run.train_s,
        run.output.stopped,
        same_as=run.name,
    )


def run_sustainability(
    load_target: Callable[[], Any],
    tokenizer: Any,
    data: Any,
    method: str,
    evaluate: Callable[[Any], Any],
    overrides: dict[str, Any] | None = None,
    progress: bool = False,
    on_fold: Callable[[int, Any, Any], None] | None = None,
    finished: FinishedRun | None = None,
) -> list[FoldResult]:
    """MUSE C6: unlearn the ``sust`` folds one after another; the model unlearned on fold k is
    the input of fold k + 1 (its frozen reference, e.g. NPO's pi_ref, is that input too).
    A first fold with the documents of ``finished`` is taken from it, and fold 2 goes on from
    its model (trained further in place: ``finished`` is spent)."""
    if not data.sust:
        raise ValueError(f"{data.source}: no 'sust' folds (MUSE-Books has none)")
    out: list[FoldResult] = []
    model: Any = None
    for k, fold in enumerate(data.sust, start=1):
        if k == 1 and finished is not None and finished.docs == docs_key(fold):
            out.append(_repeat(k, fold, finished, on_fold))
            model = finished.output.model
            continue
        if model is None:
            model = load_target()
        t0 = time.perf_counter()
        res = unlearn_documents(
            model, tokenizer, method, data.request(fold), overrides, progress=progress
        )
        model = res.model
        train_s = time.perf_counter() - t0
        ev = evaluate(model)
        if on_fold:
            on_fold(k, ev, res)
        out.append(FoldResult(k, len(fold), ev.values(), round(train_s, 2), res.stopped))
    return out
