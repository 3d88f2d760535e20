"""The span-level metrics of SeUL (Wang+ 2024, arXiv 2402.05813, "evaluation"): S-MA and S-EL.

Both are the instance-level metrics restricted to the tokens of the sensitive spans
(docs/methods.md, "SeUL"); lower means less of the sensitive information is reproduced.

- **S-MA**, sensitive memorisation accuracy: memorisation accuracy (Tirumala+ 2022, arXiv
  2205.10770) over the span tokens only, ``(1/|S|) Σ_{t∈S} 1[argmax_v z_t = y_t]``, teacher-forced.
- **S-EL**, sensitive extraction likelihood: extraction likelihood (Jang+ 2022, arXiv
  2210.01504: n-gram overlap of the greedy continuation with the true one) computed on the spans:
  for each maximal run of span tokens, the model continues the true text before the run
  greedily for as many tokens as the run has, and the score is the n-gram overlap of that
  continuation with the run (:func:`ngram_overlap`, ``n`` cut to the run's length); S-EL is the
  mean over the runs.

An item (or a set) without any span token has no value: the functions return ``None``.
The functions are pure: they take lists and import nothing; :mod:`obliviate.span_eval` runs
the model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def span_runs(mask: Sequence[bool]) -> list[tuple[int, int]]:
    """The maximal runs of True in ``mask`` as ``(start, end)`` index ranges."""
    runs: list[tuple[int, int]] = []
    start = None
    for i, m in enumerate(list(mask) + [False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            runs.append((start, i))
            start = None
    return runs


def ngram_overlap(generated: Sequence[int], truth: Sequence[int], n: int = 2) -> float | None:
    """Jang+ 2022's OVERLAP_n: the share of the n-grams of ``generated`` that occur in ``truth``
    (clipped counts), with ``n`` cut to ``len(truth)``. An empty ``truth`` gives ``None``, an
    empty ``generated`` 0."""
    if n < 1:
        raise ValueError(f"n-gram order must be >= 1, got {n}")
    if not truth:
        return None
    n = min(n, len(truth))
    gen = Counter(tuple(generated[i : i + n]) for i in range(len(generated) - n + 1))
    ref = Counter(tuple(truth[i : i + n]) for i in range(len(truth) - n + 1))
    total = sum(gen.values())
    if total == 0:
        return 0.0
    return sum(min(k, ref[g]) for g, k in gen.items()) / total


def span_memorisation_accuracy(correct: Sequence[bool], span: Sequence[bool]) -> float | None:
    """S-MA of one item: the mean of ``correct`` (teacher-forced argmax hits, one per answer
    token) over the tokens where ``span`` is True; ``None`` when no token is in a span."""
    if len(correct) != len(span):
        raise ValueError(f"correct ({len(correct)}) and span ({len(span)}) must align")
    hits = [bool(c) for c, s in zip(correct, span) if s]
    return sum(hits) / len(hits) if hits else None


def span_extraction_likelihood(
    generations: Sequence[Sequence[int]], spans: Sequence[Sequence[int]], n: int = 2
) -> float | None:
    """S-EL over span runs: the mean of :func:`ngram_overlap` of each run's greedy continuation
    with the run itself; ``None`` without runs."""
    if len(generations) != len(spans):
        raise ValueError(f"{len(generations)} continuations for {len(spans)} spans")
    vals = [v for g, s in zip(generations, spans) if (v := ngram_overlap(g, s, n)) is not None]
    return sum(vals) / len(vals) if vals else None


def mean_defined(values: Sequence[float | None]) -> float | None:
    """The mean of the values that are not ``None`` (``None`` when there are none)."""
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def span_positions(
    labels: Sequence[int], mask: Sequence[bool], ignore: int = -100
) -> tuple[list[bool], list[tuple[int, int]]]:
    """Where one encoded item's spans are, for the two metrics: the span mask over its scored
    answer tokens (the label positions ``t >= 1``, in the order of the evaluation's per-token
    arrays, for :func:`span_memorisation_accuracy`) and the maximal runs of span tokens as
    ``(start, end)`` positions of the input ids (each continued greedily from ``ids[:start]``
    for :func:`span_extraction_likelihood`)."""
    if len(labels) != len(mask):
        raise ValueError(f"an item has {len(labels)} tokens but {len(mask)} mask entries")
    scored = [t for t in range(1, len(labels)) if labels[t] != ignore]
    runs = span_runs([bool(m) and t > 0 and labels[t] != ignore for t, m in enumerate(mask)])
    return [bool(mask[t]) for t in scored], runs
