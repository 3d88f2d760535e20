"""Lookups in the metric registry (:data:`obliviate.registry.METRICS`): a metric's definition,
direction and ``metrics.json`` entry, and the registration of a definition. The entries are registered by
:mod:`obliviate.metrics.catalogue`, which re-exports these functions."""

from __future__ import annotations

import difflib
from typing import Any

from obliviate.metrics.base import MetricDef, MetricResult
from obliviate.registry import METRICS, UnknownEntryError


class UnknownMetricError(UnknownEntryError):
    """A metric name that the catalogue does not register."""


def metric_def(name: str) -> MetricDef:
    """The catalogue's definition of ``name`` (an exact entry or the family pattern it matches).

    Raises :class:`UnknownMetricError` (a ``KeyError``) for an unregistered name.
    """
    entry = METRICS.find(name)
    if entry is None:
        close = difflib.get_close_matches(name, METRICS.names(), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownMetricError(
            f"metric {name!r} is not registered{hint}: every recorded metric must be registered "
            "in obliviate/metrics/catalogue.py with its direction, version and paper"
        )
    return entry.load()


def direction_of(name: str) -> str:
    """The registered direction of metric ``name``: "higher", "lower" or "zero"."""
    return metric_def(name).direction


def metric_result(
    name: str,
    value: float | None,
    *,
    n: int | None = None,
    settings: dict[str, Any] | None = None,
    **extra: Any,
) -> MetricResult:
    """The ``metrics.json`` entry of metric ``name`` (``.to_dict()``): ``value`` with the
    catalogue's direction, version and ideal, plus ``n``, ``settings`` and any ``extra`` keys."""
    clash = sorted(set(extra) & {"value", "direction", "version", "ideal"})
    if clash:
        raise ValueError(f"metric_result({name!r}): {', '.join(clash)} come from the catalogue")
    return metric_def(name).result(value, n=n, settings=settings, extra=extra)


def register_metric(d: MetricDef) -> MetricDef:
    """Register ``d`` in :data:`obliviate.registry.METRICS` with its direction, version, inputs
    and ideal as the entry's metadata (what ``obliviate ls metrics`` shows). The catalogue
    registers its definitions with it; a plugin registers its own (docs/contributing.md)."""
    meta: dict[str, Any] = {"direction": d.direction, "version": d.version, "inputs": d.inputs}
    if d.ideal is not None:
        meta["ideal"] = d.ideal
    METRICS.register(d.name, d, description=d.description, paper=d.paper, **meta)
    return d


def metric_versions() -> dict[str, int]:
    """``{name: version}`` of every catalogue entry: part of every evaluation key, so that a
    changed metric definition never reuses a cached number (docs/metrics.md)."""
    import obliviate.metrics.catalogue  # noqa: F401 (registers the entries)

    return {name: int(METRICS.get(name).version) for name in sorted(METRICS.names())}
