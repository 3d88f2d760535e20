"""Disjoint request splits for continual unlearning (docs/continual.md).

TOFU's forget01/05/10 splits are nested (forget01 ⊂ forget05 ⊂ forget10), so they cannot serve
as a sequence of separate deletion requests. ``forgetNN:i/k`` names part ``i`` of ``k`` of the
forgetNN split, cut at whole authors: the split's authors (consecutive blocks of
``per_author`` questions: 10 per person in the built-in benchmark by default, its
``qa_per_person``; 20 per author in TOFU) are dealt into ``k`` consecutive groups whose sizes
differ by at most one author (the first groups get the extra ones). The parts of one split
are disjoint and together make the whole split, so after the last request the model has been
asked to forget exactly forgetNN, and the retain set (retain(100−NN)) and the retain model of
forgetNN are the gold standard for every part.
"""

from __future__ import annotations

import dataclasses
import re

from obliviate.data.types import QAItem, UnlearningRequest

_PART = re.compile(r"^(?P<base>[^:]+):(?P<i>\d+)/(?P<k>\d+)$")


def parse_part(split: str) -> tuple[str, int, int] | None:
    """``"forget10:2/3"`` -> ``("forget10", 2, 3)``; a split without ``:i/k`` -> None.

    Raises ValueError when the part is malformed or ``i`` is not in 1..k.
    """
    text = str(split).strip()
    if ":" not in text:
        return None
    m = _PART.match(text)
    if not m:
        raise ValueError(f"split {split!r}: write a part as SPLIT:I/K, e.g. forget10:1/3")
    i, k = int(m["i"]), int(m["k"])
    if not 1 <= i <= k:
        raise ValueError(f"split {split!r}: part {i} of {k} does not exist (use 1..{k})")
    return m["base"], i, k


def author_groups(n_items: int, per_author: int, k: int) -> list[range]:
    """Item index ranges of the ``k`` author groups of a split of ``n_items`` questions,
    ``per_author`` consecutive questions per author (see the module docstring)."""
    if per_author < 1 or n_items % per_author:
        raise ValueError(
            f"the split has {n_items} questions, not a whole number of authors of "
            f"{per_author} questions each, so it cannot be cut at authors"
        )
    authors = n_items // per_author
    if k > authors:
        raise ValueError(
            f"the split has {authors} author(s); it cannot be cut into {k} parts "
            "(use fewer parts or a larger split)"
        )
    sizes = [authors // k + (1 if g < authors % k else 0) for g in range(k)]
    out, start = [], 0
    for size in sizes:
        out.append(range(start * per_author, (start + size) * per_author))
        start += size
    return out


def take_part(request: UnlearningRequest, i: int, k: int, per_author: int) -> UnlearningRequest:
    """The request for part ``i`` of ``k`` of ``request``'s forget split: its forget items, the
    same items of the evaluation forget set and of the holdout set (when these have the forget
    set's length, as in TOFU); the retain set, the other evaluation sets and ``full`` stay."""
    try:
        part = author_groups(len(request.forget), per_author, k)[i - 1]
    except ValueError as exc:
        raise ValueError(f"split {request.split}:{i}/{k}: {exc}") from None

    def cut(items: list[QAItem]) -> list[QAItem]:
        return [items[j] for j in part] if len(items) == len(request.forget) else list(items)

    holdout = cut(request.holdout)
    evals = dict(request.eval)
    if "forget" in evals:
        evals["forget"] = cut(evals["forget"])
    if "holdout" in evals:
        evals["holdout"] = cut(evals["holdout"])
    return dataclasses.replace(
        request,
        forget=cut(request.forget),
        holdout=holdout,
        eval=evals,
        split=f"{request.split}:{i}/{k}",
    )
