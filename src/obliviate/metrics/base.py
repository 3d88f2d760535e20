"""Metric definitions, results and the input checks every metric function shares.

Only numpy here: ``import obliviate.metrics`` (which ``obliviate ls metrics`` triggers) must stay
cheap. scipy and rouge_score are imported inside the functions that need them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Direction = Literal["higher", "lower", "zero"]
DIRECTIONS: tuple[str, ...] = ("higher", "lower", "zero")

# log-probabilities / NLLs a little on the wrong side of 0 are rounding noise, not bugs
_SIGN_TOL = 1e-6


@dataclass(frozen=True)
class MetricResult:
    """One aggregate value as stored in ``metrics.json`` (docs/run-format.md).

    Built by :func:`obliviate.metrics.metric_result` from the catalogue's definition (direction,
    version, ideal). ``settings`` records the options the value depends on (EOS handling, k,
    stemming...), so two results can be checked for compatibility (docs/metrics.md). ``n``
    (items), ``settings``, ``ideal`` and ``extra`` (evaluator-specific keys, e.g. the audit's
    ``control``) are written by :meth:`to_dict` only when set. ``value`` may be None (not
    computable on this data), which is stored as JSON null.
    """

    value: float | None
    direction: Direction
    version: int
    n: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    ideal: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "value": None if self.value is None else float(self.value),
            "direction": self.direction,
            "version": self.version,
        }
        if self.n is not None:
            out["n"] = self.n
        if self.settings:
            out["settings"] = dict(self.settings)
        if self.ideal is not None:
            out["ideal"] = self.ideal
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class MetricDef:
    """The definition of a named metric: what ``obliviate ls metrics`` lists.

    ``function`` is the ``"module:attr"`` of the function that computes the aggregate value and
    ``per_item`` that of the per-item function whose outputs it aggregates (None if the metric
    aggregates other metrics). A name never changes meaning: a change of definition bumps
    ``version`` and goes into the version log (docs/metrics.md). ``ideal`` is the best value
    where it is not an extreme of the scale (MIA AUC: 0.5, the retain model's level);
    direction "zero" already means an ideal of 0. ``inputs`` names what the metric is computed
    from ("token_scores", "generations", "reference" results, "images"...). The definitions live
    in :mod:`obliviate.metrics.catalogue`, one registration per metric.
    """

    name: str
    description: str
    paper: str
    direction: Direction
    function: str
    per_item: str | None = None
    version: int = 1
    ideal: float | None = None
    inputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"{self.name}: direction must be one of {DIRECTIONS}")

    def result(
        self,
        value: float | None,
        *,
        n: int | None = None,
        settings: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> MetricResult:
        """Wrap an aggregate value with this metric's direction, version and ideal."""
        return MetricResult(
            None if value is None else float(value),
            self.direction,
            self.version,
            n,
            dict(settings or {}),
            self.ideal,
            dict(extra or {}),
        )


# ---------------------------------------------------------------------------------------------
# input checks (shared by tofu.py, memorisation.py, mia.py)


def as_1d(values: Any, name: str, *, allow_inf: bool = True) -> np.ndarray:
    """``values`` as a 1-D float64 array; ValueError naming ``name`` on bad shape, None or NaN."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a sequence of numbers ({exc})") from None
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence, got shape {arr.shape}")
    bad = np.flatnonzero(np.isnan(arr) if allow_inf else ~np.isfinite(arr))
    if bad.size:
        what = "missing (None) or NaN" if allow_inf else "missing (None), NaN or infinite"
        raise ValueError(f"{name}: {what} value at index {int(bad[0])}")
    return arr


def as_bool_1d(values: Any, name: str) -> np.ndarray:
    """``values`` as a 1-D bool array; only booleans or 0/1 are accepted."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if arr.size == 0:
        return arr.astype(bool)
    if arr.dtype.kind not in "iuf" or not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name}: expected booleans (or 0/1), got dtype {arr.dtype}")
    return arr.astype(bool)


def answer_tokens(arr: np.ndarray, name: str, *, include_eos: bool, has_eos: bool) -> np.ndarray:
    """Drop the final EOS position when the array has one (``has_eos``) and it is not scored.

    The scoring layer's arrays run over the answer tokens, EOS last when ``has_eos``
    (docs/metrics.md).
    """
    if has_eos and not include_eos:
        if arr.shape[0] == 0:
            raise ValueError(f"{name}: has_eos=True but there are no tokens at all")
        return arr[:-1]
    return arr


def check_nll(value: Any, name: str) -> float:
    """A per-token-averaged NLL: a number >= 0 (+inf allowed: probability 0)."""
    if value is None:
        raise ValueError(f"{name}: missing value (None)")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {type(value).__name__}") from None
    if math.isnan(x):
        raise ValueError(f"{name}: NaN")
    if x < -_SIGN_TOL:
        raise ValueError(
            f"{name}: an NLL must be >= 0, got {x}; did you pass a log-probability instead?"
        )
    return max(x, 0.0)


def check_logprobs(arr: np.ndarray, name: str) -> np.ndarray:
    """Token log-probabilities: <= 0 (small positive rounding noise is clipped)."""
    bad = np.flatnonzero(arr > _SIGN_TOL)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{name}: log-probabilities must be <= 0, got {arr[i]} at index {i}; "
            "did you pass an NLL instead?"
        )
    return np.minimum(arr, 0.0)


def check_nonempty(arr: np.ndarray, name: str, what: str) -> None:
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: empty input; {what}")


def mean_score(values: Iterable[float], name: str = "values") -> float:
    """Mean over items of a per-item score (Prob, ROUGE, EM, ES...). Raises on empty/NaN/None."""
    vals = list(values)
    for i, v in enumerate(vals):
        if v is None:
            raise ValueError(f"{name}: missing value (None) at index {i}")
    arr = as_1d(vals, name)
    check_nonempty(arr, name, "a mean needs at least one item")
    return float(arr.mean())
