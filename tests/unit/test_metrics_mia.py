"""MIA scores, AUC orientation and PrivLeak against hand-computed values (docs/metrics.md)."""

from __future__ import annotations

import math
import zlib

import pytest

from obliviate.metrics import mia
from obliviate.metrics.tofu import nll_avg

ln = math.log


# --- simple scores --------------------------------------------------------------------------


def test_loss_reference_and_gradnorm_scores():
    assert mia.loss_score(0.7) == 0.7
    assert mia.reference_score(1.5, 2.0) == pytest.approx(-0.5)
    assert mia.gradnorm_score([1.0, 2.0, 3.0]) == pytest.approx(2.0)  # mean, not global norm
    with pytest.raises(ValueError, match="log-probability"):
        mia.loss_score(-0.7)
    with pytest.raises(ValueError, match="nll_ref"):
        mia.reference_score(1.0, -2.0)
    with pytest.raises(ValueError, match="empty"):
        mia.gradnorm_score([])
    with pytest.raises(ValueError, match=">= 0"):
        mia.gradnorm_score([1.0, -1.0])


def test_zlib_score_divides_per_token_nll_by_compressed_bytes():
    # zlib of b"": 2-byte header + 2-byte empty final fixed block + 4-byte Adler-32 = 8 bytes
    assert mia.zlib_score(1.6, "") == pytest.approx(0.2)
    # a repetitive text compresses better, so the same NLL gives a higher (less member-like) score
    repetitive, varied = "ab" * 40, "The quick brown fox jumps over the lazy dog, then 17 cats!!"
    assert len(zlib.compress(repetitive.encode())) < len(zlib.compress(varied.encode()))
    assert mia.zlib_score(1.0, repetitive) > mia.zlib_score(1.0, varied)
    with pytest.raises(ValueError, match="str"):
        mia.zlib_score(1.0, b"abc")  # type: ignore[arg-type]


# --- Min-K% ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n,k,count",
    [(5, 0.4, 2), (4, 0.4, 1), (2, 0.4, 1), (1, 0.2, 1), (10, 1.0, 10), (100, 0.29, 29)],
)
def test_min_k_count_rounds_down_with_at_least_one(n, k, count):
    assert mia.min_k_count(n, k) == count


def test_min_k_count_bad_k():
    for k in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="k must be"):
            mia.min_k_count(5, k)


PROBS5 = [0.5, 0.1, 0.2, 0.4, 0.3]


def test_min_k_selects_floor_of_k_n_lowest():
    lp = [ln(p) for p in PROBS5]
    # n = 5, k = 0.4 -> 2 lowest: 0.1, 0.2
    assert mia.min_k_score(lp) == pytest.approx(-(ln(0.1) + ln(0.2)) / 2)
    # n = 4, k = 0.4 -> 1.6 -> 1 token (floor; ceil would average 0.1 and 0.2)
    assert mia.min_k_score(lp[:4]) == pytest.approx(-ln(0.1))
    # n = 2, k = 0.4 -> 0.8 -> still 1 token
    assert mia.min_k_score([ln(0.5), ln(0.4)]) == pytest.approx(-ln(0.4))
    # k = 0.2: OU's class default, must be asked for explicitly
    assert mia.min_k_score(lp, k=0.2) == pytest.approx(-ln(0.1))


def test_min_k_eos_excluded_by_default():
    lp = [ln(0.5), ln(0.4), ln(0.01)]  # last = EOS, the least likely token
    assert mia.min_k_score(lp, has_eos=True) == pytest.approx(-ln(0.4))
    assert mia.min_k_score(lp, include_eos=True, has_eos=True) == pytest.approx(-ln(0.01))


def test_min_k_empty_and_bad_input():
    with pytest.raises(ValueError, match="no tokens"):
        mia.min_k_score([])
    with pytest.raises(ValueError, match="no tokens"):
        mia.min_k_score([ln(0.5)], has_eos=True)
    with pytest.raises(ValueError, match="NLL instead"):
        mia.min_k_score([0.3, 0.2])


# --- Min-K%++ -------------------------------------------------------------------------------


def _stats(p):
    mu = sum(q * ln(q) for q in p)
    return mu, sum(q * ln(q) ** 2 for q in p) - mu**2


def test_min_k_plus_plus_hand_example():
    # next-token distribution (0.5, 0.25, 0.25): mu = -1.5 ln2, sigma = 0.5 ln2
    mu, s2 = _stats([0.5, 0.25, 0.25])
    assert mu == pytest.approx(-1.5 * ln(2))
    assert math.sqrt(s2) == pytest.approx(0.5 * ln(2))
    # tokens with p = 0.5 -> z = +1 and p = 0.25 -> z = -1
    lp, mus, s2s = [ln(0.5), ln(0.25)], [mu, mu], [s2, s2]
    assert mia.min_k_plus_plus_score(lp, mus, s2s, k=0.5) == pytest.approx(1.0)  # -(-1)
    assert mia.min_k_plus_plus_score(lp, mus, s2s, k=1.0) == pytest.approx(0.0, abs=1e-12)


