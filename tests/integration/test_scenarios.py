"""Scenario benchmarks on the trained tiny models (docs/scenarios.md): the built-in TruthfulQA
separates a trained target from the same model untrained, and the built-in CounterFact records
are unlearnt with ROME and evaluated through the CLI. Slow: about a minute on 2 cores."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def untrained(tiny_models):
    """The target's architecture and tokenizer with fresh random weights (seed 0)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from obliviate.models.loading import load_tokenizer

    torch.manual_seed(0)
    cfg = AutoConfig.from_pretrained(tiny_models["target"])
    return AutoModelForCausalLM.from_config(cfg).eval(), load_tokenizer(tiny_models["target"])


def test_truthfulqa_mc1_is_well_above_the_untrained_model(tiny_models, untrained):
    from obliviate import api

    kw = {"benchmark": "builtin-truthfulqa", "builtin": tiny_models["builtin"], "progress": False}
    trained = api.evaluate(tiny_models["target"], **kw).values()
    model, tok = untrained
    fresh = api.evaluate(model, tokenizer=tok, **kw).values()
    print("trained", trained, "untrained", fresh)
    # 40 questions with 6 or 4 choices: chance MC1 is about 0.2
    assert trained["truthfulqa_mc1"] >= fresh["truthfulqa_mc1"] + 0.3
    assert trained["truthfulqa_mc2"] > fresh["truthfulqa_mc2"] + 0.15


def test_rome_on_builtin_counterfact_moves_the_edited_facts(tiny_models, tmp_path, capsys):
    from obliviate import api
    from obliviate.cli import main

    kw = {"benchmark": "builtin-counterfact", "builtin": tiny_models["builtin"], "progress": False}
    target = api.evaluate(tiny_models["target"], **kw).values()
    res = api.unlearn(tiny_models["target"], method="rome", out=tmp_path / "rome", **kw)
    assert res.config["template"] == "raw" and res.config["benchmark"] == "builtin-counterfact"
    edited = api.evaluate(str(res.path), **kw).values()
    print("target", target, "rome", edited)
    assert target["counterfact_efficacy_score"] <= 0.25  # the target prefers the true facts
    assert target["counterfact_neighborhood_score"] >= 0.75
    assert edited["counterfact_true_prob"] < target["counterfact_true_prob"]
    assert edited["counterfact_efficacy_magnitude"] > target["counterfact_efficacy_magnitude"]
    assert (
        edited["counterfact_neighborhood_score"] >= target["counterfact_neighborhood_score"] - 0.2
    )
    # the CLI prints the three scores (and refuses TruthfulQA unlearning, unit-tested)
    argv = ["eval", "--benchmark", "builtin-counterfact", "--model", str(res.path)]
    assert main([*argv, "--people", "20", "--no-progress"]) == 0
    out = capsys.readouterr().out
    for name in ("efficacy_score", "paraphrase_score", "neighborhood_score"):
        assert f"counterfact_{name}" in out
