"""SalUn weight saliency (Fan+ 2024, arXiv 2310.12508): the global threshold, the masks, the
hooks (masked weights never move, not even by weight decay), gradients at θ_0, the
random-answer base loss, the ``salun`` preset and the ``trainable`` module restriction."""

from __future__ import annotations

import copy

import pytest
import torch

from obliviate.data.types import QAItem, UnlearningRequest
from obliviate.methods.base import UnlearnJob, build_method
from obliviate.methods.saliency import (
    build_saliency_hook,
    forget_gradient_scores,
    global_threshold,
    saliency_masks,
)
from obliviate.methods.salun import RandomAnswerTerm

SCORES = [torch.tensor([0.5, 0.1]), torch.tensor([[0.3, 0.9], [0.0, 0.3]])]
# all six values, descending: 0.9 0.5 0.3 0.3 0.1 0.0


@pytest.mark.parametrize("k,want", [(1, 0.9), (2, 0.5), (3, 0.3), (4, 0.3), (5, 0.1), (6, 0.0)])
def test_global_threshold_is_the_kth_largest_value_over_all_tensors(k, want):
    assert global_threshold(SCORES, k) == float(torch.tensor(want))  # the exact float32 value


def test_global_threshold_rejects_bad_input():
    with pytest.raises(ValueError, match=r"k must be in \[1, 6\]"):
        global_threshold(SCORES, 0)
    with pytest.raises(ValueError, match=r"k must be in \[1, 6\]"):
        global_threshold(SCORES, 7)
    with pytest.raises(ValueError, match="non-negative"):
        global_threshold([torch.tensor([0.2, -0.1])], 1)
    with pytest.raises(ValueError, match="finite"):
        global_threshold([torch.tensor([0.2, float("nan")])], 1)


def test_masks_keep_the_top_fraction_globally_with_ties_and_never_zero_gradients():
    masks, tau = saliency_masks(SCORES, 0.5)  # k = 3 -> tau = 0.3; the tie at 0.3 is kept
    assert tau == float(torch.tensor(0.3))
    assert masks[0].tolist() == [True, False]
    assert masks[1].tolist() == [[True, True], [False, True]]  # 4 kept: 0.9, 0.5, 0.3, 0.3
    masks, tau = saliency_masks(SCORES, 1.0)  # tau = 0: weights with zero gradient stay out
    assert tau == 0.0
    assert masks[0].tolist() == [True, True] and masks[1].tolist() == [[True, True], [False, True]]
    masks, _ = saliency_masks(SCORES, 0.01)  # at least one weight is always kept
    assert sum(int(m.sum()) for m in masks) == 1 and bool(masks[1][0, 1])
    for bad in (0, 1.5, -0.1, "half"):
        with pytest.raises(ValueError, match="saliency fraction"):
            saliency_masks(SCORES, bad)


def test_hook_zeroes_masked_gradients_and_restores_masked_weights_after_weight_decay():
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 3)
    theta0 = {n: p.detach().clone() for n, p in lin.named_parameters()}
    scores = [torch.rand_like(p) for p in lin.parameters()]
    hook = build_saliency_hook(list(zip(lin.parameters(), scores)), 0.5)
    assert hook.kept == 7 and hook.total == 15  # k = floor(15 * 0.5)
    opt = torch.optim.AdamW(lin.parameters(), lr=0.1, weight_decay=0.5)
    for _ in range(3):
        lin(torch.randn(5, 4)).pow(2).sum().backward()
        hook.after_backward(lin)
        for p, m in zip(lin.parameters(), hook.masks):
            assert torch.all(p.grad[~m] == 0)
        assert torch.cat([p.grad[m] for p, m in zip(lin.parameters(), hook.masks)]).ne(0).all()
        opt.step()
        opt.zero_grad()
        hook.after_step(lin)
    for (n, p), m in zip(lin.named_parameters(), hook.masks):
        assert torch.equal(p.detach()[~m], theta0[n][~m])  # bitwise: decay could not move them
        assert torch.all(p.detach()[m] != theta0[n][m])  # every salient weight moved


# ----------------------------------------------------------------------------- on a model


@pytest.fixture(scope="module")
def micro():
    from transformers import LlamaConfig, LlamaForCausalLM

    from obliviate.models.tiny import train_tokenizer

    items = [
        QAItem(f"Where does person {i} live?", f"Person {i} lives in {city}.")
        for i, city in zip(range(12), ["Oslo", "Lima", "Pune", "Baku"] * 3)
    ]
    tok = train_tokenizer([it.question + " " + it.answer for it in items], vocab_size=300)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
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


def _job(micro):
    req = UnlearningRequest(forget=micro["items"][:4], retain=micro["items"][4:])
    return UnlearnJob(copy.deepcopy(micro["model"]), micro["tok"], req, progress=False)


TRAIN = {"lr": 1e-2, "max_steps": 3, "batch_size": 4, "warmup_epochs": 0}


