"""Audit bookkeeping without a model: settings, attack planning, rows, metrics.json and audit.md."""

from __future__ import annotations

import json

import pytest

from obliviate.audits.report import audit_markdown, summary_metrics, write_audit
from obliviate.audits.runner import ALL, AuditResult, AuditSettings, make_row, plan_attacks
from obliviate.config import from_dict
from obliviate.data.types import QAItem, UnlearningRequest


def test_settings_from_dict_coerces_lists_and_rejects_bad_values():
    s = from_dict(
        AuditSettings,
        {
            "attacks": ["relearn", "mia"],
            "quant_bits": [4],
            "relearn_steps": "5",
            "relearn_lr": "1e-3",
        },
        "audit",
    )
    assert s.attacks == ("relearn", "mia") and s.quant_bits == (4,)
    assert s.relearn_steps == 5 and s.relearn_lr == 1e-3
    with pytest.raises(ValueError, match="unknown audit attack"):
        AuditSettings(attacks=("relearn", "telepathy"))
    with pytest.raises(ValueError, match="quant_bits"):
        AuditSettings(quant_bits=(1,))
    with pytest.raises(ValueError, match="relearn_steps"):
        AuditSettings(relearn_steps=0)
    with pytest.raises(ValueError, match="unknown audit setting 'relearn_step'"):
        from_dict(AuditSettings, {"relearn_step": 3}, "audit")


def _request(paraphrase=True, holdout=True, perturbed=True) -> UnlearningRequest:
    def item(i):
        return QAItem(
            f"q{i}",
            f"a{i}",
            paraphrased_answer=f"p{i}" if perturbed else None,
            perturbed_answers=(f"w{i}",) if perturbed else (),
            paraphrased_question=f"pq{i}" if paraphrase else None,
        )

    forget = [item(0), item(1)]
    retain = [item(5)]
    hold = [QAItem("h", "x")] if holdout else []
    return UnlearningRequest(
        forget=forget,
        retain=retain,
        holdout=hold,
        eval={"forget": forget, "retain": retain, "holdout": hold},
    )


def test_plan_runs_what_the_data_allows_and_explains_the_rest():
    attacks, skipped = plan_attacks(_request(), AuditSettings())
    assert attacks == list(ALL) and skipped == {}
    attacks, skipped = plan_attacks(
        _request(paraphrase=False, holdout=False, perturbed=False), AuditSettings()
    )
    assert attacks == ["relearn", "quantise", "jailbreak", "fluency"]
    assert set(skipped) == {"paraphrase", "probe", "mia"} and "holdout" in skipped["mia"]
    # an inference-time wrapper: no weight attacks
    attacks, skipped = plan_attacks(_request(), AuditSettings(), has_weights=False)
    assert "relearn" not in attacks and "quantise" not in attacks and "probe" not in attacks
    # asked for explicitly but impossible: an error naming the attack and the reason
    with pytest.raises(ValueError, match="mia: no holdout"):
        plan_attacks(_request(holdout=False), AuditSettings(attacks=("mia", "relearn")))
    attacks, skipped = plan_attacks(_request(), AuditSettings(attacks=("relearn",)))
    assert attacks == ["relearn"] and skipped["mia"] == "not requested"


def test_make_row_recoverability_control_and_notes():
    row = make_row(
        "relearn",
        "prob",
        10,
        0.9,
        0.1,
        0.2,
        target_attacked=None,
        retain_attacked=0.3,
        unlearned_attacked=0.6,
    )
    assert row["recoverability"] == pytest.approx(0.5)  # (0.6 - 0.2) / 0.8
    assert row["control"] == pytest.approx(0.25)  # (0.3 - 0.1) / 0.8
    assert row["note"] == ""
    same = make_row(
        "quant4",
        "rouge",
        4,
        0.5,
        0.5,
        0.5,
        target_attacked=None,
        retain_attacked=0.5,
        unlearned_attacked=0.6,
    )
    assert same["recoverability"] is None and "undefined" in same["note"]
    flipped = make_row(
        "probe",
        "auc",
        3,
        0.4,
        0.6,
        0.5,
        target_attacked=0.4,
        retain_attacked=0.6,
        unlearned_attacked=0.55,
    )
    # (0.55 - 0.5) / (0.4 - 0.6) = -0.25: a gain reads as negative, hence the note
    assert flipped["recoverability"] == pytest.approx(-0.25) and "not meaningful" in flipped["note"]


