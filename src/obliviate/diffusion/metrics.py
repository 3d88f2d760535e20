"""Diffusion erasure metrics as pure functions (docs/diffusion.md).

The judge's predictions and features come in; numbers come out. Every function rejects empty
input with a ``ValueError`` instead of returning NaN.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np


def _as_1d(x: Sequence[int] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: no images were classified")
    return arr


def unlearning_accuracy(predictions: Sequence[int] | np.ndarray, target: int) -> float:
    """UA: share of the erased concept's images that the judge does *not* assign to it.

    UA = (1/N) Σ_i 1[ŷ_i ≠ target]; UnlearnCanvas (arXiv 2402.11846, evaluation
    metrics); for class-conditional models UA = 1 − target-class accuracy (SalUn, arXiv
    2310.12508). Higher is better.
    """
    pred = _as_1d(predictions, "predictions")
    return float(np.mean(pred != target))


def retain_accuracy(
    predictions: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> float:
    """IRA / CRA: plain accuracy (1/N) Σ_i 1[ŷ_i = y_i] on images of retained concepts
    (in-domain: same head as the erased concept; cross-domain: the other head), UnlearnCanvas
    (arXiv 2402.11846). Higher is better."""
    pred = _as_1d(predictions, "predictions")
    lab = _as_1d(labels, "labels")
    if pred.shape != lab.shape:
        raise ValueError(f"{pred.size} predictions but {lab.size} labels")
    return float(np.mean(pred == lab))


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance of two Gaussians (Heusel+ 2017, arXiv 1706.08500, the FID
    formula):

    d² = ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^{1/2}).

    When the product is singular, ``eps·I`` is added to both covariances (as pytorch-fid does).
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}"
        )
    diff = mu1 - mu2
    with warnings.catch_warnings():  # singular products are handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            offset = np.eye(s1.shape[0]) * eps
            covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = np.real(covmean)
    return float(max(0.0, diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)))


def fid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """FID-style distance between two feature sets ``(N, D)``: the Fréchet distance of their
    means and sample covariances (ddof = 1). Lower is better. Computed on the judge's
    features, so the numbers are comparable only within obliviate's built-in benchmark."""
    f1, f2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    for name, f in (("features1", f1), ("features2", f2)):
        if f.ndim != 2 or f.shape[0] < 2:
            raise ValueError(f"{name} must be (N >= 2, D), got shape {f.shape}")
    return frechet_distance(
        f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False)
    )


def kid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """KID: the unbiased MMD² with the cubic polynomial kernel k(x, y) = (xᵀy / d + 1)³
    (Bińkowski+ 2018, arXiv 1801.01401, the
    KID definition):

    MMD²_u = 1/(m(m−1)) Σ_{i≠j} k(x_i, x_j) + 1/(n(n−1)) Σ_{i≠j} k(y_i, y_j)
             − 2/(mn) Σ_{i,j} k(x_i, y_j),

    over the full sets (no subset averaging). Lower is better; it can be slightly negative.
    """
    x, y = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    for name, f in (("features1", x), ("features2", y)):
        if f.ndim != 2 or f.shape[0] < 2:
            raise ValueError(f"{name} must be (N >= 2, D), got shape {f.shape}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} vs {y.shape[1]}")
    d = x.shape[1]
    m, n = len(x), len(y)
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2 * kxy.mean()
    )
