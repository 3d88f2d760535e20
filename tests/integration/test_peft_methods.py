"""End to end on the tiny target (fixture ``tiny_models``): LoRA training through any gradient
method (adapter saved, loaded back, evaluated; merge option), and the issue-3 part-B methods
(salun, saliency, distill, task_vector, sisa) forgetting clearly more than they lose on retain.

Forgetting is measured as the mean per-token-normalised probability P̄(y|x) = exp(−NLL_avg)
of the answers (docs/metrics.md), on the forget set and on the first 60 retain items."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from obliviate import api
from obliviate.data.templates import PromptTemplate


def _prob(model, tok, items) -> float:
    from obliviate.scoring import score_pairs

    scores = score_pairs(
        model, tok, [(it.question, it.answer) for it in items], PromptTemplate(), progress=False
    )
    return sum(math.exp(-s.nll_avg()) for s in scores) / len(scores)


def _probs(model, tok, request) -> dict[str, float]:
    return {
        "forget": _prob(model, tok, request.forget),
        "retain": _prob(model, tok, request.retain[:60]),
    }


@pytest.fixture(scope="module")
def setting(tiny_models):
    from obliviate.models.loading import load_model, load_tokenizer

    torch.set_num_threads(2)
    request = api.load_request("builtin", tiny_models["split"], builtin=tiny_models["builtin"])
    tok = load_tokenizer(tiny_models["target"])
    before = _probs(load_model(tiny_models["target"]), tok, request)
    return {**tiny_models, "request": request, "tok": tok, "before": before}


def _base_name(peft_name: str) -> str:
    return peft_name.replace("base_model.model.", "", 1).replace(".base_layer", "")


def test_graddiff_with_lora_trains_only_the_adapter_saves_loads_and_evaluates(setting, tmp_path):
    from obliviate.models.loading import load_model

    target = dict(load_model(setting["target"]).named_parameters())
    out = tmp_path / "graddiff_lora"
    res = api.unlearn(
        setting["target"],
        "graddiff",
        out=out,
        builtin=setting["builtin"],
        overrides={"peft": {"r": 8}, "train": {"lr": 1e-3, "max_steps": 4}},
        progress=False,
    )
    lora = {n: p for n, p in res.model.named_parameters() if "lora_" in n}
    assert res.trainable_params == sum(p.numel() for p in lora.values()) > 0
    assert all(not p.requires_grad for n, p in res.model.named_parameters() if "lora_" not in n)
    for n, p in res.model.named_parameters():  # the base weights did not move
        if "lora_" not in n:
            assert torch.equal(p.detach(), target[_base_name(n)].detach()), n
    assert any(float(p.detach().abs().sum()) > 0 for n, p in lora.items() if "lora_B" in n)
    saved = Path(res.path)
    assert (saved / "adapter_config.json").exists() and (
        saved / "adapter_model.safetensors"
    ).exists()
    assert not (saved / "model.safetensors").exists()
    back = load_model(str(saved))
    assert type(back).__name__.startswith("PeftModel")
    x = torch.tensor([setting["tok"]("Question: Who?\nAnswer: A")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(back(input_ids=x).logits, res.model(input_ids=x).logits, atol=1e-5)
    ev = api.evaluate(
        str(saved),
        builtin=setting["builtin"],
        split=setting["split"],
        settings={"max_new_tokens": 8},
        progress=False,
    )
    assert 0 < ev.metrics["forget_prob"]["value"] < 1


def test_peft_merge_saves_a_plain_model_for_gradient_methods(setting, tmp_path):
    res = api.unlearn(
        setting["target"],
        "graddiff",
        out=tmp_path / "merged",
        builtin=setting["builtin"],
        progress=False,
        overrides={"peft": {"r": 8, "merge": True}, "train": {"lr": 1e-3, "max_steps": 2}},
    )
    saved = Path(res.path)
    assert (saved / "model.safetensors").exists() and not (
        saved / "adapter_config.json"
    ).exists(), (
        "peft.merge=true was not applied: ComposedMethod.unlearn must return "
        "obliviate.models.selection.finish_adapter(job.model) after training"
    )


def test_task_vector_with_lora_merge_saves_a_plain_model(setting, tmp_path):
    from obliviate.models.loading import load_model

    res = api.unlearn(
        setting["target"],
        "task_vector",
        out=tmp_path / "tv",
        builtin=setting["builtin"],
        progress=False,
        overrides={"peft": {"r": 8, "merge": True}, "train": {"lr": 1e-3, "max_steps": 2}},
    )
    saved = Path(res.path)
    assert (saved / "model.safetensors").exists() and not (saved / "adapter_config.json").exists()
    x = torch.tensor([setting["tok"]("Question: Who?\nAnswer: A")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(
            load_model(str(saved))(input_ids=x).logits, res.model(input_ids=x).logits, atol=1e-5
        )


def test_sisa_method_trains_forgets_saves_and_reports_its_cost(setting, tmp_path):
    from obliviate.methods.sisa import SISAEnsemble
    from obliviate.models.loading import load_model

    res = api.unlearn(
        setting["target"],
        "sisa",
        out=tmp_path / "sisa",
        builtin=setting["builtin"],
        progress=False,
        overrides={"shards": 2, "slices": 2, "train": {"epochs": 2, "batch_size": 16}},
    )
    assert isinstance(res.model, SISAEnsemble)
    info = (tmp_path / "sisa" / "sisa_cost.json").read_text()
    assert '"removed": 20' in info and '"exact": true' in info
    back = load_model(str(res.path))
    assert back.fingerprint() == res.model.fingerprint()
    forget_q = {it.question for it in setting["request"].forget}
    assert not forget_q & {q for q, _ in back.items.values()}
    ev = api.evaluate(
        res.model,
        tokenizer=res.tokenizer,
        builtin=setting["builtin"],
        split=setting["split"],
        settings={"max_new_tokens": 8},
        progress=False,
    )
    assert 0 < ev.metrics["retain_prob"]["value"] < 1


# ----------------------------------------------------------------------------- forgetting

# (method, overrides, margin): the forget probability must drop by at least `margin` more than
# the retain probability. Settings are the presets' tiny-model defaults unless stated.
FORGETTING = [
    ("salun", {"train": {"lr": 1e-3}}, 0.05),
    ("graddiff", {"saliency": 0.5, "train": {"lr": 1e-3}}, 0.1),
    ("distill", {}, 0.2),
    ("task_vector", {}, 0.15),
    ("task_vector", {"peft": {"r": 8}, "train": {"lr": 1e-3}}, 0.1),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "method,overrides,margin",
    FORGETTING,
    ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(FORGETTING)],
)
def test_method_forgets_more_than_it_loses_on_retain(setting, method, overrides, margin):
    res = api.unlearn(
        setting["target"], method, builtin=setting["builtin"], overrides=overrides, progress=False
    )
    after = _probs(res.model, setting["tok"], setting["request"])
    before = setting["before"]
    drop_f, drop_r = before["forget"] - after["forget"], before["retain"] - after["retain"]
    print(
        f"\n{method} {overrides}: forget {before['forget']:.3f}->{after['forget']:.3f}, "
        f"retain {before['retain']:.3f}->{after['retain']:.3f}"
    )
    assert drop_f - drop_r >= margin


@pytest.mark.slow
def test_sisa_ensemble_forgets_exactly_what_it_deletes(setting):
    """SISA: the ensemble before vs after deleting forget10 (its own 'target')."""
    from obliviate.config import TrainConfig, from_dict
    from obliviate.methods.sisa import SISA_TINY_TRAIN, SISAEnsemble
    from obliviate.models.loading import load_model

    req = setting["request"]
    ens, info = SISAEnsemble.fit(
        load_model(setting["target"]),
        setting["tok"],
        req.full,
        from_dict(TrainConfig, SISA_TINY_TRAIN),
        shards=4,
        slices=4,
    )
    before = _probs(ens, setting["tok"], req)
    report = ens.forget(req.forget)
    after = _probs(ens, setting["tok"], req)
    holdout = _prob(ens, setting["tok"], req.holdout)
    print(
        f"\nsisa: forget {before['forget']:.3f}->{after['forget']:.3f}, retain "
        f"{before['retain']:.3f}->{after['retain']:.3f}, holdout {holdout:.3f}; steps "
        f"{report.steps} vs full retrain {report.full_retrain_steps} (initial {info['steps']})"
    )
    assert (before["forget"] - after["forget"]) - (before["retain"] - after["retain"]) >= 0.1
    assert after["forget"] < 2 * holdout  # forgotten items look like never-seen ones
    assert report.steps <= report.full_retrain_steps
