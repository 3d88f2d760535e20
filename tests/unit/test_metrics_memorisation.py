"""Exact memorisation and extraction strength against hand-computed values (docs/metrics.md)."""

from __future__ import annotations

import numpy as np
import pytest

from obliviate.metrics.memorisation import exact_memorisation, extraction_strength

T, F = True, False


def test_em_excludes_eos_by_default():
    correct = [T, F, T, T]  # last = EOS, predicted correctly
    assert exact_memorisation(correct, has_eos=True) == pytest.approx(2 / 3)
    assert exact_memorisation(correct, include_eos=True, has_eos=True) == pytest.approx(3 / 4)
    # no EOS in the array: every position counts
    assert exact_memorisation(correct) == pytest.approx(3 / 4)


def test_em_accepts_0_1_ints_and_rejects_other_values():
    assert exact_memorisation(np.array([1, 0, 0, 1])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="booleans"):
        exact_memorisation([1, 2, 0])
    with pytest.raises(ValueError, match="1-D"):
        exact_memorisation([[T, F]])


def test_em_empty_raises():
    with pytest.raises(ValueError, match="no tokens"):
        exact_memorisation([])
    with pytest.raises(ValueError, match="no tokens"):
        exact_memorisation([T], has_eos=True)  # only the EOS, which is excluded


def test_es_nothing_matches_is_zero_not_one_over_n():
    # the last token is wrong: no suffix matches, k = n (OU's loop would give 1/3)
    assert extraction_strength([F, F, F]) == 0.0
    assert extraction_strength([T, T, F]) == 0.0


def test_es_full_match_is_one():
    assert extraction_strength([T, T, T, T]) == 1.0


def test_es_partial():
    # last miss at index 1 -> k = 2 -> 1 - 2/4
    assert extraction_strength([T, F, T, T]) == pytest.approx(0.5)
    # k = 1 -> 1 - 1/4
    assert extraction_strength([F, T, T, T]) == pytest.approx(0.75)


def test_es_eos_handling():
    correct = [T, F, T, T, F]  # last = EOS, mispredicted
    assert extraction_strength(correct, has_eos=True) == pytest.approx(0.5)  # EOS dropped
    assert extraction_strength(correct, include_eos=True, has_eos=True) == 0.0


def test_es_empty_is_zero():
    assert extraction_strength([]) == 0.0
    assert extraction_strength([T], has_eos=True) == 0.0


def _es_by_definition(preds, labels):
    """Literal reading of docs/metrics.md: smallest k with preds[k:] == labels[k:]."""
    n = len(labels)
    for k in range(n + 1):
        if list(preds[k:]) == list(labels[k:]):
            return 1 - k / n if n else 0.0
    raise AssertionError("unreachable: k = n always matches")


def test_es_agrees_with_the_suffix_definition():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 9))
        labels = rng.integers(0, 3, n)
        preds = np.where(rng.random(n) < 0.7, labels, (labels + 1) % 3)
        expected = _es_by_definition(preds, labels)
        assert extraction_strength(preds == labels) == pytest.approx(expected)
