"""Probe pieces: jailbreak wrapping, truth candidates, within-item AUC, hidden-state features
(on a toy model with known hidden states) and the logistic-regression probe."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from obliviate.audits.hidden import answer_hidden_states, num_layers
from obliviate.audits.probes import (
    JAILBREAK_TEMPLATES,
    fit_truth_probe,
    grouped_auc,
    truth_candidates,
    wrap_question,
)
from obliviate.data.templates import PromptTemplate
from obliviate.data.types import QAItem


def test_wrap_question_and_builtin_templates():
    assert wrap_question("Ignore that. {question}", "Who?") == "Ignore that. Who?"
    assert wrap_question("{question} {x}", "Q") == "Q {x}"  # other braces untouched
    assert len(JAILBREAK_TEMPLATES) >= 5 and all("{question}" in t for t in JAILBREAK_TEMPLATES)
    with pytest.raises(ValueError, match="placeholder"):
        wrap_question("no slot", "Q")


def test_truth_candidates_labels_groups_and_skips():
    items = [
        QAItem("q0", "a0", paraphrased_answer="p0", perturbed_answers=("w0", "w1")),
        QAItem("q1", "a1"),  # no variants: skipped
        QAItem("q2", "a2", paraphrased_answer="p2", perturbed_answers=("w2",)),
    ]
    pairs, y, g = truth_candidates(items, "forget")
    assert pairs == [("q0", "p0"), ("q0", "w0"), ("q0", "w1"), ("q2", "p2"), ("q2", "w2")]
    assert y.tolist() == [1, 0, 0, 1, 0] and g.tolist() == [0, 0, 0, 2, 2]
    with pytest.raises(ValueError, match=r"'retain'.*perturbed"):
        truth_candidates([QAItem("q", "a")], "retain")


def test_grouped_auc_hand_values():
    # item 0: true 0.9 vs wrong 0.1, 0.95 -> beats 1 of 2 -> 0.5
    # item 1: true 0.2 vs wrong 0.2 (tie), 0.1 -> (0.5 + 1) / 2 = 0.75
    scores = [0.9, 0.1, 0.95, 0.2, 0.2, 0.1]
    labels = [1, 0, 0, 1, 0, 0]
    groups = [0, 0, 0, 1, 1, 1]
    assert grouped_auc(scores, labels, groups) == pytest.approx((0.5 + 0.75) / 2)
    # item-level offsets do not matter: shifting all of item 1's scores by +10 changes nothing
    shifted = [0.9, 0.1, 0.95, 10.2, 10.2, 10.1]
    assert grouped_auc(shifted, labels, groups) == pytest.approx(0.625)
    # a pooled AUC would mix items: here it differs
    from obliviate.metrics.mia import auc

    s, yv = np.array(shifted), np.array(labels)
    assert auc(s[yv == 0], s[yv == 1]) != pytest.approx(0.625)
    # items lacking a side are skipped; none usable -> error
    assert grouped_auc([1.0, 0.0, 5.0], [1, 0, 1], [0, 0, 1]) == 1.0
    with pytest.raises(ValueError, match="no item"):
        grouped_auc([1.0, 2.0], [1, 1], [0, 1])
    with pytest.raises(ValueError, match="equal length"):
        grouped_auc([1.0], [1, 0], [0, 0])


class CharTokenizer:
    """Ids = digits of the text; EOS = 3 (also pad); no BOS."""

    bos_token_id = None
    eos_token_id = 3
    pad_token_id = 3

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        return {"input_ids": [int(c) for c in text]}


class OneHotLM(torch.nn.Module):
    """hidden_states[0] = one-hot of the token, hidden_states[1] = 2 x that; two "layers"."""

    config = SimpleNamespace(num_hidden_layers=1)

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False, **kw):
        h0 = torch.nn.functional.one_hot(input_ids, 4).float()
        return SimpleNamespace(logits=h0 + self.w, hidden_states=(h0, 2 * h0))


def test_answer_hidden_states_mean_over_answer_tokens_without_eos_or_padding():
    tok, raw = CharTokenizer(), PromptTemplate("raw")
    # "1" + "02" -> [1, 0, 2, EOS]: answer tokens 0, 2 (EOS dropped) -> mean one-hot (.5, 0, .5, 0)
    # "2" + "0"  -> [2, 0, EOS, pad]: answer token 0 -> (1, 0, 0, 0); the padding never counts
    feats = answer_hidden_states(OneHotLM(), tok, [("1", "02"), ("2", "0")], raw, layer=0)
    assert feats.tolist() == [[0.5, 0.0, 0.5, 0.0], [1.0, 0.0, 0.0, 0.0]]
    feats1 = answer_hidden_states(OneHotLM(), tok, [("1", "02")], raw, layer=1, batch_size=1)
    assert feats1.tolist() == [[1.0, 0.0, 1.0, 0.0]]
    assert num_layers(OneHotLM()) == 1
    with pytest.raises(ValueError, match="layer"):
        answer_hidden_states(OneHotLM(), tok, [("1", "0")], raw, layer=2)
    with pytest.raises(ValueError, match="num_hidden_layers"):
        num_layers(torch.nn.Linear(2, 2))


def test_truth_probe_learns_a_linear_direction():
    rng = np.random.default_rng(0)

    # true candidates have feature 0 shifted by +3 (ideal AUC Phi(3/sqrt 2) = 0.98); the rest is noise
    def make(n):
        y = np.array([1, 0, 0] * n)
        x = rng.normal(size=(3 * n, 5))
        x[:, 0] += 3.0 * y
        return x, y, np.repeat(np.arange(n), 3)

    tx, ty, _ = make(40)
    vx, vy, vg = make(20)
    scores = fit_truth_probe(tx, ty, vx)
    assert grouped_auc(scores, vy, vg) > 0.9
    # labels carry no signal -> about chance
    scores_null = fit_truth_probe(tx, rng.permutation(ty), vx)
    assert abs(grouped_auc(scores_null, vy, vg) - 0.5) < 0.25
    with pytest.raises(ValueError, match="both"):
        fit_truth_probe(tx, np.ones_like(ty), vx)
