"""Every metric of a suite that cannot be computed is listed with the reason, never dropped
silently: in the result, in ``metrics.json`` (``unavailable``) and in the printed tables."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from obliviate.cli import main
from obliviate.cli.eval import print_metrics
from obliviate.data.templates import PromptTemplate
from obliviate.data.types import QAItem, UnlearningRequest
from obliviate.evaluation import EvalResult, EvalSettings, evaluate_model, expected_metrics
from obliviate.models.tiny import train_tokenizer
from obliviate.reporting.render import comparison_markdown
from obliviate.runs import load_eval, write_eval

TEXTS = ["Question: Who is Ann?\nAnswer: Ann is a sailor from Paris."] * 4


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, vocab_size=200)


class UniformLM(torch.nn.Module):
    """Logits all zero; generation emits EOS at once."""

    def __init__(self, vocab: int, eos: int) -> None:
        super().__init__()
        self.vocab, self.eos = vocab, eos
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None):
        b, t = input_ids.shape
        return SimpleNamespace(logits=torch.zeros(b, t, self.vocab))

    def generate(self, input_ids, attention_mask=None, max_new_tokens=1, **kw):
        return torch.cat([input_ids, torch.full((input_ids.shape[0], 1), self.eos)], 1)


def _full(q: str, a: str) -> QAItem:
    return QAItem(q, a, a + " indeed", (a + " not", "no " + a), q + " exactly")


FULL = [_full("Who is Ann?", "Ann is a sailor."), _full("Who is Bob?", "Bob is a baker.")]
PLAIN = [QAItem(it.question, it.answer) for it in FULL]
RETAIN = [_full("Who is Cid?", "Cid is a potter.")]
HOLDOUT = [QAItem("Who is Dee?", "Dee is a judge."), QAItem("Who is Eve?", "Eve is a pilot.")]


def _request(forget: list[QAItem], retain=RETAIN, holdout=HOLDOUT) -> UnlearningRequest:
    splits = {"forget": forget, "retain": retain, "holdout": holdout}
    return UnlearningRequest(forget, retain, holdout, eval={k: v for k, v in splits.items() if v})


def _evaluate(tok, request, reference=None, **settings) -> EvalResult:
    model = UniformLM(len(tok), tok.eos_token_id)
    return evaluate_model(
        model,
        tok,
        request,
        PromptTemplate(),
        replace(EvalSettings(batch_size=4, max_new_tokens=4), **settings),
        reference,
        progress=False,
    )


CASES = {
    "full data, no retain model": (FULL, RETAIN, HOLDOUT, {}),
    "no perturbed answers": (PLAIN, RETAIN, HOLDOUT, {}),
    "generation off": (FULL, RETAIN, HOLDOUT, {"generate": False}),
    "no retain set, no holdout": (PLAIN, [], [], {}),
}


@pytest.mark.parametrize("case", CASES)
def test_every_expected_metric_is_computed_or_explained(tok, case) -> None:
    forget, retain, holdout, settings = CASES[case]
    result = _evaluate(tok, _request(forget, retain, holdout), **settings)
    for name in expected_metrics():
        assert (name in result.metrics) != (name in result.unavailable), name
    assert all(reason and reason != "missing" for reason in result.unavailable.values())


def test_the_reason_names_the_code_path_that_skipped_the_metric(tok) -> None:
    result = _evaluate(tok, _request(PLAIN), generate=False)
    why = result.unavailable
    assert "perturbed answers" in why["forget_truth_ratio"]
    assert "perturbed answers" in why["forget_quality"]  # not "no retain model": data first
    assert why["forget_rouge"] == "generation is off (generate=False)"
    assert why["retain_rouge"] == "generation is off (generate=False)"
    assert "paraphrased answers" in why["forget_paraphrased_prob"]
    assert "--retain-model" in why["privleak"]
    assert "forget_prob" in result.metrics and "forget_prob" not in why


def test_a_reference_fills_in_its_metrics_and_removes_their_reasons(tok) -> None:
    request = _request(FULL)
    alone = _evaluate(tok, request)
    assert "--retain-model" in alone.unavailable["forget_quality"]
    with_ref = _evaluate(tok, request, reference=alone)
    assert "forget_quality" in with_ref.metrics and "privleak" in with_ref.metrics
    assert "forget_quality" not in with_ref.unavailable and "privleak" not in with_ref.unavailable


def test_missing_holdout_explains_mia_and_privleak(tok) -> None:
    result = _evaluate(tok, _request(FULL, holdout=[]))
    for name in ("mia_loss_auc", "mia_min_k_auc", "privleak"):
        assert "--holdout" in result.unavailable[name], name


def test_unavailable_is_written_and_read_back_and_old_files_still_load(tmp_path, tok) -> None:
    result = _evaluate(tok, _request(PLAIN), generate=False)
    write_eval(tmp_path, result, {"name": "x", "role": "unlearned"})
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["unavailable"] == result.unavailable
    assert load_eval(tmp_path).unavailable == result.unavailable
    del doc["unavailable"]  # a metrics.json written before the key existed
    (tmp_path / "metrics.json").write_text(json.dumps(doc))
    assert load_eval(tmp_path).unavailable == {}


def test_printed_table_lists_reasons_and_mia_auc_ideal(capsys) -> None:
    metrics = {
        "forget_prob": {"value": 0.5, "direction": "lower", "version": 1},
        "mia_min_k_auc": {"value": 0.6, "direction": "lower", "version": 1, "ideal": 0.5},
        "mia_loss_auc": {"value": 0.6, "direction": "lower", "version": 1},  # older record
        "privleak": {"value": 3.0, "direction": "zero", "version": 1},
    }
    print_metrics(metrics, {"forget_quality": "no retain model given (--retain-model)"})
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["forget_prob"].endswith("(lower is better)")
    assert lines["mia_min_k_auc"].endswith("(ideal 0.5)")
    assert lines["mia_loss_auc"].endswith("(ideal 0.5)")  # the catalogue's ideal
    assert lines["privleak"].endswith("(closest to 0 is best)")
    assert "n/a" in lines["forget_quality"] and "--retain-model" in lines["forget_quality"]


def test_comparison_table_lists_the_reason_of_each_dash() -> None:
    from obliviate.recipes.tofu import comparison_doc

    res = EvalResult(
        {"model_utility": {"value": 0.4, "direction": "higher", "version": 1}},
        [],
        {},
        unavailable={"forget_quality": "the forget set has no perturbed answers"},
    )
    doc = comparison_doc({"npo": res}, {"npo": "unlearned"}, {}, {}, "custom", "forget")
    assert doc["rows"][0]["unavailable"] == {
        "forget_quality": "the forget set has no perturbed answers"
    }
    text = comparison_markdown(doc)
    assert "- FQ (npo): the forget set has no perturbed answers" in text


def test_eval_cli_prints_and_records_why_metrics_are_missing(
    tmp_path: Path, tiny_models: dict, capsys
) -> None:
    forget = tmp_path / "forget.jsonl"
    forget.write_text(
        '{"question": "Who is Ann?", "answer": "Ann is a sailor."}\n'
        '{"question": "Who is Bob?", "answer": "Bob is a baker."}\n'
    )
    out = tmp_path / "run"
    code = main(
        [
            "eval",
            "--model",
            tiny_models["target"],
            "--forget",
            str(forget),
            "--out",
            str(out),
            "--no-progress",
            "--set",
            "generate=false",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "forget_truth_ratio" in printed and "no perturbed answers" in printed
    assert "generation is off (generate=False)" in printed
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["unavailable"]["forget_rouge"] == "generation is off (generate=False)"
    assert "no perturbed answers" in doc["unavailable"]["forget_quality"]