def test_gradient_scores_are_the_forget_gradient_at_theta0_and_change_nothing(micro):
    from obliviate.methods import functional as F
    from obliviate.training import collate_encoded

    job = _job(micro)
    method = build_method("ga", {"train": TRAIN})
    forget = job.encode_items(job.request.forget)
    before = {n: p.detach().clone() for n, p in job.model.named_parameters()}
    job.model.train()
    scored = forget_gradient_scores(job, method, forget, batch_size=8)  # one batch
    assert job.model.training  # mode restored
    assert all(p.grad is None for p in job.model.parameters())
    for n, p in job.model.named_parameters():
        assert torch.equal(p.detach(), before[n])
    ref = copy.deepcopy(micro["model"])
    batch = collate_encoded(forget, list(range(4)), micro["tok"].pad_token_id)
    ref.eval()
    F.ga_loss(
        ref(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
        batch["labels"],
    ).backward()
    for (_p, g), (n, rp) in zip(scored, ref.named_parameters()):
        assert torch.allclose(g, rp.grad.abs(), atol=1e-6), n


@pytest.mark.parametrize("fraction", [0.5, 0.2])
def test_composed_method_with_saliency_moves_only_salient_weights(micro, fraction):
    job = _job(micro)
    theta0 = {n: p.detach().clone() for n, p in job.model.named_parameters()}
    method = build_method(
        "graddiff", {"saliency": fraction, "train": {**TRAIN, "weight_decay": 0.1}}
    )
    probe = _job(micro)
    scored = forget_gradient_scores(probe, method, probe.encode_items(probe.request.forget), 32)
    masks, _ = saliency_masks([g for _, g in scored], fraction)
    out = method.unlearn(job)
    assert out.info["steps"] == 3
    moved = kept = 0
    for (n, p), m in zip(job.model.named_parameters(), masks):
        assert torch.equal(p.detach()[~m], theta0[n][~m]), f"{n}: a masked-out weight moved"
        moved += int((p.detach() != theta0[n]).sum())
        kept += int(m.sum())
    total = sum(m.numel() for m in masks)
    assert fraction * total * 0.9 <= kept <= fraction * total + 10
    assert moved > 0.9 * kept  # the salient weights did train


def test_trainable_pattern_restricts_training_to_matching_modules(micro):
    job = _job(micro)
    theta0 = {n: p.detach().clone() for n, p in job.model.named_parameters()}
    out = build_method("graddiff", {"trainable": r"layers\.1\.mlp\.", "train": TRAIN}).unlearn(job)
    changed = {n for n, p in job.model.named_parameters() if not torch.equal(p.detach(), theta0[n])}
    assert changed and all("layers.1.mlp." in n for n in changed)
    assert out.trainable_params == sum(
        p.numel() for n, p in job.model.named_parameters() if "layers.1.mlp." in n
    )
    with pytest.raises(ValueError, match="matches no parameter"):
        build_method("graddiff", {"trainable": "no_such_module", "train": TRAIN}).unlearn(
            _job(micro)
        )


# ----------------------------------------------------------------------------- salun


def test_random_answer_term_uses_a_fixed_mismatched_answer_and_the_nll_by_hand(micro):
    from obliviate.config import TrainConfig
    from obliviate.data.templates import encode
    from obliviate.methods import functional as F
    from obliviate.training import collate_encoded

    job = _job(micro)
    term = RandomAnswerTerm(seed=1)
    term.setup(job, [], TrainConfig())
    again = RandomAnswerTerm(seed=1)
    again.setup(job, [], TrainConfig())
    answers = [
        job.tokenizer.decode([t for t in e.labels if t >= 0], skip_special_tokens=True).strip()
        for e in term.encoded
    ]
    retain_answers = {it.answer for it in job.request.retain}
    for it, a in zip(job.request.forget, answers):
        assert a != it.answer and a in retain_answers
    assert [e.input_ids for e in term.encoded] == [e.input_ids for e in again.encoded]
    batch = collate_encoded(
        job.encode_items(job.request.forget[:2]), [2, 3], job.tokenizer.pad_token_id
    )
    got = term(job.model, batch, job)
    alt = [
        encode(job.tokenizer, it.question, a, job.template)
        for it, a in zip(job.request.forget[2:4], answers[2:4])
    ]
    ab = collate_encoded(alt, [2, 3], job.tokenizer.pad_token_id)
    want = F.nll_loss(
        job.model(input_ids=ab["input_ids"], attention_mask=ab["attention_mask"]).logits,
        ab["labels"],
    )
    assert torch.allclose(got, want)
    # the saliency of this term is the true answers' NLL gradient (SalUn eq. 5)
    true = F.nll_loss(
        job.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
        batch["labels"],
    )
    assert torch.allclose(term.saliency_loss(job.model, batch, job), true)


def test_salun_preset_defaults_and_overrides():
    from obliviate.registry import METHODS

    preset = METHODS.get("salun")
    d = preset.defaults()
    assert d["saliency"] == 0.5 and d["forget"] == "random_answer" and d["retain"] == "nll"
    m = preset.build({"saliency": 0.3, "alpha": 2.0, "train": {"lr": 1e-3}})
    assert m.saliency == 0.3 and m.alpha == 2.0 and m.train.lr == 1e-3
    assert type(m.forget).__name__ == "RandomAnswerTerm"
    with pytest.raises(ValueError, match="unknown method 'salun' setting 'salency'"):
        preset.build({"salency": 0.3})
    assert METHODS.entry("salun").paper.startswith("Fan+")
