"""End to end: every non-gradient method through api.unlearn -> saved folder -> api.evaluate (the
same evaluation as trained methods), on the tiny models. Slow: minutes on 2 cores."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

METHODS = {
    "rome": {},
    "memit": {},
    "icul": {"n_context": 2},
    "guardrail": {"encoder": "tfidf"},
    "eco": {"encoder": "tfidf", "zo_steps": 8},
    "whp_logits": {"train": {"epochs": 2}},
}


@pytest.fixture(scope="module")
def target_eval(tiny_models, tmp_path_factory):
    from obliviate import api

    out = tmp_path_factory.mktemp("nongradient") / "target"
    return api.evaluate(
        tiny_models["target"],
        split=tiny_models["split"],
        builtin=tiny_models["builtin"],
        retain_model=tiny_models["retain"],
        out=out,
        progress=False,
        settings={"max_new_tokens": 48},
    )


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_is_evaluated_through_its_saved_folder(name, tiny_models, target_eval, tmp_path):
    import math

    from obliviate import api
    from obliviate.io import read_json

    res = api.unlearn(
        tiny_models["target"],
        method=name,
        split=tiny_models["split"],
        builtin=tiny_models["builtin"],
        out=tmp_path / name,
        overrides=METHODS[name],
        progress=False,
    )
    ev = api.evaluate(
        str(res.path),
        split=tiny_models["split"],
        builtin=tiny_models["builtin"],
        retain_model=tiny_models["retain"],
        out=tmp_path / name,
        progress=False,
        settings={"max_new_tokens": 48},
    )
    m = ev.values()
    for key in ("forget_quality", "model_utility", "forget_rouge", "forget_prob", "retain_prob"):
        assert key in m and math.isfinite(m[key]), (name, key, m.get(key))
    t = target_eval.values()
    assert m["forget_prob"] < t["forget_prob"], (name, m["forget_prob"], t["forget_prob"])
    saved = read_json(tmp_path / name / "metrics.json")
    assert saved["metrics"]["forget_prob"]["value"] == pytest.approx(m["forget_prob"])
    if name in ("guardrail", "eco"):
        assert m["forget_rouge"] < t["forget_rouge"]
        assert m["model_utility"] > 0.5 * t["model_utility"]
    print(
        name,
        {
            k: round(m[k], 4)
            for k in ("forget_quality", "model_utility", "forget_rouge", "forget_prob")
        },
        "target",
        {
            k: round(t[k], 4)
            for k in ("forget_quality", "model_utility", "forget_rouge", "forget_prob")
        },
    )
