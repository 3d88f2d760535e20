"""ROUGE via rouge_score against hand-computed LCS / unigram values (docs/metrics.md)."""

from __future__ import annotations

import pytest

from obliviate.metrics.rouge import ROUGE_KEYS, rouge_scores


def test_rouge_l_with_stemming():
    # reference tokens (stemmed): the cat are run; generation: a cat run -> LCS = 2
    (s,) = rouge_scores(["a cat runs"], ["the cats are running"])
    assert set(s) == set(ROUGE_KEYS)
    assert s["rouge_l_recall"] == pytest.approx(2 / 4)
    assert s["rouge_l_precision"] == pytest.approx(2 / 3)
    assert s["rouge_l_f1"] == pytest.approx(2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3))
    assert s["rouge1_recall"] == pytest.approx(2 / 4)


def test_rouge_without_stemming_for_muse():
    # cats/cat and running/runs no longer match; nothing in common
    (s,) = rouge_scores(["a cat runs"], ["the cats are running"], use_stemmer=False)
    assert s["rouge_l_recall"] == 0.0
    assert s["rouge1_recall"] == 0.0


def test_rouge1_counts_order_free_overlap_rouge_l_does_not():
    (s,) = rouge_scores(["delta gamma beta alpha"], ["alpha beta gamma delta"])
    assert s["rouge1_recall"] == pytest.approx(1.0)
    assert s["rouge_l_recall"] == pytest.approx(1 / 4)


def test_rouge_several_items_keep_order_and_empty_generation_scores_zero():
    out = rouge_scores(["", "alpha beta"], ["alpha beta", "alpha beta gamma delta"])
    assert [o["rouge_l_recall"] for o in out] == pytest.approx([0.0, 0.5])
    assert out[1]["rouge_l_precision"] == pytest.approx(1.0)
    assert rouge_scores([], []) == []


def test_rouge_bad_input():
    with pytest.raises(ValueError, match="paired"):
        rouge_scores(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="single string"):
        rouge_scores("abc", "abc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"references\[1\]"):
        rouge_scores(["a", "b"], ["a", None])  # type: ignore[list-item]


def test_kept_stems_give_the_packages_own_scores():
    from rouge_score import rouge_scorer

    texts = [
        "The author's novels were celebrated; he writes mostly about running rivers.",
        "Celebrating writers: she is running, ran, runs; 42 books in 3 genres!",
        "",
        "a an the of Hsiao Yun-Hwa",
    ]
    for use_stemmer in (True, False):
        plain = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=use_stemmer)
        refs = [texts[1], texts[0], texts[3], texts[2]]
        ours = rouge_scores(texts, refs, use_stemmer=use_stemmer)
        again = rouge_scores(texts, refs, use_stemmer=use_stemmer)  # stems now kept
        for gen, ref, a, b in zip(texts, refs, ours, again):
            want = plain.score(ref, gen)
            assert a == b
            assert a["rouge_l_recall"] == want["rougeL"].recall
            assert a["rouge_l_f1"] == want["rougeL"].fmeasure
            assert a["rouge1_recall"] == want["rouge1"].recall
        assert 0 < ours[0]["rouge1_recall"] < 1  # the first two texts share some words
