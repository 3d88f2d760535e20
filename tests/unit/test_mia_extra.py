"""GradNorm per-sample gradients and the six-attack MIA suite on a hand-computable toy model.

The toy LM: vocabulary {0, 1, EOS=2}; logits at every position = b + E[x_t] (a bias vector and an
embedding table, no mixing across positions), so every gradient is a short hand computation.
Text is tokenised digit by digit ("10" -> [1, 0]); the "raw" template appends the answer to the
question directly.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from obliviate.audits.gradients import per_sample_grad_norms
from obliviate.audits.mia_suite import ATTACKS, mia_suite
from obliviate.data.templates import PromptTemplate
from obliviate.data.types import QAItem, UnlearningRequest
from obliviate.metrics import mia

RAW = PromptTemplate("raw")
V = 3


class DigitTokenizer:
    bos_token_id = None
    eos_token_id = 2
    pad_token_id = 2

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        return {"input_ids": [int(c) for c in text]}


class ToyLM(torch.nn.Module):
    def __init__(self, bias: list[float]) -> None:
        super().__init__()
        self.b = torch.nn.Parameter(torch.tensor(bias, dtype=torch.float64))
        self.E = torch.nn.Parameter(torch.zeros(V, V, dtype=torch.float64))

    def forward(self, input_ids, attention_mask=None, **kw):
        return SimpleNamespace(logits=self.b + self.E[input_ids])


def test_gradnorm_per_tensor_norms_match_a_hand_computation():
    # question "1", answer "00" -> input [1, 0, 0, EOS], scored labels 0, 0, EOS, predicted
    # from inputs 1, 0, 0. b = 0: softmax s = (1/3, 1/3, 1/3); loss = mean of 3 token NLLs.
    # d/db = sum_t (s - onehot(y_t)) / 3 = ((1,1,1) - (2,0,1)) / 3 = (-1/3, 1/3, 0) -> sqrt(2)/3
    # d/dE[1] = (s - e0)/3 = (-2/9, 1/9, 1/9); d/dE[0] = ((s - e0) + (s - e2))/3 = (-1/9, 2/9, -1/9)
    #   -> ||dE|| = sqrt(4 + 1 + 1 + 1 + 4 + 1) / 9 = sqrt(12)/9
    (norms,) = per_sample_grad_norms(ToyLM([0.0, 0.0, 0.0]), DigitTokenizer(), [("1", "00")], RAW)
    assert norms.tolist() == pytest.approx([math.sqrt(2) / 3, math.sqrt(12) / 9])
    assert mia.gradnorm_score(norms) == pytest.approx((math.sqrt(2) / 3 + math.sqrt(12) / 9) / 2)


def test_gradnorm_restores_mode_flags_and_grad_buffers():
    model = ToyLM([0.0, 0.0, 0.0])
    model.train()
    model.b.requires_grad_(False)  # a frozen tensor still takes part (scores stay comparable)
    model.E.grad = torch.full((V, V), 7.0, dtype=torch.float64)
    (norms,) = per_sample_grad_norms(model, DigitTokenizer(), [("1", "00")], RAW)
    assert len(norms) == 2
    assert model.training is True
    assert model.b.requires_grad is False and model.E.requires_grad is True
    assert model.b.grad is None and torch.equal(
        model.E.grad, torch.full((V, V), 7.0, dtype=torch.float64)
    )
    model.eval()
    per_sample_grad_norms(model, DigitTokenizer(), [("1", "00")], RAW, train_mode=True)
    assert model.training is False


def test_gradnorm_errors():
    with pytest.raises(ValueError, match="no answer token"):
        per_sample_grad_norms(
            ToyLM([0.0] * 3), DigitTokenizer(), [("1", "")], PromptTemplate("raw"), max_length=1
        )
    with pytest.raises(ValueError, match="parameters"):
        per_sample_grad_norms(object(), DigitTokenizer(), [("1", "0")], RAW)


def _request() -> UnlearningRequest:
    forget = [QAItem("1", "00"), QAItem("10", "00")]
    holdout = [QAItem("1", "11"), QAItem("10", "11"), QAItem("0", "11")]
    return UnlearningRequest(
        forget=forget, retain=[], holdout=holdout, eval={"forget": forget, "holdout": holdout}
    )


def test_suite_flags_a_model_that_memorised_the_forget_answers():
    # b favours token 0: the forget answers ("00") are likely, the holdout ones ("11") are not.
    memoriser = ToyLM([2.0, 0.0, 0.0])
    uniform = ToyLM([0.0, 0.0, 0.0])  # the "retain" reference: no preference
    tok = DigitTokenizer()
    res = mia_suite(
        memoriser,
        tok,
        _request(),
        RAW,
        reference_model=uniform,
        retain_aucs={a: 0.5 for a in ATTACKS},
    )
    assert set(res["auc"]) == set(ATTACKS) and res["skipped"] == {}
    # every attack separates members from non-members perfectly (OU orientation: AUC 1)
    assert res["auc"] == {a: pytest.approx(1.0) for a in ATTACKS}
    # PrivLeak against a retain AUC of 0.5: (0 - 0.5) / 0.5 * 100 = -100 (under-unlearned)
    assert res["privleak"] == {a: pytest.approx(-100.0) for a in ATTACKS}
    # hand values: s = softmax(2, 0, 0) = (e^2, 1, 1) / (e^2 + 2)
    z = math.exp(2) + 2
    nll_forget = (2 * -math.log(math.exp(2) / z) - math.log(1 / z)) / 3  # tokens 0, 0, EOS
    nll_uniform = math.log(3)
    assert res["scores"]["loss"]["forget"] == pytest.approx([nll_forget, nll_forget])
    assert res["scores"]["reference"]["forget"][0] == pytest.approx(nll_forget - nll_uniform)
    # Min-K% (k = 0.4, EOS excluded): 2 answer tokens -> the lowest 1 -> -log s_0
    assert res["scores"]["min_k"]["forget"][0] == pytest.approx(-math.log(math.exp(2) / z))
    assert (res["n_forget"], res["n_holdout"]) == (2, 3)


def test_suite_on_the_reference_model_itself_and_skips():
    uniform = ToyLM([0.0, 0.0, 0.0])
    tok = DigitTokenizer()
    res = mia_suite(uniform, tok, _request(), RAW, reference_model=uniform)
    # identical models: every reference score is 0 -> all ties -> AUC 0.5; no PrivLeak without retain AUCs
    assert res["auc"]["reference"] == pytest.approx(0.5)
    assert np.allclose(res["scores"]["reference"]["forget"], 0.0)
    assert "privleak" not in res
    res2 = mia_suite(uniform, tok, _request(), RAW)
    assert "reference" not in res2["auc"] and "reference" in res2["skipped"]
    # a retain AUC of 1 makes PrivLeak undefined: None, not a crash or a silent fallback
    res3 = mia_suite(uniform, tok, _request(), RAW, retain_aucs={"loss": 1.0})
    assert res3["privleak"] == {"loss": None}


def test_suite_needs_holdout_items():
    req = UnlearningRequest(forget=[QAItem("1", "00")], retain=[])
    with pytest.raises(ValueError, match="holdout"):
        mia_suite(ToyLM([0.0] * 3), DigitTokenizer(), req, RAW)
