"""Each unlearning method, run briefly on the tiny target, forgets selectively.

Measure: the mean per-token probability P̄(a|q) = exp(−NLL_avg) (TOFU's "Prob", EOS included)
over the forget set and over the retain set, before and after a short run. The claim tested:

    (forget drop) − (retain drop) ≥ MARGIN = 0.1

i.e. the forget-set probability falls by at least 0.1 more than the retain-set probability.

Settings: the presets' defaults are sized for the demo (about 100 people); the tiny fixture's
forget10 holds only 20 items, so every run uses ``COMMON`` (lr 1e-3, 5 epochs, batch 8: 15
steps) plus, for some methods, documented options of that method (``SETTINGS``; the reason is
given next to each). Nothing else differs from the registered preset.
"""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.slow

MARGIN = 0.1
COMMON = {"lr": 1e-3, "epochs": 5, "batch_size": 8}
SETTINGS: dict[str, dict] = {
    # GA has no retain term: after 5 epochs it has collapsed everything (forget and retain
    # probabilities both 0.000, measured); 2 epochs is inside the useful window
    # (forget 0.72 -> 0.34, retain 0.62 -> 0.48)
    "ga": {"train": {"epochs": 2}},
    # the preset's retain weight 8.8 is sized for its 28 epochs at lr 5.1e-4 (docs/sweep.md); in
    # these 15 steps it holds the forget set too (forget 0.705 -> 0.585, retain 0.599 -> 0.556,
    # measured): the retain weight the test was sized with
    "graddiff": {"alpha": 1.0},
    "ga_kl": {},
    "npo": {},
    "npo_kl": {},
    "wga": {},
    "undial": {},
    "pdu": {},
    "llmu": {},
    "dpo": {},
    "altpo": {},
    # SatImp's weights p^5 (1 - p) are ~0.01 on memorised tokens: a larger step
    "satimp": {"train": {"lr": 3e-3}},
    # CE-U has no retain term; on a 20-person model it forgets everything alike, so it is
    # composed with the NLL retain term here
    "ceu": {"retain": "nll"},
    # the paper's MUSE setting: forget weight 1 instead of TOFU's 0.125
    "simnpo": {"gamma": 1.0},
    # refusal answers must first be learnt: 10 epochs
    "idk": {"train": {"epochs": 10}},
    # the tiny target's own recipe (lr 3e-3) for the reinforced copy, and alpha 5: with alpha 1
    # the generic distribution is almost the target's own
    "whp": {"forget_params": {"reinforce_lr": 3e-3, "generic_alpha": 5.0}},
    # only 1 down-projection of a 2-layer model trains: a larger step, and retain weight 10
    # (upstream's 100 is balanced for 4096-d hidden states)
    "rmu": {"train": {"lr": 1e-2}, "alpha": 10.0},
    "rmu_adaptive": {"train": {"lr": 1e-2}, "alpha": 10.0},
}


def settings(name: str) -> dict:
    extra = {k: (dict(v) if isinstance(v, dict) else v) for k, v in SETTINGS[name].items()}
    extra["train"] = {**COMMON, **extra.get("train", {})}
    return extra


def mean_prob(model, tok, items) -> float:
    from obliviate.data.templates import PromptTemplate
    from obliviate.scoring import score_pairs

    scores = score_pairs(
        model, tok, [(it.question, it.answer) for it in items], PromptTemplate("qa"), progress=False
    )
    return sum(math.exp(-s.nll_avg()) for s in scores) / len(scores)


@pytest.fixture(scope="module")
def before(tiny_models):
    import torch

    from obliviate import api
    from obliviate.models.loading import load_model, load_tokenizer

    torch.set_num_threads(2)
    path = tiny_models["target"]
    tok = load_tokenizer(path)
    req = api.load_request("builtin", tiny_models["split"], builtin=tiny_models["builtin"])
    model = load_model(path)
    return {
        "tok": tok,
        "req": req,
        "forget": mean_prob(model, tok, req.forget),
        "retain": mean_prob(model, tok, req.retain),
    }


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_short_run_forgets_more_than_it_retains(name, tiny_models, before):
    from obliviate import api

    result = api.unlearn(
        tiny_models["target"],
        name,
        split=tiny_models["split"],
        builtin=tiny_models["builtin"],
        overrides=settings(name),
        progress=False,
    )
    tok, req = before["tok"], before["req"]
    forget = mean_prob(result.model, tok, req.forget)
    retain = mean_prob(result.model, tok, req.retain)
    drop_f, drop_r = before["forget"] - forget, before["retain"] - retain
    print(
        f"{name}: forget {before['forget']:.3f}->{forget:.3f}, retain {before['retain']:.3f}->"
        f"{retain:.3f}, margin {drop_f - drop_r:+.3f}, {result.wall_s:.1f}s"
    )
    assert drop_f - drop_r >= MARGIN, (
        f"{name}: forget prob {before['forget']:.3f} -> {forget:.3f}, retain prob "
        f"{before['retain']:.3f} -> {retain:.3f}: the forget drop exceeds the retain drop by "
        f"{drop_f - drop_r:.3f} < {MARGIN}"
    )
