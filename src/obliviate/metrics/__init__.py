"""Metrics: pure functions over the scoring layer's per-item numbers, and their definitions.

Importing this package registers every metric *definition* (:class:`MetricDef`: name,
direction, ideal, version, inputs, description, paper, the functions that compute it) in
:data:`obliviate.registry.METRICS` through :mod:`obliviate.metrics.catalogue`, the one place
where they are defined; ``obliviate ls metrics`` lists them. Names are those of
docs/run-format.md. Only numpy is imported here; scipy and rouge_score load on first use.

Typical use by an evaluator, per item then per split::

    from obliviate.metrics import mean_score, metric_result, tofu
    nll = tofu.nll_avg(ts.token_logprobs, include_eos=True, has_eos=ts.has_eos)
    prob = tofu.probability(nll)
    ...  # one prob per item, then:
    metrics["forget_prob"] = metric_result("forget_prob", mean_score(probs), n=len(probs)).to_dict()
"""

from __future__ import annotations

from obliviate.metrics import memorisation, mia, rouge, tofu
from obliviate.metrics.base import MetricDef, MetricResult, mean_score
from obliviate.metrics.catalogue import (
    DEFINITIONS,
    UnknownMetricError,
    direction_of,
    metric_def,
    metric_result,
    register_metric,
)

__all__ = [
    "DEFINITIONS",
    "MetricDef",
    "MetricResult",
    "UnknownMetricError",
    "direction_of",
    "mean_score",
    "memorisation",
    "metric_def",
    "metric_result",
    "mia",
    "register_metric",
    "rouge",
    "tofu",
]
