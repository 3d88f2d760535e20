"""Metrics: pure functions over the scoring layer's per-item numbers, and their definitions.

Importing this package registers every metric *definition* (:class:`MetricDef`: name,
description, paper, direction, version, the functions that compute it) in
:data:`obliviate.registry.METRICS`, which ``obliviate ls metrics`` lists. Names are those of
docs/run-format.md. Only numpy is imported here; scipy and rouge_score load on first use.

Typical use by an evaluator, per item then per split::

    from obliviate.metrics import mean_score, metric_result, tofu
    nll = tofu.nll_avg(ts.token_logprobs, include_eos=True, has_eos=ts.has_eos)
    prob = tofu.probability(nll)
    ...  # one prob per item, then:
    metrics["forget_prob"] = metric_result("forget_prob", mean_score(probs), n=len(probs))
"""

from __future__ import annotations

from typing import Any

from obliviate.metrics import memorisation, mia, rouge, tofu
from obliviate.metrics.base import MetricDef, MetricResult, mean_score
from obliviate.registry import METRICS

__all__ = [
    "DEFINITIONS",
    "MetricDef",
    "MetricResult",
    "mean_score",
    "memorisation",
    "metric_result",
    "mia",
    "rouge",
    "tofu",
]

_M = "obliviate.metrics"
_TOFU = "Maini+ 2024, arXiv 2401.06121 (TOFU)"
_AUC = "MIA AUC, OU orientation (1 = forget set looks trained on, 0.5 = retain model level)"


def _d(name: str, direction: str, function: str, per_item: str | None, description: str,
       paper: str = _TOFU, ideal: float | None = None) -> MetricDef:
    return MetricDef(name, description, paper, direction,  # type: ignore[arg-type]
                     f"{_M}.{function}", per_item and f"{_M}.{per_item}", ideal=ideal)


def _qa_split(split: str, label: str, forget: bool) -> list[MetricDef]:
    better = "lower" if forget else "higher"
    return [
        _d(f"{split}_prob", better, "base:mean_score", "tofu:probability",
           f"mean per-token-normalised answer probability exp(-NLL_avg), {label}"),
        _d(f"{split}_rouge", better, "base:mean_score", "rouge:rouge_scores",
           f"mean ROUGE-L recall of greedy generations, {label}"),
    ]


def _mcq_split(split: str, label: str) -> list[MetricDef]:
    return [
        _d(f"{split}_prob", "higher", "base:mean_score", "tofu:normalised_probability",
           f"mean normalised probability p_c / (p_c + sum_k p_k), {label}"),
        _d(f"{split}_rouge", "higher", "base:mean_score", "rouge:rouge_scores",
           f"mean ROUGE-L recall of greedy generations, {label}"),
        _d(f"{split}_truth_ratio", "higher", "tofu:truth_ratio_true_better", "tofu:truth_ratio",
           f"mean of max(0, 1 - tr), tr = p(wrong) / p(correct), {label}"),
    ]


DEFINITIONS: tuple[MetricDef, ...] = (
    _d("forget_quality", "higher", "tofu:forget_quality", "tofu:truth_ratio",
       "KS-test p-value of forget truth ratios against the retain model"),
    _d("model_utility", "higher", "tofu:model_utility", None,
       "harmonic mean of retain, real-authors and world-facts prob, ROUGE, truth ratio"),
    *_qa_split("forget", "forget set", forget=True),
    *_qa_split("retain", "retain set", forget=False),
    _d("forget_paraphrased_rouge", "lower", "base:mean_score", "rouge:rouge_scores",
       "mean ROUGE-L recall on paraphrased forget questions"),
    _d("forget_truth_ratio", "higher", "tofu:truth_ratio_forget", "tofu:truth_ratio",
       "mean of min(tr, 1/tr), tr = p(perturbed) / p(paraphrased), forget set"),
    _d("retain_truth_ratio", "higher", "tofu:truth_ratio_true_better", "tofu:truth_ratio",
       "mean of max(0, 1 - tr), tr = p(perturbed) / p(paraphrased), retain set"),
    *_mcq_split("real_authors", "real authors"),
    *_mcq_split("world_facts", "world facts"),
    _d("forget_exact_memorisation", "lower", "base:mean_score",
       "memorisation:exact_memorisation",
       "mean share of answer tokens the argmax predicts (teacher-forced, EOS excluded)",
       "Tirumala+ 2022, arXiv 2205.10770"),
    _d("forget_extraction_strength", "lower", "base:mean_score",
       "memorisation:extraction_strength",
       "mean 1 - k/n, k the shortest prefix after which the argmax reproduces the answer",
       "Carlini+ 2021, arXiv 2012.07805 (as used by OpenUnlearning, 2506.12618)"),
    _d("mia_loss_auc", "lower", "mia:auc", "mia:loss_score", f"{_AUC}; LOSS attack",
       "Yeom+ 2018, arXiv 1709.01604", ideal=0.5),
    _d("mia_zlib_auc", "lower", "mia:auc", "mia:zlib_score", f"{_AUC}; ZLib attack",
       "Carlini+ 2021, arXiv 2012.07805", ideal=0.5),
    _d("mia_min_k_auc", "lower", "mia:auc", "mia:min_k_score", f"{_AUC}; Min-K% Prob, k = 0.4",
       "Shi+ 2023, arXiv 2310.16789", ideal=0.5),
    _d("mia_min_k_plus_plus_auc", "lower", "mia:auc", "mia:min_k_plus_plus_score",
       f"{_AUC}; Min-K%++, k = 0.4", "Zhang+ 2024, arXiv 2404.02936", ideal=0.5),
    _d("privleak", "zero", "mia:privleak", "mia:auc",
       "MUSE PrivLeak (%) of the Min-K% attack against the retain model",
       "Shi+ 2024, arXiv 2407.06460 (MUSE)"),
)


def _register() -> None:
    for d in DEFINITIONS:
        meta: dict[str, Any] = {"direction": d.direction, "version": d.version}
        if d.ideal is not None:
            meta["ideal"] = d.ideal
        METRICS.register(d.name, d, description=d.description, paper=d.paper, **meta)


def metric_result(name: str, value: float, **kwargs: Any) -> MetricResult:
    """The registered metric ``name``'s result for ``value`` (its direction and version)."""
    return METRICS.get(name).result(value, **kwargs)


_register()