def _result() -> AuditResult:
    rows = [
        make_row(
            "relearn",
            "prob",
            10,
            0.9,
            0.1,
            0.2,
            target_attacked=None,
            retain_attacked=0.3,
            unlearned_attacked=0.6,
        ),
        make_row(
            "quant4",
            "prob",
            20,
            0.9,
            0.1,
            0.2,
            target_attacked=None,
            retain_attacked=0.1,
            unlearned_attacked=0.2,
        ),
    ]
    aucs = {"loss": 0.9, "min_k": 0.8, "gradnorm": 0.7, "reference": 0.6}
    mia = {
        "target": {"auc": {k: 1.0 for k in aucs}, "privleak": {k: -100.0 for k in aucs}},
        "retain": {"auc": {k: 0.5 for k in aucs}, "privleak": {k: 0.0 for k in aucs}},
        "unlearned": {
            "auc": aucs,
            "privleak": {"loss": -80.0, "min_k": -60.0, "gradnorm": -40.0, "reference": None},
            "skipped": {"zlib": "why not"},
        },
    }
    flu = {
        "unlearned": {
            "forget": {
                "perplexity": 3.5,
                "repetition_rate": 0.1,
                "unique_token_ratio": 0.8,
                "n_texts": 2,
                "n_empty": 0,
                "n_short": 0,
                "ngram": 4,
            },
            "retain": {
                "perplexity": None,
                "repetition_rate": None,
                "unique_token_ratio": None,
                "n_texts": 2,
                "n_empty": 2,
                "n_short": 2,
                "ngram": 4,
            },
        }
    }
    return AuditResult(
        rows=rows,
        mia=mia,
        fluency=flu,
        jailbreak_templates={
            "templates": ["T {question}"],
            "unlearned": [{"prob": 0.3, "rouge": 0.2}],
        },
        skipped={"probe": "not requested"},
        settings=vars(AuditSettings()).copy(),
        info={
            "benchmark": "builtin-tofu",
            "split": "forget10",
            "relearn_items": 10,
            "measured_items": 10,
            "models": {"unlearned": {"path": "u", "fingerprint": "f"}},
        },
    )


def test_summary_metrics_adds_headlines_without_overwriting_the_evaluation():
    existing = {"mia_loss_auc": {"value": 0.95, "direction": "lower", "version": 1}}
    m = summary_metrics(_result(), existing)
    assert m["audit_relearn_prob_recoverability"]["value"] == pytest.approx(0.5)
    assert m["audit_relearn_prob_recoverability"]["control"] == pytest.approx(0.25)
    assert m["audit_quant4_prob_recoverability"]["value"] == pytest.approx(0.0)
    assert "mia_loss_auc" not in m  # the evaluation's own value stays
    assert m["mia_min_k_auc"]["value"] == 0.8 and m["mia_gradnorm_auc"]["value"] == 0.7
    assert m["privleak"]["value"] == -60.0 and m["privleak_gradnorm"]["value"] == -40.0
    assert "privleak_reference" not in m  # undefined (None) is not written as a number
    assert m["fluency_forget_perplexity"] == {"value": 3.5, "direction": "lower", "version": 1}
    assert m["fluency_forget_unique_token_ratio"]["direction"] == "higher"
    assert not any(k.startswith("fluency_retain") for k in m)


def test_write_audit_merges_into_an_existing_metrics_json(tmp_path):
    doc = {
        "schema": 1,
        "name": "npo",
        "role": "unlearned",
        "method": "npo",
        "metrics": {"forget_prob": {"value": 0.2, "direction": "lower", "version": 1}},
        "eval_key": {"k": 1},
    }
    (tmp_path / "metrics.json").write_text(json.dumps(doc))
    write_audit(tmp_path, _result())
    out = json.loads((tmp_path / "metrics.json").read_text())
    assert out["eval_key"] == {"k": 1} and out["method"] == "npo"
    assert out["metrics"]["forget_prob"]["value"] == 0.2
    assert "audit_relearn_prob_recoverability" in out["metrics"]
    assert out["audit"]["rows"][0]["attack"] == "relearn" and out["audit"]["version"] == 1
    md = (tmp_path / "audit.md").read_text()
    assert "| relearning | forget prob | 10 |" in md and "4-bit quantisation" in md
    assert "GradNorm" in md and "zlib skipped: why not" in md and "T {question}" in md


def test_write_audit_creates_metrics_json_and_rejects_a_broken_one(tmp_path):
    (tmp_path / "config.yaml").write_text("method: graddiff\n")
    write_audit(tmp_path, _result())
    out = json.loads((tmp_path / "metrics.json").read_text())
    assert out["schema"] == 1 and out["method"] == "graddiff" and out["role"] == "unlearned"
    assert out["benchmark"] == "builtin-tofu" and "versions" in out
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"metrics.json: not valid JSON"):
        write_audit(bad, _result())


def test_markdown_handles_missing_sections():
    r = AuditResult(
        rows=[], settings=vars(AuditSettings()).copy(), info={"benchmark": "b", "split": "s"}
    )
    md = audit_markdown(r)
    assert md.startswith("# Robustness audit (b, s)") and "## Attacks" not in md
