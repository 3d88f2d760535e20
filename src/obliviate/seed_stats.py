"""Statistics of one metric over several seeds: mean, spread and a bootstrap interval.

A single run cannot rank unlearning methods: the same command gives different forget qualities
on two machines, and seeds move it as much. :func:`summarise` turns the per-seed values of one
metric into a :class:`SeedStats`:

- ``mean`` of the finite values (a seed whose value is missing or NaN is left out and counted in
  ``missing``);
- ``sd``, the sample standard deviation (divisor n - 1); ``None`` when fewer than two values
  exist, since it is undefined there (never reported as 0);
- ``ci_low``/``ci_high``, the percentile bootstrap confidence interval of the mean (Efron &
  Tibshirani 1993, *An Introduction to the Bootstrap*, ch. 13, eq. 13.5): ``resamples`` sets of
  n values drawn with replacement, the mean of each, and the (1 - level)/2 and (1 + level)/2
  quantiles of those means (linear interpolation). The generator is seeded (``rng_seed``), so
  the interval is reproducible. ``None`` with fewer than two values.

:func:`within_noise` decides whether two methods' results can be told apart: they are *within
noise* when their bootstrap intervals overlap. It is a screen, not a significance test (two
95% intervals may overlap while a test of the difference rejects), chosen because it needs no
assumption on the metric's distribution; with fewer than two seeds on either side it answers
``None`` (unknown). docs/run-format.md ("Several seeds") describes where these numbers are
stored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_RESAMPLES = 2000
DEFAULT_LEVEL = 0.95
DEFAULT_RNG_SEED = 0


@dataclass(frozen=True)
class SeedStats:
    """One metric over seeds; ``values`` keeps every seed's value in seed order (None = missing)."""

    n: int
    mean: float | None
    sd: float | None
    ci_low: float | None
    ci_high: float | None
    values: list[float | None] = field(default_factory=list)
    level: float = DEFAULT_LEVEL

    @property
    def missing(self) -> int:
        return len(self.values) - self.n

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "sd": self.sd,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "ci_level": self.level,
            "n": self.n,
            "per_seed": list(self.values),
        }


def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (divisor n - 1; ``None`` for one value)."""
    if not values:
        raise ValueError("no values to summarise: give at least one seed's value")
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def bootstrap_ci(
    values: Sequence[float],
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    rng_seed: int = DEFAULT_RNG_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (Efron & Tibshirani 1993, eq. 13.5)."""
    import numpy as np

    if len(values) < 2:
        raise ValueError("a bootstrap interval needs at least two values")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    data = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(rng_seed)
    idx = rng.integers(0, len(data), size=(resamples, len(data)))
    means = data[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def summarise(
    values: Iterable[Any],
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    rng_seed: int = DEFAULT_RNG_SEED,
) -> SeedStats:
    """The statistics of one metric's per-seed values (None or NaN = missing for that seed)."""
    raw = [_finite(v) for v in values]
    if not raw:
        raise ValueError("no seeds to summarise: give the values of at least one seed")
    kept = [v for v in raw if v is not None]
    if not kept:
        return SeedStats(0, None, None, None, None, raw, level)
    mean, sd = mean_sd(kept)
    lo: float | None = None
    hi: float | None = None
    if len(kept) >= 2:
        lo, hi = bootstrap_ci(kept, resamples, level, rng_seed)
    return SeedStats(len(kept), mean, sd, lo, hi, raw, level)


def summarise_metrics(
    per_seed: Sequence[Mapping[str, Any]],
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    rng_seed: int = DEFAULT_RNG_SEED,
) -> dict[str, SeedStats]:
    """Per metric name, the statistics over seeds of ``per_seed`` (one mapping name -> value per
    seed). A metric absent from some seeds counts as missing there."""
    if not per_seed:
        raise ValueError("no seeds to summarise: give the metrics of at least one seed")
    names: list[str] = []
    for metrics in per_seed:
        names += [k for k in metrics if k not in names]
    return {
        name: summarise([m.get(name) for m in per_seed], resamples, level, rng_seed)
        for name in names
    }


def within_noise(a: SeedStats, b: SeedStats) -> bool | None:
    """True when the two bootstrap intervals overlap (the difference is within seed noise),
    False when they are disjoint, None when either side has fewer than two seeds."""
    if a.ci_low is None or a.ci_high is None or b.ci_low is None or b.ci_high is None:
        return None
    return a.ci_low <= b.ci_high and b.ci_low <= a.ci_high


def stats_from_dict(d: Mapping[str, Any] | None, mean: float | None = None) -> SeedStats:
    """A :class:`SeedStats` from its stored form (``to_dict`` or a comparison row's ``stats``
    entry, whose mean is the row's value ``mean``); without one, a single value (no interval)."""
    d = d or {}
    return SeedStats(
        int(d.get("n", 0 if mean is None else 1)),
        d.get("mean", mean),
        d.get("sd"),
        d.get("ci_low"),
        d.get("ci_high"),
        list(d.get("per_seed") or []),
        float(d.get("ci_level", DEFAULT_LEVEL)),
    )


def rank_key(value: float | None, direction: str) -> tuple[int, float]:
    """Sort key putting the best value first by its ``direction`` ("higher", "lower", "zero"
    = closest to 0) and a missing value last."""
    v = _finite(value)
    if v is None:
        return (1, 0.0)
    return (0, {"higher": -v, "lower": v}.get(direction, abs(v)))


def format_mean_sd(stats: SeedStats | Mapping[str, Any] | None, fmt: Any = None) -> str:
    """``0.4123 ± 0.0210`` of statistics or their stored form (``fmt`` formats each number;
    default 4 significant digits);
    ``0.41 (n=1)`` without a standard deviation, ``—`` without a value."""
    if stats is None:
        return "—"
    d = stats.to_dict() if isinstance(stats, SeedStats) else stats
    show = fmt or (lambda x: f"{x:.4g}")
    mean = d.get("mean", d.get("value"))  # a metrics.json entry stores the mean as its value
    if mean is None:
        return "—"
    if d.get("sd") is None:
        return f"{show(mean)} (n={d.get('n', 1)})"
    return f"{show(mean)} ± {show(d['sd'])}"
