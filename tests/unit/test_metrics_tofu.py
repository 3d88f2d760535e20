"""TOFU metrics against hand-computed values (docs/metrics.md)."""

from __future__ import annotations

import math

import pytest

from obliviate.metrics import tofu

LN2 = math.log(2.0)


# --- nll_avg and EOS handling -----------------------------------------------------------------

LP_WITH_EOS = [math.log(0.5), math.log(0.25), math.log(0.5)]  # last = EOS


def test_nll_avg_includes_eos_by_default():
    # (ln2 + 2 ln2 + ln2) / 3
    assert tofu.nll_avg(LP_WITH_EOS, has_eos=True) == pytest.approx(4 * LN2 / 3)


def test_nll_avg_excludes_eos_when_asked():
    # (ln2 + 2 ln2) / 2
    got = tofu.nll_avg(LP_WITH_EOS, include_eos=False, has_eos=True)
    assert got == pytest.approx(1.5 * LN2)


def test_nll_avg_without_eos_scores_every_token():
    # has_eos=False: the last token is a normal answer token, never dropped
    assert tofu.nll_avg(LP_WITH_EOS, include_eos=False) == pytest.approx(4 * LN2 / 3)


@pytest.mark.parametrize(
    "lp,kw", [([], {}), ([math.log(0.5)], {"include_eos": False, "has_eos": True})]
)
def test_nll_avg_empty_answer_raises(lp, kw):
    with pytest.raises(ValueError, match="no tokens"):
        tofu.nll_avg(lp, **kw)


def test_nll_avg_rejects_nll_passed_as_logprob_and_nan():
    with pytest.raises(ValueError, match="NLL instead"):
        tofu.nll_avg([0.7, 1.2])
    with pytest.raises(ValueError, match="index 1"):
        tofu.nll_avg([-0.1, float("nan")])
    with pytest.raises(ValueError, match="1-D"):
        tofu.nll_avg([[-0.1, -0.2]])


# --- probability ----------------------------------------------------------------------------


def test_probability_is_exp_minus_nll():
    assert tofu.probability(LN2) == pytest.approx(0.5)
    assert tofu.probability(0.0) == 1.0
    assert tofu.probability(math.inf) == 0.0


def test_probability_rejects_negative_nll_and_none():
    with pytest.raises(ValueError, match="log-probability"):
        tofu.probability(-0.5)
    with pytest.raises(ValueError, match="None"):
        tofu.probability(None)  # type: ignore[arg-type]


def test_normalised_probability():
    # 0.5 / (0.5 + 0.1 + 0.2 + 0.2 + 1e-10)
    assert tofu.normalised_probability(0.5, [0.1, 0.2, 0.2]) == pytest.approx(0.5 / (1.0 + 1e-10))
    # a correct answer the model finds impossible scores 0
    assert tofu.normalised_probability(0.0, [0.1, 0.2, 0.2]) == 0.0


def test_normalised_probability_bad_input():
    with pytest.raises(ValueError, match="wrong options"):
        tofu.normalised_probability(0.5, [])
    with pytest.raises(ValueError, match=r"p_wrongs\[1\]"):
        tofu.normalised_probability(0.5, [0.1, 1.5])
    with pytest.raises(ValueError, match="p_correct"):
        tofu.normalised_probability(-0.1, [0.1])


# --- truth ratio ----------------------------------------------------------------------------

PERTURBED5 = [1.0, 2.0, 3.0, 0.5, 1.5]  # NLL_avg of 5 perturbed answers, mean 1.6


def test_truth_ratio_five_perturbed_geometric_mean():
    # p_c = e^-1, p_w = (e^-1 e^-2 e^-3 e^-0.5 e^-1.5)^(1/5) = e^-1.6, tr = e^-0.6
    tr = tofu.truth_ratio(1.0, PERTURBED5)
    assert tr == pytest.approx(math.exp(-0.6))
    assert tr == pytest.approx(0.5488116361)
    # not the arithmetic mean of the perturbed probabilities (0.7517)
    arithmetic = sum(math.exp(-x) for x in PERTURBED5) / 5 / math.exp(-1.0)
    assert abs(tr - arithmetic) > 0.1


def test_truth_ratio_exact_when_probabilities_underflow_and_ou_eps():
    # both answers at NLL_avg 30 (p ~ 9.4e-14): equally likely, tr = 1
    assert tofu.truth_ratio(30.0, [30.0] * 5) == pytest.approx(1.0)
    # OU's p_w / (p_c + 1e-10): e^-30 / (e^-30 + 1e-10) ~ 9.35e-4
    p = math.exp(-30.0)
    assert tofu.truth_ratio(30.0, [30.0] * 5, eps=1e-10) == pytest.approx(p / (p + 1e-10))


def test_truth_ratio_infinite_cases():
    assert tofu.truth_ratio(math.inf, [1.0, 2.0]) == math.inf  # p_c = 0
    assert tofu.truth_ratio(1.0, [math.inf, 2.0]) == 0.0  # p_w = 0
    assert tofu.truth_ratio(800.0, [0.0]) == math.inf  # e^800 overflows to its limit
    with pytest.raises(ValueError, match="probability 0"):
        tofu.truth_ratio(math.inf, [math.inf])


