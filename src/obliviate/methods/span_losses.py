"""Span-level selective unlearning (SeUL, Wang+ 2024, arXiv 2402.05813): the pure functions.

SeUL replaces the instance-level ascent of knowledge unlearning (Jang+ 2022, arXiv 2210.01504,
every token of a forget text) by an ascent on the tokens of the *sensitive spans* only
(paper §3, the span-level unlearning loss L_UL): ``L_f = -(1/|S|) Σ_{t∈S} ℓ_t`` with
``ℓ_t = -log π_θ(y_t | x, y_<t)`` and ``S`` the answer positions inside a sensitive span.
The other answer tokens (function words, the template, EOS) keep their likelihood.

Which tokens are sensitive comes from the data (the substrings of the item's
``sensitive_spans`` field, located by :mod:`obliviate.data.spans`) or, where an item has none,
from a scorer (:func:`top_surprisal_mask`; docs/methods.md, "SeUL"). Only torch is imported,
and only by :func:`seul_loss`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

IGNORE_INDEX = -100


def seul_loss(logits: torch.Tensor, labels: torch.Tensor, span_mask: torch.Tensor) -> torch.Tensor:
    """SeUL's selective ascent (Wang+ 2024, arXiv 2402.05813, §3, L_UL): ``-(1/|S|) Σ_{t∈S} ℓ_t``.

    ``span_mask`` is ``(B, T)`` bool, aligned with the *unshifted* ``labels`` (True where the
    label token at that position is inside a sensitive span). Positions whose label is ``-100``
    (prompt, padding) never count, even when the mask is True there. The mean runs over the
    sensitive tokens of the whole batch (HF token mean); a batch without any sensitive token
    gives 0 with the graph intact.
    """
    import torch

    from obliviate.methods.likelihood_losses import ga_loss

    if tuple(span_mask.shape) != tuple(labels.shape):
        raise ValueError(
            f"span_mask must have the shape of labels {tuple(labels.shape)}, got "
            f"{tuple(span_mask.shape)}"
        )
    if span_mask.dtype != torch.bool:
        raise ValueError(f"span_mask must be a bool tensor, got {span_mask.dtype}")
    return ga_loss(logits, labels.masked_fill(~span_mask, IGNORE_INDEX))


def top_surprisal_mask(surprisal: Sequence[float], fraction: float) -> list[bool]:
    """The ``ceil(fraction · n)`` (at least one) tokens of highest surprisal ``-log p``, as a mask
    over the ``n`` given tokens (ties: the earlier token first). No token -> ``[]``."""
    if not 0 < fraction <= 1:
        raise ValueError(f"span_fraction must be in (0, 1], got {fraction}")
    n = len(surprisal)
    if n == 0:
        return []
    k = max(1, math.ceil(fraction * n - 1e-9))
    order = sorted(range(n), key=lambda i: (-surprisal[i], i))[:k]
    chosen = set(order)
    return [i in chosen for i in range(n)]
