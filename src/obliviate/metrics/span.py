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
The pure functions take lists and import nothing; :func:`span_scores` runs a model (torch loads
on use).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any


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


def span_scores(
    model: Any, ids: Sequence[Sequence[int]], masks: Sequence[Sequence[bool]], n: int = 2
) -> dict[str, Any]:
    """S-MA and S-EL of ``model`` over items given as token ids and span masks aligned with them
    (``masks[i][t]``: token ``t`` of item ``i`` is sensitive; e.g. the masks of
    :class:`obliviate.methods.seul.SeULTerm`). Returns ``{"s_ma", "s_el", "items", "spans"}``
    with S-MA the mean over items that have span tokens (``None`` values when none has)."""
    import torch

    from obliviate.scoring import model_device

    device = model_device(model)
    s_ma: list[float | None] = []
    gens: list[list[int]] = []
    truths: list[list[int]] = []
    with torch.no_grad():
        for seq, mask in zip(ids, masks):
            if len(seq) != len(mask):
                raise ValueError(f"an item has {len(seq)} tokens but {len(mask)} mask entries")
            pos = [t for t, m in enumerate(mask) if m and t > 0]
            if not pos:
                s_ma.append(None)
                continue
            x = torch.tensor([list(seq)], device=device)
            pred = model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0].argmax(-1)
            s_ma.append(sum(int(pred[t - 1]) == seq[t] for t in pos) / len(pos))
            for a, b in span_runs([m and t > 0 for t, m in enumerate(mask)]):
                cur = x[:, :a]
                for _ in range(b - a):
                    nxt = model(input_ids=cur, attention_mask=torch.ones_like(cur)).logits
                    cur = torch.cat([cur, nxt[:, -1:].argmax(-1)], dim=1)
                gens.append(cur[0, a:].tolist())
                truths.append(list(seq[a:b]))
    return {
        "s_ma": mean_defined(s_ma),
        "s_el": span_extraction_likelihood(gens, truths, n),
        "items": sum(v is not None for v in s_ma),
        "spans": len(truths),
    }
