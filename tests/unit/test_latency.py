"""Generation latency: one token = one decoding step of one row."""

from __future__ import annotations

import pytest


def test_latency_counts_rows_times_decoding_steps(tiny_models):
    import torch

    from obliviate import api
    from obliviate.data.templates import PromptTemplate
    from obliviate.inference.latency import generation_latency
    from obliviate.models.loading import load_model, load_tokenizer

    torch.set_num_threads(2)
    model, tok = load_model(tiny_models["target"]), load_tokenizer(tiny_models["target"])
    req = api.load_request("builtin", tiny_models["split"], builtin=tiny_models["builtin"])
    questions = [it.question for it in req.retain[:5]]
    tmpl = PromptTemplate("qa")
    res = generation_latency(model, tok, questions, tmpl, max_new_tokens=6, batch_size=2)
    # batches of 2, 2 and 1 rows; each decodes between 1 and 6 steps
    assert 5 <= res["tokens"] <= 30 and res["seconds"] > 0
    assert res["s_per_token"] == pytest.approx(res["seconds"] / res["tokens"])
    # without an EOS token nothing stops early: every row decodes all 6 steps
    tok.eos_token_id = None
    tok.eos_token = None
    full = generation_latency(model, tok, questions, tmpl, max_new_tokens=6, batch_size=2)
    assert full["tokens"] == 5 * 6
    with pytest.raises(ValueError, match="at least one question"):
        generation_latency(model, tok, [], tmpl)
