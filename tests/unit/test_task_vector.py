"""Task-vector negation (Ilharco+ 2023, arXiv 2212.04089) and the adapter helpers it uses:
θ* = θ_0 − λ(θ_ft − θ_0) by hand, on full weights and on LoRA adapters, merge and save."""

from __future__ import annotations

import copy

import pytest
import torch

from obliviate.data.types import QAItem, UnlearningRequest
from obliviate.methods.base import UnlearnJob, build_method
from obliviate.methods.task_vector import negate_task_vector, negate_tensor
from obliviate.models.selection import (
    apply_peft,
    finish_adapter,
    is_peft_model,
    merge_adapter,
    scale_lora,
)


def test_negate_tensor_by_hand():
    t0, tft = torch.tensor([1.0, 2.0]), torch.tensor([1.5, 1.0])
    assert negate_tensor(t0, tft, 2.0).tolist() == [0.0, 4.0]  # [1 - 2*0.5, 2 - 2*(-1)]
    assert negate_tensor(t0, tft, 0.0).tolist() == [1.0, 2.0]
    assert negate_tensor(t0, tft, -1.0).tolist() == [1.5, 1.0]  # λ = -1 gives θ_ft back
    ints = torch.tensor([3, 4])
    assert negate_tensor(ints, torch.tensor([5, 9]), 5.0).tolist() == [3, 4]  # skipped
    half = negate_tensor(t0.bfloat16(), tft.bfloat16(), 2.0)
    assert half.dtype == torch.bfloat16 and half.float().tolist() == [0.0, 4.0]
    with pytest.raises(ValueError, match="shapes differ"):
        negate_tensor(t0, torch.zeros(3), 1.0)


def test_negate_task_vector_over_state_dicts():
    out = negate_task_vector(
        {"w": torch.tensor([1.0]), "step": torch.tensor(7)},
        {"w": torch.tensor([3.0]), "step": torch.tensor(9)},
        scale=5.0,
    )
    assert out["w"].tolist() == [-9.0] and int(out["step"]) == 7
    with pytest.raises(ValueError, match="state dicts differ"):
        negate_task_vector({"a": torch.zeros(1)}, {"b": torch.zeros(1)})


@pytest.fixture(scope="module")
def micro():
    from transformers import LlamaConfig, LlamaForCausalLM

    from obliviate.models.tiny import train_tokenizer

    items = [
        QAItem(f"What does robot {i} build?", f"Robot {i} builds {x}.")
        for i, x in zip(range(8), ["boats", "kites", "clocks", "lamps"] * 2)
    ]
    tok = train_tokenizer([it.question + " " + it.answer for it in items], vocab_size=300)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    return {"tok": tok, "model": LlamaForCausalLM(cfg), "items": items}


TRAIN = {"lr": 1e-2, "max_steps": 3, "batch_size": 4, "warmup_epochs": 0}


def _job(micro):
    req = UnlearningRequest(forget=micro["items"][:4], retain=micro["items"][4:])
    return UnlearnJob(copy.deepcopy(micro["model"]), micro["tok"], req, progress=False)


def _state(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_full_weight_negation_equals_the_formula_with_the_finetuned_copy(micro):
    theta0 = _state(micro["model"])
    ft_job = _job(micro)
    out = build_method("task_vector", {"scale": -1.0, "train": TRAIN}).unlearn(ft_job)  # = θ_ft
    theta_ft = _state(ft_job.model)
    assert out.info["finetune_steps"] == 3 and out.info["task_vector_norm"] > 0
    assert any(not torch.equal(theta_ft[n], theta0[n]) for n in theta0)
    job = _job(micro)
    out = build_method("task_vector", {"train": TRAIN}).unlearn(job)  # default λ = 5
    assert out.info["scale"] == 5.0 and out.trainable_params == sum(
        t.numel() for t in theta0.values()
    )
    for n, p in job.model.named_parameters():
        want = theta0[n] - 5.0 * (theta_ft[n] - theta0[n])
        assert torch.allclose(p.detach(), want, atol=1e-6), n
    zero = _job(micro)
    build_method("task_vector", {"scale": 0.0, "train": TRAIN}).unlearn(zero)
    assert all(torch.equal(p.detach(), theta0[n]) for n, p in zero.model.named_parameters())


def test_lora_negation_scales_the_adapter_update_by_minus_lambda(micro):
    ft = _job(micro)
    build_method("task_vector", {"scale": -1.0, "peft": {"r": 4}, "train": TRAIN}).unlearn(ft)
    assert is_peft_model(ft.model)
    job = _job(micro)
    out = build_method("task_vector", {"scale": 3.0, "peft": {"r": 4}, "train": TRAIN}).unlearn(job)
    assert is_peft_model(job.model)  # saved as an adapter unless merge is asked
    assert out.trainable_params == sum(
        p.numel() for n, p in job.model.named_parameters() if "lora_" in n
    )
    w0 = _state(micro["model"])
    w_ft = _state(merge_adapter(ft.model))
    w_neg = _state(merge_adapter(job.model))
    assert any(not torch.equal(w_ft[n], w0[n]) for n in w0)
    for n in w0:
        assert torch.allclose(w_neg[n], w0[n] - 3.0 * (w_ft[n] - w0[n]), atol=1e-5), n


def test_lora_negation_with_merge_returns_a_plain_model(micro):
    job = _job(micro)
    build_method("task_vector", {"peft": {"r": 4, "merge": True}, "train": TRAIN}).unlearn(job)
    assert not is_peft_model(job.model)
    assert type(job.model).__name__ == "LlamaForCausalLM"


def test_scale_lora_is_linear_in_the_update_and_rejects_other_adapters(micro):
    model = apply_peft(copy.deepcopy(micro["model"]), {"r": 2})
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_()
    x = torch.tensor([[1, 5, 9, 12]])
    base = micro["model"](input_ids=x).logits
    w0 = _state(micro["model"])
    w1 = _state(merge_adapter(copy.deepcopy(model)))
    assert scale_lora(model, -3.0) == 7  # q, k, v, o, gate, up, down of the one layer
    w3 = _state(merge_adapter(copy.deepcopy(model)))
    for n in w0:
        assert torch.allclose(w3[n] - w0[n], -3.0 * (w1[n] - w0[n]), atol=1e-5)
    assert not torch.allclose(model(input_ids=x).logits, base)
    with pytest.raises(ValueError, match="PEFT model"):
        scale_lora(micro["model"], 2.0)
    with pytest.raises(ValueError, match="LoRA adapters only"):
        scale_lora(apply_peft(copy.deepcopy(micro["model"]), {"type": "ia3"}), 2.0)
    with pytest.raises(ValueError, match="DoRA"):
        scale_lora(apply_peft(copy.deepcopy(micro["model"]), {"r": 2, "use_dora": True}), 2.0)


def test_finish_adapter_merges_only_when_asked(micro):
    x = torch.tensor([[1, 5, 9]])
    plain = apply_peft(copy.deepcopy(micro["model"]), {"r": 2})
    assert finish_adapter(plain) is plain
    marked = apply_peft(copy.deepcopy(micro["model"]), {"r": 2, "merge": True})
    with torch.no_grad():
        for n, p in marked.named_parameters():
            if "lora_B" in n:
                p.normal_()
    want = marked(input_ids=x).logits
    merged = finish_adapter(marked)
    assert not is_peft_model(merged)
    assert torch.allclose(merged(input_ids=x).logits, want, atol=1e-5)
    with pytest.raises(ValueError, match=r"peft.merge must be true or false"):
        apply_peft(copy.deepcopy(micro["model"]), {"r": 2, "merge": "yes"})
