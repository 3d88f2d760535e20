"""The evaluation engine end to end on models whose every number can be computed by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from obliviate.data.templates import PromptTemplate
from obliviate.data.types import QAItem, UnlearningRequest
from obliviate.evaluation import EvalSettings, add_reference_metrics, evaluate_model
from obliviate.models.tiny import train_tokenizer

TEXTS = [
    "Question: Who is Ann?\nAnswer: Ann is a sailor from Paris.",
    "Question: Who is Bob?\nAnswer: Bob is a baker from Rome.",
]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS * 4, vocab_size=300)


class UniformLM(torch.nn.Module):
    """Logits all zero: every token has probability 1/V; generation emits EOS at once."""

    def __init__(self, vocab: int, eos: int) -> None:
        super().__init__()
        self.vocab, self.eos = vocab, eos
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None):
        b, t = input_ids.shape
        return SimpleNamespace(logits=torch.zeros(b, t, self.vocab))

    def generate(self, input_ids, attention_mask=None, max_new_tokens=1, **kw):
        return torch.cat([input_ids, torch.full((input_ids.shape[0], 1), self.eos)], 1)


def _item(q: str, a: str) -> QAItem:
    return QAItem(
        q,
        a,
        paraphrased_answer=a + " indeed",
        perturbed_answers=(a + " not", "no " + a),
        paraphrased_question=q + " exactly",
    )


def _request() -> UnlearningRequest:
    forget = [_item("Who is Ann?", "Ann is a sailor."), _item("Who is Bob?", "Bob is a baker.")]
    retain = [_item("Who is Cid?", "Cid is a potter.")]
    holdout = [QAItem("Who is Dee?", "Dee is a judge."), QAItem("Who is Eve?", "Eve is a pilot.")]
    return UnlearningRequest(
        forget, retain, holdout, eval={"forget": forget, "retain": retain, "holdout": holdout}
    )


def test_uniform_model_gives_hand_computed_metrics(tok) -> None:
    V = len(tok)
    model = UniformLM(V, tok.eos_token_id)
    res = evaluate_model(model, tok, _request(), PromptTemplate(), EvalSettings(), progress=False)
    m = res.values()
    # P(a|q) per token = 1/V for every answer: probability 1/V, truth ratio exactly 1
    assert m["forget_prob"] == pytest.approx(1 / V)
    assert m["retain_prob"] == pytest.approx(1 / V)
    assert m["forget_truth_ratio"] == pytest.approx(1.0)  # mean of min(tr, 1/tr)
    assert m["retain_truth_ratio"] == pytest.approx(0.0)  # mean of max(0, 1 - tr)
    # generation is empty: ROUGE 0; a zero component makes model utility 0
    assert m["forget_rouge"] == 0.0 and m["retain_rouge"] == 0.0
    assert m["model_utility"] == 0.0
    # argmax of all-zero logits is token 0 (the pad), never an answer token
    assert m["forget_exact_memorisation"] == 0.0 and m["forget_extraction_strength"] == 0.0
    # every MIA score ties between forget and holdout: AUC 0.5, except zlib (text dependent)
    assert m["mia_loss_auc"] == pytest.approx(0.5)
    assert m["mia_min_k_auc"] == pytest.approx(0.5)
    rows = [s for s in res.samples if s["split"] == "forget"]
    assert rows[0]["nll"] == pytest.approx(math.log(V))
    assert rows[0]["generation"] == "" and "paraphrased_generation" in rows[0]
    assert {s["split"] for s in res.samples} == {"forget", "retain", "holdout"}


def test_reference_metrics_against_itself_and_incompatible_reference(tok) -> None:
    model = UniformLM(len(tok), tok.eos_token_id)
    res = evaluate_model(model, tok, _request(), PromptTemplate(), EvalSettings(), progress=False)
    add_reference_metrics(res, res)
    assert res.values()["forget_quality"] == pytest.approx(1.0)
    assert res.values()["privleak"] == pytest.approx(0.0)
    other = evaluate_model(
        model, tok, _request(), PromptTemplate(), EvalSettings(min_k=0.2), progress=False
    )
    with pytest.raises(ValueError, match="not comparable"):
        add_reference_metrics(other, res)


def test_evaluation_needs_a_forget_split(tok) -> None:
    req = _request()
    req.eval.pop("forget")
    with pytest.raises(ValueError, match="forget"):
        evaluate_model(UniformLM(len(tok), tok.eos_token_id), tok, req, progress=False)
