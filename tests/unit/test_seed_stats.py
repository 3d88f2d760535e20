"""Statistics over seeds against hand-computed values: mean, sample sd (n - 1), the percentile
bootstrap interval, missing values and the within-noise rule."""

from __future__ import annotations

import math

import pytest

from obliviate.seed_stats import (
    SeedStats,
    bootstrap_ci,
    format_mean_sd,
    rank_key,
    stats_from_dict,
    summarise,
    summarise_metrics,
    within_noise,
)


def test_four_values_mean_and_sample_sd() -> None:
    s = summarise([1.0, 2.0, 3.0, 4.0])
    assert s.n == 4 and s.missing == 0
    assert s.mean == pytest.approx(2.5)
    # squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, divided by n - 1 = 3
    assert s.sd == pytest.approx(math.sqrt(5 / 3))
    assert s.ci_low is not None and s.ci_high is not None
    assert 1.0 <= s.ci_low < 2.5 < s.ci_high <= 4.0


def test_one_seed_has_no_sd_and_no_interval() -> None:
    s = summarise([0.7])
    assert (s.n, s.mean, s.sd, s.ci_low, s.ci_high) == (1, 0.7, None, None, None)
    assert format_mean_sd(s) == "0.7 (n=1)"


def test_two_seeds_interval_is_their_range() -> None:
    # bootstrap means of {0.2, 0.6}: 0.2 (p 1/4), 0.4 (1/2), 0.6 (1/4); the 2.5% and 97.5%
    # quantiles of 2000 draws are the two extremes
    s = summarise([0.2, 0.6])
    assert s.mean == pytest.approx(0.4)
    assert s.sd == pytest.approx(math.sqrt(0.08))  # (0.2^2 + 0.2^2) / 1
    assert (s.ci_low, s.ci_high) == pytest.approx((0.2, 0.6))
    assert format_mean_sd(s) == "0.4 ± 0.2828"


def test_bootstrap_quantiles_of_a_skewed_sample() -> None:
    # values {0,0,0,0,10}: a resample's mean is 2K, K ~ Binomial(5, 0.2) (the count of 10s).
    # P(K = 0) = 0.328 > 2.5%, P(K <= 2) = 0.942 and P(K <= 3) = 0.993 bracket 97.5%: (0, 6)
    lo, hi = bootstrap_ci([0.0, 0.0, 0.0, 0.0, 10.0])
    assert (lo, hi) == pytest.approx((0.0, 6.0))


def test_bootstrap_is_reproducible_and_configurable() -> None:
    values = [0.1, 0.5, 0.35, 0.9, 0.2]
    assert summarise(values) == summarise(values)
    wide = summarise(values, level=0.99)
    narrow = summarise(values, level=0.5)
    assert wide.ci_low <= narrow.ci_low <= narrow.ci_high <= wide.ci_high  # type: ignore[operator]
    one = bootstrap_ci(values, resamples=1, rng_seed=3)
    assert one[0] == one[1]  # one resample: both quantiles are its mean
    assert summarise(values, rng_seed=1) != summarise(values, rng_seed=2)


def test_identical_seeds_have_zero_sd_and_a_point_interval() -> None:
    s = summarise([0.3, 0.3, 0.3])
    assert s.sd == 0.0
    assert (s.ci_low, s.ci_high) == pytest.approx((0.3, 0.3))


def test_nan_or_missing_seed_is_left_out_and_counted() -> None:
    s = summarise([1.0, float("nan"), 3.0, None])
    assert (s.n, s.missing) == (2, 2)
    assert s.mean == pytest.approx(2.0)
    assert s.sd == pytest.approx(math.sqrt(2.0))
    assert s.values == [1.0, None, 3.0, None]
    none = summarise([None, float("nan")])
    assert (none.n, none.mean, none.sd) == (0, None, None)
    assert format_mean_sd(none) == "—"


def test_metrics_of_several_seeds() -> None:
    stats = summarise_metrics(
        [
            {"forget_quality": 0.5, "model_utility": 0.4},
            {"forget_quality": 0.7},  # utility not computed for this seed
            {"forget_quality": 0.9, "model_utility": 0.6},
        ]
    )
    assert list(stats) == ["forget_quality", "model_utility"]
    assert stats["forget_quality"].mean == pytest.approx(0.7)
    assert stats["forget_quality"].sd == pytest.approx(0.2)
    mu = stats["model_utility"]
    assert (mu.n, mu.missing, mu.values) == (2, 1, [0.4, None, 0.6])
    assert mu.to_dict()["per_seed"] == [0.4, None, 0.6]
    assert mu.to_dict()["sd"] == pytest.approx(math.sqrt(0.02))


def test_empty_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least one seed"):
        summarise([])
    with pytest.raises(ValueError, match="at least one seed"):
        summarise_metrics([])
    with pytest.raises(ValueError, match="at least two"):
        bootstrap_ci([1.0])
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([1.0, 2.0], level=1.0)


def _stats(lo: float | None, hi: float | None) -> SeedStats:
    mean = None if lo is None or hi is None else (lo + hi) / 2
    return SeedStats(2 if lo is not None else 1, mean, 0.1, lo, hi)


def test_within_noise_means_overlapping_intervals() -> None:
    assert within_noise(_stats(0.1, 0.5), _stats(0.4, 0.9)) is True
    assert within_noise(_stats(0.1, 0.5), _stats(0.5, 0.9)) is True  # touching
    assert within_noise(_stats(0.1, 0.3), _stats(0.4, 0.9)) is False
    assert within_noise(_stats(0.4, 0.9), _stats(0.1, 0.3)) is False
    assert within_noise(_stats(None, None), _stats(0.4, 0.9)) is None
    assert within_noise(summarise([0.2, 0.6]), summarise([0.5, 0.55])) is True
    assert within_noise(summarise([0.2, 0.25]), summarise([0.5, 0.55])) is False


def test_rank_key_puts_the_best_first_and_missing_last() -> None:
    values = [0.2, None, -0.5, 0.9]
    assert sorted(values, key=lambda v: rank_key(v, "higher")) == [0.9, 0.2, -0.5, None]
    assert sorted(values, key=lambda v: rank_key(v, "lower")) == [-0.5, 0.2, 0.9, None]
    assert sorted(values, key=lambda v: rank_key(v, "zero")) == [0.2, -0.5, 0.9, None]


def test_stats_round_trip_through_their_stored_form() -> None:
    s = summarise([0.2, 0.6, 0.5])
    assert stats_from_dict(s.to_dict()) == s
    single = stats_from_dict(None, 0.4)
    assert (single.n, single.mean, single.ci_low) == (1, 0.4, None)
    assert within_noise(single, s) is None