def test_min_k_plus_plus_clamps_variance_and_drops_eos_from_all_arrays():
    lp = [ln(0.5), ln(0.25), ln(0.125)]
    mu = [-1.0, -1.0, -0.5]
    s2 = [0.25, 1.0, 0.0]  # the last variance is clamped to 1e-6
    z = [(ln(0.5) + 1.0) / 0.5, (ln(0.25) + 1.0) / 1.0, (ln(0.125) + 0.5) / 1e-3]
    assert mia.min_k_plus_plus_score(lp, mu, s2, k=1.0) == pytest.approx(-sum(z) / 3)
    # n = 3, k = 0.4 -> 1 token, the clamped one
    assert mia.min_k_plus_plus_score(lp, mu, s2) == pytest.approx(-z[2])
    # with the last position an excluded EOS only z0, z1 remain; k = 1 averages both
    assert mia.min_k_plus_plus_score(lp, mu, s2, k=1.0, has_eos=True) == pytest.approx(
        -(z[0] + z[1]) / 2
    )


def test_min_k_plus_plus_bad_input():
    with pytest.raises(ValueError, match="same length"):
        mia.min_k_plus_plus_score([ln(0.5)], [-1.0, -1.0], [0.1, 0.1])
    with pytest.raises(ValueError, match="no tokens"):
        mia.min_k_plus_plus_score([], [], [])
    with pytest.raises(ValueError, match="mu"):
        mia.min_k_plus_plus_score([ln(0.5)], [float("nan")], [0.1])


# --- AUC and PrivLeak -----------------------------------------------------------------------


def test_auc_orientation_member_like_forget_gives_one():
    forget = [0.1, 0.2, 0.3]  # low loss: looks trained on
    holdout = [1.0, 1.5, 2.0]
    assert mia.auc(forget, holdout) == 1.0
    assert mia.auc(holdout, forget) == 0.0  # over-unlearned: forget less member-like than unseen


def test_auc_counts_pairs_and_ties_half():
    # pairs with s_holdout > s_forget: 0.2 > 0.1; 0.5 > 0.1, 0.4, 0.35; 0.9 > all 4 -> 8 / 12
    assert mia.auc([0.1, 0.4, 0.35, 0.8], [0.2, 0.5, 0.9]) == pytest.approx(8 / 12)
    # identical sets: 3 wins + 3 ties * 0.5 out of 9
    assert mia.auc([1, 2, 3], [1, 2, 3]) == pytest.approx(0.5)
    # (1,1) tie, (1,1) tie, 2 > 1, 2 > 1 -> 3 / 4
    assert mia.auc([1, 1], [1, 2]) == pytest.approx(0.75)
    assert mia.auc([math.inf], [1.0]) == 0.0


def test_auc_matches_sklearn_roc_auc():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    forget = [0.3, 0.1, 0.7, 0.7, 0.2, 0.9]
    holdout = [0.7, 0.4, 0.8, 0.1, 0.65]
    expected = sklearn_metrics.roc_auc_score([0] * 6 + [1] * 5, forget + holdout)
    assert mia.auc(forget, holdout) == pytest.approx(expected)


def test_auc_bad_input():
    with pytest.raises(ValueError, match=r"scores_forget.*empty"):
        mia.auc([], [1.0])
    with pytest.raises(ValueError, match=r"scores_holdout.*empty"):
        mia.auc([1.0], [])
    with pytest.raises(ValueError, match="index 0"):
        mia.auc([float("nan")], [1.0])


def test_privleak_memorising_target_oracle_and_over_unlearned():
    assert mia.privleak(1.0, 0.5) == pytest.approx(-100.0)  # s = 0, r = 0.5
    assert mia.privleak(0.5, 0.5) == 0.0
    assert mia.privleak(0.53, 0.53) == 0.0  # the oracle against itself
    assert mia.privleak(0.0, 0.5) == pytest.approx(100.0)  # s = 1
    # MUSE News: retrain AUC_MUSE 0.4772, target -99.8% -> AUC_MUSE(target) = 0.4772 * 0.002
    assert mia.privleak(1 - 0.4772 * 0.002, 1 - 0.4772) == pytest.approx(-99.8)


def test_privleak_fails_loudly():
    with pytest.raises(ValueError, match=r"auc_retain.*None"):
        mia.privleak(0.9, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="divides by 0"):
        mia.privleak(0.9, 1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mia.privleak(1.2, 0.5)


def test_end_to_end_memorising_target_vs_oracle():
    """Per-token log-probs -> LOSS scores -> AUC -> PrivLeak, for a target and an oracle."""

    def losses(token_probs):
        return [mia.loss_score(nll_avg([ln(p) for p in ps])) for ps in token_probs]

    holdout = losses([[0.2, 0.3], [0.25, 0.1, 0.4], [0.3, 0.3]])
    target_forget = losses([[0.9, 0.95], [0.99, 0.9, 0.8], [0.85, 0.9]])  # memorised
    oracle_forget = losses([[0.3, 0.3], [0.2, 0.3], [0.25, 0.1, 0.4]])  # same as holdout
    auc_target = mia.auc(target_forget, holdout)
    auc_oracle = mia.auc(oracle_forget, holdout)
    assert auc_target == 1.0
    assert auc_oracle == pytest.approx(0.5)
    assert mia.privleak(auc_target, auc_oracle) == pytest.approx(-100.0)
    assert mia.privleak(auc_oracle, auc_oracle) == 0.0
