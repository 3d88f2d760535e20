"""Recoverability, item splits and best-of-templates against hand-computed values."""

from __future__ import annotations

import math

import pytest

from obliviate.audits.scores import best_of, recoverability, split_halves


def test_recoverability_hand_values():
    # target 0.9, retain 0.1 -> gap 0.8; unlearned 0.1 -> attacked 0.5 recovers half the gap
    assert recoverability(0.5, 0.1, 0.9, 0.1) == pytest.approx(0.5)
    # back to the target's level from the retain level: 1
    assert recoverability(0.9, 0.1, 0.9, 0.1) == pytest.approx(1.0)
    # nothing recovered
    assert recoverability(0.3, 0.3, 0.9, 0.1) == 0.0
    # the attack lowers the metric further: negative
    assert recoverability(0.05, 0.25, 0.9, 0.1) == pytest.approx(-0.25)
    # over-unlearned start (below retain), attack brings it to the retain level: (0.1-0.0)/0.8
    assert recoverability(0.1, 0.0, 0.9, 0.1) == pytest.approx(0.125)
    # more than the whole gap
    assert recoverability(1.0, 0.1, 0.5, 0.1) == pytest.approx(2.25)


def test_recoverability_undefined_gap_and_bad_values():
    with pytest.raises(ValueError, match="nothing to recover"):
        recoverability(0.5, 0.2, 0.4, 0.4)
    with pytest.raises(ValueError, match="nothing to recover"):
        recoverability(0.5, 0.2, 0.4, 0.4 + 1e-9)
    for bad in (None, float("nan"), math.inf, "0.3"):
        with pytest.raises(ValueError, match="finite number"):
            recoverability(bad, 0.2, 0.9, 0.1)  # type: ignore[arg-type]
    # a negative gap is computed (its sign is flagged by the audit, not here)
    assert recoverability(0.3, 0.2, 0.1, 0.5) == pytest.approx(-0.25)


def test_split_halves_is_seeded_disjoint_and_complete():
    a, b = split_halves(10, seed=0)
    assert len(a) == 5 and len(b) == 5
    assert sorted(a + b) == list(range(10)) and not set(a) & set(b)
    assert a == sorted(a) and b == sorted(b)
    assert split_halves(10, seed=0) == (a, b)  # deterministic
    assert split_halves(10, seed=1) != (a, b)
    # odd n: ceil(n/2) relearn items
    a, b = split_halves(7, seed=3)
    assert (len(a), len(b)) == (4, 3)
    # both sides non-empty even at extreme fractions
    assert [len(x) for x in split_halves(3, 0, 0.01)] == [1, 2]
    assert [len(x) for x in split_halves(3, 0, 0.99)] == [2, 1]


def test_split_halves_errors():
    with pytest.raises(ValueError, match="at least 2"):
        split_halves(1)
    for f in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="relearn_fraction"):
            split_halves(4, fraction=f)


def test_best_of_takes_the_per_item_maximum():
    assert best_of([[0.1, 0.9, 0.3], [0.4, 0.2, 0.3]]) == [0.4, 0.9, 0.3]
    assert best_of([[0.5]]) == [0.5]
    with pytest.raises(ValueError, match="no variants"):
        best_of([])
    with pytest.raises(ValueError, match="same items"):
        best_of([[0.1, 0.2], [0.3]])
