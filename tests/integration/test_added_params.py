"""End to end on the tiny models: ``eul`` (two requests, fused), ``soft_prompt`` and ``ext_sub``
through api.unlearn -> saved folder -> load_model (identical logits) -> api.evaluate, compared
with the target (docs/methods.md). Slow: minutes on 2 cores."""

from __future__ import annotations

import math

import pytest
import torch

pytestmark = pytest.mark.slow

SETTINGS = {"max_new_tokens": 32}


@pytest.fixture(scope="module")
def target_eval(tiny_models, tmp_path_factory):
    from obliviate import api

    return api.evaluate(
        tiny_models["target"],
        split=tiny_models["split"],
        builtin=tiny_models["builtin"],
        retain_model=tiny_models["retain"],
        out=tmp_path_factory.mktemp("added_params") / "target",
        progress=False,
        settings=SETTINGS,
    )


def _probe(tiny_models):
    from obliviate.data.collate import pad_batch
    from obliviate.models.loading import load_tokenizer

    tok = load_tokenizer(tiny_models["target"])
    texts = ["Question: Where was the author born?\nAnswer:", "Question: What is it?\nAnswer:"]
    return pad_batch([tok(t)["input_ids"] for t in texts], tok.pad_token_id)


def _unlearn_and_check(tiny_models, target_eval, tmp_path, name, overrides, split=None, model=None):
    from obliviate import api
    from obliviate.models.loading import load_model

    res = api.unlearn(
        model or tiny_models["target"],
        method=name,
        split=split or tiny_models["split"],
        builtin=tiny_models["builtin"],
        out=tmp_path / name,
        overrides=overrides,
        progress=False,
    )
    probe = _probe(tiny_models)
    real = probe["attention_mask"].bool()
    with torch.no_grad():  # the saved folder gives the same logits as the model in memory
        got = load_model(str(res.path))(**probe).logits[real]
        assert torch.equal(got, res.model(**probe).logits[real])
    ev = api.evaluate(
        str(res.path),
        split=tiny_models["split"],
        builtin=tiny_models["builtin"],
        retain_model=tiny_models["retain"],
        out=tmp_path / name,
        progress=False,
        settings=SETTINGS,
    )
    m, t = ev.values(), target_eval.values()
    keys = ("forget_quality", "model_utility", "forget_rouge", "forget_prob", "retain_prob")
    for key in keys:
        assert key in m and math.isfinite(m[key]), (name, key, m.get(key))
    print(name, {k: round(m[k], 4) for k in keys}, "target", {k: round(t[k], 4) for k in keys})
    return res, m, t


def test_eul_two_requests_fused_through_saved_folders(tiny_models, target_eval, tmp_path):
    from obliviate.io import read_json

    first, _, _ = _unlearn_and_check(
        tiny_models, target_eval, tmp_path / "a", "eul", {}, split="forget05"
    )
    _res, m, t = _unlearn_and_check(
        tiny_models, target_eval, tmp_path / "ab", "eul", {}, model=str(first.path.parent)
    )
    info = read_json(tmp_path / "ab" / "eul" / "method.json")["info"]
    assert info["n_fused"] == 2 and info["layers"] == 2
    assert m["forget_prob"] < t["forget_prob"]


def test_soft_prompt_keeps_every_weight_and_forgets(tiny_models, target_eval, tmp_path):
    from obliviate.models.loading import load_model

    res, m, t = _unlearn_and_check(tiny_models, target_eval, tmp_path, "soft_prompt", {})
    saved = load_model(str(res.path))
    original = load_model(tiny_models["target"]).state_dict()
    for k, v in saved.base.state_dict().items():
        assert torch.equal(v, original[k]), k
    assert m["forget_prob"] < t["forget_prob"]


def test_ext_sub_through_a_saved_folder(tiny_models, target_eval, tmp_path):
    _res, m, t = _unlearn_and_check(tiny_models, target_eval, tmp_path, "ext_sub", {})
    assert m["forget_prob"] < t["forget_prob"]
