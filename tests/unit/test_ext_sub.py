"""Ext-Sub (Hu+ 2024, arXiv 2308.08090): the full LoRA updates, the extraction applied to a
model's weights on hand-built updates, and the method end to end on a micro Llama
(docs/methods.md, ``ext_sub``). The extraction formula itself: tests/unit/test_adapter_losses.py."""

from __future__ import annotations

import copy

import pytest
import torch
from micro_models import micro_llama  # tests/unit/micro_models.py

from obliviate.data.types import UnlearningRequest
from obliviate.methods import functional as F
from obliviate.methods.base import UnlearnJob, build_method
from obliviate.methods.ext_sub import apply_ext_sub, lora_updates
from obliviate.models.selection import apply_peft, merge_adapter


@pytest.fixture(scope="module")
def micro():
    return micro_llama()


TRAIN = {"lr": 1e-2, "max_steps": 3, "batch_size": 4, "warmup_epochs": 0, "checkpoint": False}


def test_lora_updates_are_the_merged_weight_differences(micro):
    w0 = {n: p.detach().clone() for n, p in micro["model"].named_parameters()}
    model = apply_peft(copy.deepcopy(micro["model"]), {"r": 2, "lora_alpha": 6})
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_()
    upd = lora_updates(model, "default")
    assert len(upd) == 7  # q, k, v, o, gate, up, down of the one block
    merged = dict(merge_adapter(model).named_parameters())
    for name, delta in upd.items():
        key = name.removeprefix("base_model.model.") + ".weight"
        assert torch.allclose(merged[key] - w0[key], delta, atol=1e-6), name
    with pytest.raises(ValueError, match="no LoRA layer"):
        lora_updates(apply_peft(copy.deepcopy(micro["model"]), {"r": 2}), "other")


def test_apply_ext_sub_adds_expert_minus_scaled_deficiency(micro):
    model = copy.deepcopy(micro["model"])
    w = model.model.layers[0].mlp.down_proj.weight
    w0 = w.detach().clone()
    expert = torch.zeros_like(w0)
    anti = torch.zeros_like(w0)
    expert[0, :2] = torch.tensor([1.0, 0.0])
    anti[0, :2] = torch.tensor([1.0, 1.0])
    anti[1, 0] = -2.0  # the expert left row 1 at zero: all deficiency
    norm = apply_ext_sub(
        model,
        {"model.layers.0.mlp.down_proj": expert},
        {"model.layers.0.mlp.down_proj": anti},
        scale=2.0,
    )
    d = w.detach() - w0
    r2 = 2.0**0.5
    assert d[0, :2].tolist() == [pytest.approx(r2, abs=1e-6), pytest.approx(-1.0, abs=1e-6)]
    assert d[1, 0].item() == pytest.approx(4.0)  # 0 - 2 * (-2)
    assert torch.count_nonzero(d[2:]) == 0 and torch.count_nonzero(d[:, 2:]) == 0
    # removed deficiency: rows (1/2 - √2/2, 1/2) and (-2, 0)
    assert norm == pytest.approx(((0.5 - r2 / 2) ** 2 + 0.25 + 4.0) ** 0.5, abs=1e-6)
    with pytest.raises(ValueError, match="different modules"):
        apply_ext_sub(model, {"a": expert}, {"b": anti})


def test_ext_sub_method_end_to_end(micro):
    def run(scale: float) -> tuple[dict, object]:
        req = UnlearningRequest(forget=micro["items"][:4], retain=micro["items"][4:])
        job = UnlearnJob(copy.deepcopy(micro["model"]), micro["tok"], req, progress=False)
        method = build_method("ext_sub", {"scale": scale, "peft": {"r": 2}, "train": TRAIN})
        out = method.unlearn(job)
        return {n: p.detach().clone() for n, p in out.model.named_parameters()}, out

    w0 = {n: p.detach() for n, p in micro["model"].named_parameters()}
    plus, _ = run(0.0)  # θ0 + ΔW⁺ (the expert alone)
    ext, out1 = run(1.0)
    assert type(out1.model).__name__ == "LlamaForCausalLM"  # a plain model: adapters gone
    assert out1.info["expert_steps"] == 3 and out1.info["anti_expert_steps"] == 3
    assert out1.info["modules"] == 7 and out1.info["deficiency_norm"] > 0
    assert all(p.requires_grad for p in out1.model.parameters())  # as loaded
    assert any(not torch.equal(plus[n], w0[n]) for n in w0)
    moved = [n for n in w0 if not torch.allclose(ext[n], plus[n])]
    assert moved and all("proj" in n for n in moved)  # only the adapted linear weights
    two, _ = run(2.0)  # the result is linear in λ: θ(2) - θ(0) = 2 (θ(1) - θ(0))
    for n in moved:
        assert torch.allclose(two[n] - plus[n], 2 * (ext[n] - plus[n]), atol=1e-5)


def test_ext_sub_needs_a_retain_set_and_plain_lora(micro):
    req = UnlearningRequest(forget=micro["items"][:4], retain=[])
    job = UnlearnJob(copy.deepcopy(micro["model"]), micro["tok"], req, progress=False)
    with pytest.raises(ValueError, match="retain set"):
        build_method("ext_sub", {"train": TRAIN}).unlearn(job)
    with pytest.raises(ValueError, match="LoRA adapters only"):
        build_method("ext_sub", {"peft": {"type": "ia3"}})
    with pytest.raises(ValueError, match="plain model"):
        build_method("ext_sub", {"peft": {"r": 2, "merge": True}})
    assert F.ext_sub_update(torch.ones(1, 2), torch.ones(1, 2)).tolist() == [[1.0, 1.0]]
