"""Fluency metrics against hand-computed values (metrics/fluency.py)."""

from __future__ import annotations

import math

import pytest

from obliviate.metrics.fluency import (
    fluency_summary,
    perplexity,
    repetition_rate,
    text_perplexity,
    unique_token_ratio,
    words,
)

ln = math.log


def test_words_lowercase_and_drop_punctuation():
    assert words("The cat, the CAT!") == ["the", "cat", "the", "cat"]
    assert words("") == [] and words("  ...  ") == []
    with pytest.raises(ValueError, match="str"):
        words(None)  # type: ignore[arg-type]


def test_perplexity_pools_tokens_over_texts():
    # text 1: p = 1/2, 1/4 ; text 2: p = 1/8 -> mean NLL = (ln2 + ln4 + ln8) / 3 = 2 ln 2 -> PPL 4
    assert perplexity([[ln(1 / 2), ln(1 / 4)], [ln(1 / 8)]]) == pytest.approx(4.0)
    # pooled, not the mean of per-text perplexities (which would be (sqrt(8) + 8) / 2)
    assert perplexity([[ln(1 / 2), ln(1 / 4)], [ln(1 / 8)]]) != pytest.approx(
        (math.sqrt(8) + 8) / 2
    )
    # an empty text adds nothing
    assert perplexity([[ln(0.5)], []]) == pytest.approx(2.0)
    assert perplexity([[0.0, 0.0]]) == pytest.approx(1.0)  # certain tokens


def test_perplexity_errors():
    with pytest.raises(ValueError, match="no tokens"):
        perplexity([])
    with pytest.raises(ValueError, match="no tokens"):
        perplexity([[], []])
    with pytest.raises(ValueError, match="<= 0"):
        perplexity([[0.5]])  # an NLL passed instead of a log-probability
    with pytest.raises(ValueError, match="NaN"):
        perplexity([[float("nan")]])


def test_text_perplexity():
    assert text_perplexity([ln(1 / 2), ln(1 / 8)]) == pytest.approx(4.0)
    assert text_perplexity([]) is None


def test_repetition_rate_hand_values():
    # "a b a b a b", n = 2: bigrams ab ba ab ba ab -> 5, distinct 2 -> 1 - 2/5 = 0.6
    assert repetition_rate(["a", "b", "a", "b", "a", "b"], n=2) == pytest.approx(0.6)
    # no repeat
    assert repetition_rate(["a", "b", "c", "d"], n=2) == 0.0
    # n = 1 on "x x x x": 4 unigrams, 1 distinct -> 0.75
    assert repetition_rate(["x"] * 4, n=1) == pytest.approx(0.75)
    # 4-grams of 6 identical words: 3 grams, 1 distinct -> 2/3
    assert repetition_rate(["the"] * 6) == pytest.approx(2 / 3)
    # exactly n words: one n-gram, nothing repeated
    assert repetition_rate(["a", "b", "c", "d"], n=4) == 0.0


def test_repetition_rate_undefined_and_bad_n():
    assert repetition_rate(["a", "b", "c"], n=4) is None
    assert repetition_rate([], n=1) is None
    for n in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="n-gram"):
            repetition_rate(["a"], n=n)  # type: ignore[arg-type]


def test_unique_token_ratio():
    assert unique_token_ratio(["a", "b", "a", "c"]) == pytest.approx(0.75)
    assert unique_token_ratio(["a"]) == 1.0
    assert unique_token_ratio([]) is None


def test_fluency_summary_averages_defined_values_and_counts_the_rest():
    texts = ["a b a b a b", "one two", "", "Cat cat CAT cat"]
    s = fluency_summary(texts, n=2)
    # repetition: text 1 0.6; text 2 one bigram -> 0; text 3 undefined; text 4 "cat"x4 -> 3 bigrams 1 distinct -> 2/3
    assert s["repetition_rate"] == pytest.approx((0.6 + 0.0 + 2 / 3) / 3)
    # unique ratio: 2/6, 2/2, undefined, 1/4
    assert s["unique_token_ratio"] == pytest.approx((1 / 3 + 1.0 + 0.25) / 3)
    assert (s["n_texts"], s["n_empty"], s["n_short"], s["ngram"]) == (4, 1, 1, 2)
    empty = fluency_summary(["", "..."])
    assert empty["repetition_rate"] is None and empty["unique_token_ratio"] is None
    assert empty["n_empty"] == 2
    with pytest.raises(ValueError, match="list"):
        fluency_summary("a single string")
