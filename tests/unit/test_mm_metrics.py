"""MLLMU-Bench task metrics and the MMUnlearner saliency maths against hand-computed values;
the per-(set, mode) aggregation of :func:`obliviate.multimodal.evaluate.evaluate_sets` on
hand-set scores and generations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from obliviate.data.types import QAItem
from obliviate.multimodal import evaluate as ev
from obliviate.multimodal.metrics import (
    cloze_correct,
    mcq_accuracy,
    mcq_choice,
    option_score,
)
from obliviate.multimodal.mmunlearner import fisher_diagonal, saliency_ratio_masks
from obliviate.scoring import TokenScores


def _scores(logps: list[float], eos: bool = True) -> TokenScores:
    n = len(logps)
    z = np.zeros(n)
    return TokenScores(np.array(logps, dtype=float), np.zeros(n, bool), z, z, eos)


def test_option_score_is_the_mean_log_prob_without_eos() -> None:
    assert option_score(_scores([-1.0, -3.0, -0.5])) == pytest.approx(-2.0)
    assert option_score(_scores([-1.0, -3.0], eos=False)) == pytest.approx(-2.0)
    assert option_score(_scores([-0.1])) == -math.inf  # only EOS: no option token


def test_mcq_choice_and_accuracy() -> None:
    # means: -2.0, -1.0 (the EOS -9 not counted), -inf
    options = [_scores([-1.0, -3.0, -0.2]), _scores([-1.5, -0.5, -9.0]), _scores([-0.3])]
    assert mcq_choice(options) == 1
    assert mcq_choice([_scores([-1.0, 0.0]), _scores([-1.0, 0.0])]) == 0  # first of equals
    assert mcq_accuracy([1, 0, 2], [1, 1, 2]) == pytest.approx(2 / 3)
    assert math.isnan(mcq_accuracy([], []))
    with pytest.raises(ValueError):
        mcq_accuracy([1], [1, 2])
    with pytest.raises(ValueError):
        mcq_choice([])


def test_cloze_matches_whole_words_case_and_punctuation_free() -> None:
    assert cloze_correct("born in Roltren.", "Roltren")
    assert cloze_correct("ROLTREN", "roltren")
    assert cloze_correct("a Pour Trelgror, indeed", "Pour  Trelgror")
    assert not cloze_correct("Roltrena", "Roltren")
    assert not cloze_correct("Pour", "Pour Trelgror")
    assert not cloze_correct("anything", "")


def test_evaluate_sets_aggregates_per_set_and_mode(monkeypatch) -> None:
    img = {"image": object(), "image_id": "x"}
    items = {
        "forget": [
            QAItem("q1", "b", options=("a", "b"), meta={**img, "mode": "image", "task": "qa"}),
            QAItem("q2", "a", options=("a", "b"), meta={"mode": "text", "task": "qa"}),
            QAItem("c1", "Roltren", meta={"mode": "text", "task": "cloze"}),
        ],
        "retain": [
            QAItem("q3", "b", options=("a", "b"), meta={"mode": "text", "task": "qa"}),
            QAItem("c2", "baker", meta={"mode": "text", "task": "cloze"}),
            QAItem("q4", "a", options=("a", "b"), meta={"mode": "text", "task": "mcq"}),
            QAItem("g1", "sailor", meta={"mode": "text", "task": "gen"}),
        ],
    }
    # option log-probs, in item order: q1 picks b (right), q2 b (wrong), q3 b (right), q4 a (right)
    option_lp = {"a": [-2.0, -1.0, -3.0, -0.5], "b": [-1.0, -0.5, -1.0, -2.0]}
    calls = {"n": 0}

    def fake_scores(model, tok, flat_items, template, answers, batch_size):
        out = []
        for it, a in zip(flat_items, answers):
            k = ["q1", "q2", "q3", "q4"].index(it.question)
            out.append(_scores([option_lp[a][k], -0.1]))  # then EOS
        calls["n"] += 1
        return out

    gens = {"q1": "b", "q2": "x y", "c1": "in Roltren.", "q3": "b", "c2": "a sailor"}
    gens["g1"] = "a sailor"
    asked: list[str] = []

    def fake_generations(model, tok, its, template):
        asked.extend(it.question for it in its)
        return [gens[it.question] for it in its]

    monkeypatch.setattr(ev, "score_items", fake_scores)
    monkeypatch.setattr(ev, "answer_generations", fake_generations)
    got = ev.evaluate_sets(None, None, items)
    assert calls["n"] == 1  # every option of every set in one scoring call
    assert sorted(asked) == ["c1", "c2", "g1", "q1", "q2", "q3"]  # an mcq item is not generated
    assert got["forget/image"]["mcq_acc"] == 1.0 and got["forget/image"]["rouge_l"] == 1.0
    assert math.isnan(got["forget/image"]["cloze_acc"])
    assert got["forget/text"] == {"mcq_acc": 0.0, "rouge_l": 0.0, "cloze_acc": 1.0}
    assert got["retain/text"] == {"mcq_acc": 1.0, "rouge_l": 1.0, "cloze_acc": 0.0}


def test_fisher_diagonal_is_the_mean_squared_gradient() -> None:
    theta = torch.tensor([1.0, 2.0], requires_grad=True)
    batches = [torch.tensor([1.0, 0.0]), torch.tensor([3.0, 1.0])]
    # d(theta . x)/d theta = x  ->  F = ((1 + 9) / 2, (0 + 1) / 2)
    f = fisher_diagonal([theta], lambda x: (theta * x).sum(), batches)
    assert f[0].tolist() == pytest.approx([5.0, 0.5])
    assert theta.grad is None
    assert fisher_diagonal([theta], lambda x: (theta * x).sum(), [])[0].tolist() == [0.0, 0.0]


def test_saliency_ratio_masks() -> None:
    forget = [torch.tensor([2.0, 1.0, 0.0, 4.0])]
    preserve = [torch.tensor([1.0, 2.0, 0.0, 4.0])]
    # ratios 2, 0.5, (0 + eps) / (0 + eps) = 1, 1
    assert saliency_ratio_masks(forget, preserve)[0].tolist() == [True, False, True, True]
    assert saliency_ratio_masks(forget, preserve, 1.5)[0].tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match="threshold"):
        saliency_ratio_masks(forget, preserve, 0.0)


def test_fisher_diagonal_counts_a_batch_that_misses_the_parameters_as_zero() -> None:
    theta = torch.tensor([1.0], requires_grad=True)
    f = fisher_diagonal([theta], lambda x: (theta * x).sum() if x else torch.tensor(1.0), [2, 0])
    assert f[0].tolist() == pytest.approx([2.0])  # (2^2 + 0) / 2
