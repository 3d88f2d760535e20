"""Pure tensor functions of the neuron-level methods ``depn`` and ``selective_pruning``
(docs/methods.md, "Neuron-level localisation"; the methods are in
:mod:`obliviate.methods.neurons`).

A *neuron* is one input coordinate of a decoder block's MLP output projection (the MLP's hidden
activation); neurons are numbered layer by layer, so a model with L layers of d_ff neurons has
L·d_ff of them. Only torch is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

IMPORTANCE = ("abs", "freq", "rms", "std")


def riemann_integrated_gradients(
    grad_at: Callable[[torch.Tensor], torch.Tensor], shape: Sequence[int], steps: int
) -> torch.Tensor:
    """Integrated gradients of F with respect to a neuron multiplier s, from the baseline
    s = 0 (neurons off) to s = 1 (the model as it is), by the right Riemann sum of m = ``steps``
    points (DEPN, Wu+ 2023, arXiv 2310.20138, §3.2, after Dai+ 2022, arXiv 2104.08696):

        Att_i = ∫_0^1 ∂F(α·1)/∂s_i dα  ≈  (1/m) · Σ_{k=1..m} ∂F((k/m)·1)/∂s_i

    ``grad_at(s)`` returns ∂F/∂s at ``s`` (same shape). Scaling a neuron's activation a by s
    makes ∂F/∂s_i = Σ_t a_{t,i}·∂F/∂a_{t,i}: this is the paper's activation × gradient
    integral, with the activation at every position scaled together."""
    if steps < 1:
        raise ValueError(f"integrated gradients need steps >= 1, got {steps}")
    total = torch.zeros(tuple(shape), dtype=torch.float32)
    for k in range(1, steps + 1):
        s = torch.full(tuple(shape), k / steps, dtype=torch.float32)
        total = total + grad_at(s).detach().float().cpu()
    return total / steps


def privacy_neurons(attributions: torch.Tensor, threshold: float, top_z: int) -> list[int]:
    """DEPN's privacy neurons from per-item attributions ``(n_items, n_neurons)``.

    Detector (per item): the neurons whose attribution is positive and at least ``threshold``
    times the item's largest attribution (the relative threshold of knowledge neurons, Dai+
    2022). Aggregator (over the batch of items, DEPN §3.3): neurons ranked by the number of
    items that detect them, ties by their summed attribution; the first ``top_z`` are the
    privacy neurons. Returns their indices in that order (fewer if fewer were detected)."""
    if attributions.dim() != 2:
        raise ValueError(f"attributions must be (items, neurons), got {tuple(attributions.shape)}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(
            f"threshold must be in [0, 1] (a fraction of the maximum), not {threshold}"
        )
    if top_z < 1:
        raise ValueError(f"the number of privacy neurons must be >= 1, got {top_z}")
    if attributions.shape[0] == 0:
        return []
    att = attributions.float()
    best = att.max(dim=1, keepdim=True).values
    detected = (att > 0) & (att >= threshold * best)
    counts = detected.sum(0).tolist()
    totals = att.sum(0).tolist()
    ranked = sorted(
        (j for j, c in enumerate(counts) if c > 0), key=lambda j: (-counts[j], -totals[j], j)
    )
    return ranked[:top_z]


@dataclass
class ActivationStats:
    """Running sums of neuron activations over the tokens seen (padding excluded), from which
    every importance function of selective pruning is computed."""

    n: int = 0  # tokens
    total: torch.Tensor | None = None  # Σ a
    total_abs: torch.Tensor | None = None  # Σ |a|
    total_sq: torch.Tensor | None = None  # Σ a²
    positive: torch.Tensor | None = None  # Σ 1[a > 0]

    def add(self, acts: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Add activations ``(B, T, n)`` (or ``(N, n)``); ``mask`` ``(B, T)`` is 1 at the
        positions to count (padding 0)."""
        a = acts.detach().double()
        if a.dim() == 3:
            keep = torch.ones(a.shape[:2], dtype=torch.bool) if mask is None else mask.bool()
            a = a[keep.to(a.device)]
        elif a.dim() != 2:
            raise ValueError(f"activations must be (B, T, n) or (N, n), got {tuple(a.shape)}")
        parts = {
            "total": a.sum(0),
            "total_abs": a.abs().sum(0),
            "total_sq": (a * a).sum(0),
            "positive": (a > 0).double().sum(0),
        }
        for name, value in parts.items():
            old = getattr(self, name)
            setattr(self, name, value.cpu() if old is None else old + value.cpu())
        self.n += int(a.shape[0])


def importance(stats: ActivationStats, kind: str = "abs") -> torch.Tensor:
    """A neuron importance function of selective pruning (Pochinkov & Schoots 2024, arXiv
    2403.01267, §3): over the N tokens of a dataset, ``freq`` = mean 1[a > 0], ``abs`` = mean
    |a|, ``rms`` = sqrt(mean a²), ``std`` = the standard deviation of a."""
    if kind not in IMPORTANCE:
        raise ValueError(f"importance must be one of {', '.join(IMPORTANCE)}, not {kind!r}")
    if stats.n == 0 or stats.total is None:
        raise ValueError("no tokens were seen: the dataset is empty")
    n = float(stats.n)
    assert stats.total_abs is not None and stats.total_sq is not None
    assert stats.positive is not None
    if kind == "freq":
        return stats.positive / n
    if kind == "abs":
        return stats.total_abs / n
    if kind == "rms":
        return (stats.total_sq / n).sqrt()
    mean = stats.total / n
    return (stats.total_sq / n - mean * mean).clamp(min=0.0).sqrt()


def pruning_scores(forget: torch.Tensor, retain: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Selective pruning's score of each neuron, the ratio of its importance on the forget data
    to its importance on the retain data (Pochinkov & Schoots 2024, §3):
    ``I(D_forget) / (I(D_retain) + eps)``."""
    if forget.shape != retain.shape:
        raise ValueError(
            f"importance shapes differ: {tuple(forget.shape)} vs {tuple(retain.shape)}"
        )
    return forget.double() / (retain.double() + eps)


def top_fraction(
    scores: torch.Tensor, fraction: float, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """Indices of the ``fraction`` of highest-scoring neurons, k = ⌊fraction · n⌋ (at least 1)
    of the n neurons, chosen among ``allowed`` (a bool mask: neurons already pruned are not
    chosen again). Ties go to the lower index."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], not {fraction}")
    flat = scores.flatten().double()
    k = max(1, int(fraction * flat.numel()))
    if allowed is not None:
        flat = torch.where(allowed.flatten(), flat, torch.full_like(flat, -torch.inf))
        k = min(k, int(allowed.sum()))
    values = flat.tolist()
    order = sorted(range(len(values)), key=lambda j: (-values[j], j))
    return torch.tensor(order[:k], dtype=torch.long)
