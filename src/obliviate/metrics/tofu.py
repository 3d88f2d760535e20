"""TOFU metrics: probability, normalised probability, truth ratio, forget quality, model utility.

Maini, Feng, Schwarzschild, Lipton, Kolter, *TOFU: A Task of Fictitious Unlearning for LLMs*,
arXiv 2401.06121, evaluation-metrics section (Probability, ROUGE, Truth Ratio R_truth, Forget
Quality, Model Utility). The exact conventions implemented are those of docs/metrics.md and
of the OU implementation (``locuslab/open-unlearning, src/evals/metrics/memorization.py``).

Inputs are per-item numbers produced by the scoring layer (a teacher-forced pass): per-token
log-probabilities over the answer tokens, EOS last when ``has_eos``. Everything is numpy; scipy
is imported only by :func:`forget_quality` and :func:`model_utility`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np

from obliviate.metrics.base import (
    answer_tokens,
    as_1d,
    check_logprobs,
    check_nll,
    check_nonempty,
)

# docs/metrics.md: normalised probability uses p_c / (p_c + sum_k p_k + 1e-10)
NORMALISED_PROB_EPS = 1e-10


def nll_avg(token_logprobs: Any, include_eos: bool = True, has_eos: bool = False) -> float:
    """Per-token-averaged negative log-likelihood of one answer.

    NLL_avg = -(1/n) sum_t log p(y_t | x, y_<t)  over the n scored answer tokens (docs/metrics.md
    notation table; TOFU 2401.06121 normalises the answer probability by length: P(a|q)^(1/|a|)).

    ``token_logprobs`` are the answer tokens' log-probabilities, EOS last when ``has_eos``. The
    EOS is scored by default (``include_eos=True``), as in OU for Prob, truth ratio, LOSS, ZLib
    and Reference MIA (docs/metrics.md). Raises ValueError on an empty answer: there is no
    likelihood of zero tokens (the scoring layer must report such items, docs/metrics.md).
    """
    arr = check_logprobs(as_1d(token_logprobs, "token_logprobs"), "token_logprobs")
    arr = answer_tokens(arr, "token_logprobs", include_eos=include_eos, has_eos=has_eos)
    check_nonempty(arr, "token_logprobs", "NLL_avg is undefined for an answer with no tokens")
    return float(-arr.mean())


def probability(nll_avg: float) -> float:
    """TOFU "Probability": P(a|q)^(1/|a|) = exp(-NLL_avg) (2401.06121; docs/metrics.md).

    Per item; the reported metric (``forget_prob``, ``retain_prob``) is the mean over items.
    """
    return math.exp(-check_nll(nll_avg, "nll_avg"))


def normalised_probability(p_correct: float, p_wrongs: Sequence[float]) -> float:
    """Real-authors / world-facts probability: p_c / (p_c + sum_k p_k + 1e-10).

    All terms are length-normalised probabilities exp(-NLL_avg) of the correct answer and of
    the K wrong options (K = 3 in TOFU) (2401.06121; docs/metrics.md). Raises if there is no
    wrong option (the ratio would be a constant ~1) or a value is not a probability.
    """
    pc = _check_prob(p_correct, "p_correct")
    pw = as_1d(p_wrongs, "p_wrongs", allow_inf=False)
    check_nonempty(pw, "p_wrongs", "give the probabilities of the wrong options")
    for i, p in enumerate(pw):
        _check_prob(p, f"p_wrongs[{i}]")
    return pc / (pc + float(pw.sum()) + NORMALISED_PROB_EPS)


def truth_ratio(
    nll_avg_paraphrased: float, nll_avgs_perturbed: Sequence[float], eps: float = 0.0
) -> float:
    """Per-item truth ratio tr = p_w / p_c (docs/metrics.md; TOFU 2401.06121, R_truth).

    p_c = exp(-NLL_avg(paraphrased answer)); p_w = exp(-(1/K) sum_k NLL_avg(perturbed_k)), the
    geometric mean of the K perturbed answers' length-normalised probabilities. So
    tr = exp(NLL_avg(paraphrased) - mean_k NLL_avg(perturbed_k)), computed in log space: exact even
    when both probabilities underflow (a collapsed model). tr = +inf when p_c = 0 and p_w > 0.

    ``eps`` > 0 reproduces OU's ``p_w / (p_c + eps)`` (OU uses 1e-10); it differs from the exact
    ratio only when p_c is below ~1e-8.
    """
    c = check_nll(nll_avg_paraphrased, "nll_avg_paraphrased")
    wrong = as_1d(nll_avgs_perturbed, "nll_avgs_perturbed")
    check_nonempty(wrong, "nll_avgs_perturbed", "give the NLL_avg of each perturbed answer")
    for i, v in enumerate(wrong):
        check_nll(v, f"nll_avgs_perturbed[{i}]")
    w = float(np.maximum(wrong, 0.0).mean())
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if eps > 0:
        return math.exp(-w) / (math.exp(-c) + eps)
    if math.isinf(c) and math.isinf(w):
        raise ValueError(
            "truth ratio undefined: the paraphrased and all perturbed answers have probability 0"
        )
    if math.isinf(c):
        return math.inf
    if math.isinf(w):
        return 0.0
    with np.errstate(over="ignore"):
        return float(np.exp(c - w))  # overflow -> inf, which is the right limit


def _truth_ratios(trs: Sequence[float]) -> np.ndarray:
    arr = as_1d(trs, "truth_ratios")
    check_nonempty(arr, "truth_ratios", "aggregating needs at least one item")
    neg = np.flatnonzero(arr < 0)
    if neg.size:
        raise ValueError(f"truth_ratios: a ratio must be >= 0, got {arr[neg[0]]} at {neg[0]}")
    return arr


def truth_ratio_forget(trs: Sequence[float]) -> float:
    """Forget aggregation ("closer to 1 is better"): mean over items of min(tr, 1/tr).

    docs/metrics.md; OU's ``closer_to_1_better``. Computed as exp(-|log tr|), so tr = 0 and
    tr = inf both give 0 (OU's 1/(tr + 1e-10) agrees up to that epsilon).
    """
    arr = _truth_ratios(trs)
    with np.errstate(divide="ignore"):
        return float(np.exp(-np.abs(np.log(arr))).mean())


def truth_ratio_true_better(trs: Sequence[float]) -> float:
    """Retain / real-authors / world-facts aggregation: mean over items of max(0, 1 - tr).

    docs/metrics.md; OU's ``true_better``: 1 when the true answer is far more likely than the
    perturbed ones, 0 when it is not more likely.
    """
    arr = _truth_ratios(trs)
    return float(np.maximum(0.0, 1.0 - arr).mean())


def truth_ratio_prob_mean(trs: Sequence[float]) -> float:
    """OU's ``prob_mean`` aggregation (OpenUnlearning, arXiv 2506.12618): mean of p_c/(p_c + p_w).

    With tr = p_w / p_c this is mean(1 / (1 + tr)); tr = inf gives 0.
    """
    arr = _truth_ratios(trs)
    return float((1.0 / (1.0 + arr)).mean())


def forget_quality(trs_model: Sequence[float | None], trs_retain: Sequence[float | None]) -> float:
    """Forget quality: p-value of the two-sample KS test (``scipy.stats.ks_2samp``, two-sided).

    Compares the per-item forget truth ratios of the evaluated model with those of the retain
    (oracle) model on the same split (TOFU 2401.06121, Forget Quality; docs/metrics.md). High
    means indistinguishable from the oracle. KS is invariant to monotone maps, so tr or 1/tr give
    the same p-value.

    Fails loudly (docs/metrics.md) on an empty side, on a missing (None) or NaN value, and
    when the two sides have different lengths: both must come from the same split, metric version
    and template, and FQ depends strongly on n (docs/metrics.md, Pitfalls).
    """
    from scipy.stats import ks_2samp

    a = _tr_side(trs_model, "trs_model", "the evaluated model")
    b = _tr_side(trs_retain, "trs_retain", "the retain (oracle) model")
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"forget quality: {a.shape[0]} truth ratios for the model but {b.shape[0]} for the "
            "retain model; both must be computed on the same split (same items)"
        )
    return float(ks_2samp(a, b).pvalue)


def _tr_side(values: Sequence[float | None], name: str, whose: str) -> np.ndarray:
    if values is None:
        raise ValueError(f"forget quality: no truth ratios for {whose} ({name} is None)")
    vals = list(values)
    if not vals:
        raise ValueError(f"forget quality: no truth ratios for {whose} ({name} is empty)")
    missing = [i for i, v in enumerate(vals) if v is None]
    if missing:
        raise ValueError(
            f"forget quality: {len(missing)} missing truth ratio(s) for {whose} ({name}, first at "
            f"index {missing[0]}); re-evaluate that model on this split"
        )
    return _truth_ratios(cast("list[float]", vals))  # no None left


def model_utility(values: Mapping[str, float | None]) -> float:
    """Model utility: harmonic mean (``scipy.stats.hmean``) of its components.

    TOFU (2401.06121, Model Utility; docs/metrics.md) uses 9 components: {Prob, ROUGE-L
    recall, truth ratio (true-better)} on retain, and {normalised Prob, ROUGE-L recall, truth
    ratio} on real authors and on world facts. Any component equal to 0 makes MU = 0. Components
    must be finite and >= 0; a missing (None) one raises, naming it.
    """
    if not values:
        raise ValueError("model utility: no components given")
    comps: list[float] = []
    for key, v in values.items():
        if v is None:
            raise ValueError(f"model utility: component {key!r} is missing (None)")
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"model utility: component {key!r} is not a number: {v!r}") from None
        if not math.isfinite(x) or x < 0:
            raise ValueError(f"model utility: component {key!r} must be finite and >= 0, got {x}")
        comps.append(x)
    if min(comps) == 0.0:
        return 0.0
    from scipy.stats import hmean

    return float(hmean(comps))


def _check_prob(p: Any, name: str) -> float:
    try:
        x = float(p)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a probability, got {p!r}") from None
    if not 0.0 <= x <= 1.0:  # also rejects NaN
        raise ValueError(f"{name}: a probability must be in [0, 1], got {x}")
    return x