def test_truth_ratio_bad_input():
    with pytest.raises(ValueError, match="perturbed"):
        tofu.truth_ratio(1.0, [])
    with pytest.raises(ValueError, match=r"nll_avgs_perturbed\[2\]"):
        tofu.truth_ratio(1.0, [1.0, 2.0, -3.0])
    with pytest.raises(ValueError, match="eps"):
        tofu.truth_ratio(1.0, [1.0], eps=-1.0)


TRS = [0.5, 2.0, 1.0, 0.25]


def test_truth_ratio_forget_aggregation():
    # min(tr, 1/tr) = [0.5, 0.5, 1, 0.25] -> 2.25 / 4
    assert tofu.truth_ratio_forget(TRS) == pytest.approx(0.5625)
    assert tofu.truth_ratio_forget([0.0, math.inf]) == 0.0


def test_truth_ratio_true_better_aggregation():
    # max(0, 1 - tr) = [0.5, 0, 0, 0.75] -> 1.25 / 4
    assert tofu.truth_ratio_true_better(TRS) == pytest.approx(0.3125)
    assert tofu.truth_ratio_true_better([0.0, math.inf]) == pytest.approx(0.5)


def test_truth_ratio_prob_mean_aggregation():
    # 1 / (1 + tr) = [2/3, 1/3, 1/2, 4/5] -> 2.3 / 4
    assert tofu.truth_ratio_prob_mean(TRS) == pytest.approx(0.575)
    assert tofu.truth_ratio_prob_mean([0.0, math.inf]) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "agg", [tofu.truth_ratio_forget, tofu.truth_ratio_true_better, tofu.truth_ratio_prob_mean]
)
def test_truth_ratio_aggregations_bad_input(agg):
    with pytest.raises(ValueError, match="empty"):
        agg([])
    with pytest.raises(ValueError, match=">= 0"):
        agg([0.5, -1.0])
    with pytest.raises(ValueError, match="index 1"):
        agg([0.5, None])


# --- forget quality -------------------------------------------------------------------------


def test_forget_quality_identical_samples_is_one():
    trs = [0.3, 0.5, 0.9, 1.2, 0.7]
    assert tofu.forget_quality(trs, list(trs)) == pytest.approx(1.0)


def test_forget_quality_disjoint_small_exact_value():
    # exact two-sided KS with D = 1 and n = m = 5: P = 2 / C(10, 5) = 2 / 252
    model = [0.1, 0.2, 0.3, 0.4, 0.5]
    retain = [1.1, 1.2, 1.3, 1.4, 1.5]
    assert tofu.forget_quality(model, retain) == pytest.approx(2 / 252)


def test_forget_quality_disjoint_forget10_size_is_tiny():
    model = [0.01 * i for i in range(40)]
    retain = [1.0 + 0.01 * i for i in range(40)]
    fq = tofu.forget_quality(model, retain)
    assert 0 < fq < 1e-20  # 2 / C(80, 40) ~ 1.9e-23


def test_forget_quality_invariant_to_inverting_tr():
    model = [0.2, 0.4, 0.5, 0.9, 1.3, 2.0]
    retain = [0.3, 0.6, 0.8, 1.0, 1.1, 3.0]
    a = tofu.forget_quality(model, retain)
    b = tofu.forget_quality([1 / x for x in model], [1 / x for x in retain])
    assert a == pytest.approx(b)
    assert a < 1.0  # not a trivial case


def test_forget_quality_fails_loudly():
    with pytest.raises(ValueError, match=r"retain .*empty"):
        tofu.forget_quality([0.5], [])
    with pytest.raises(ValueError, match=r"retain .*None"):
        tofu.forget_quality([0.5], None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"missing truth ratio.*index 1"):
        tofu.forget_quality([0.5, 0.6], [0.5, None])
    with pytest.raises(ValueError, match="same split"):
        tofu.forget_quality([0.5, 0.6], [0.5, 0.6, 0.7])
    with pytest.raises(ValueError, match=r"evaluated model .*empty"):
        tofu.forget_quality([], [0.5])


# --- model utility --------------------------------------------------------------------------


def test_model_utility_harmonic_mean():
    # 3 / (1/0.5 + 1/0.25 + 1/1) = 3 / 7
    assert tofu.model_utility({"a": 0.5, "b": 0.25, "c": 1.0}) == pytest.approx(3 / 7)


def test_model_utility_zero_component_gives_zero():
    assert tofu.model_utility({"retain_prob": 0.9, "retain_rouge": 0.0, "x": 0.5}) == 0.0


def test_model_utility_bad_input_names_the_component():
    with pytest.raises(ValueError, match="no components"):
        tofu.model_utility({})
    with pytest.raises(ValueError, match=r"'world_facts_rouge'.*missing"):
        tofu.model_utility({"retain_prob": 0.5, "world_facts_rouge": None})
    with pytest.raises(ValueError, match="'b'"):
        tofu.model_utility({"a": 0.5, "b": -0.1})
    with pytest.raises(ValueError, match="'b'"):
        tofu.model_utility({"a": 0.5, "b": float("nan")})
