"""Bad-teacher distillation (Chundawat+ 2023, arXiv 2205.08096): the forget term against a
uniform / random incompetent teacher and the retain term against the original model."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import pytest
import torch

from obliviate.data.types import QAItem, UnlearningRequest
from obliviate.methods.base import UnlearnJob, build_method
from obliviate.methods.distillation import BadTeacherTerm, DistillRetainTerm, random_teacher


class Fixed:
    """A stand-in model that returns fixed logits."""

    def __init__(self, logits):
        self.logits = logits

    def __call__(self, input_ids, attention_mask):
        return SimpleNamespace(logits=self.logits)


def _kl_uniform(z):
    """KL(U || softmax(z)) = sum_v (1/V)(log(1/V) - log s_v), by hand."""
    s = [math.exp(v) / sum(math.exp(u) for u in z) for v in z]
    return sum((1 / len(z)) * (math.log(1 / len(z)) - math.log(p)) for p in s)


def test_uniform_teacher_loss_by_hand_and_unchanged_by_padding():
    z = [[0.0, 1.0, 2.0], [1.0, -1.0, 0.5], [9.0, 9.0, 9.0]]
    logits = torch.tensor([z])
    labels = torch.tensor([[-100, 1, 2]])  # positions 0 and 1 predict the answer tokens
    batch = {
        "input_ids": torch.zeros(1, 3, dtype=torch.long),
        "attention_mask": torch.ones(1, 3),
        "labels": labels,
    }
    term = BadTeacherTerm(teacher="uniform")
    want = (_kl_uniform(z[0]) + _kl_uniform(z[1])) / 2
    assert float(term(Fixed(logits), batch, None)) == pytest.approx(want, rel=1e-6)
    padded = torch.cat([logits, torch.full((1, 2, 3), float("nan"))], 1)
    pbatch = {
        "input_ids": torch.zeros(1, 5, dtype=torch.long),
        "attention_mask": torch.ones(1, 5),
        "labels": torch.tensor([[-100, 1, 2, -100, -100]]),
    }
    assert float(term(Fixed(padded), pbatch, None)) == pytest.approx(want, rel=1e-6)
    # temperature: tau^2 * KL(U || softmax(z / tau))
    t2 = BadTeacherTerm(teacher="uniform", temperature=2.0)
    want2 = 4 * (_kl_uniform([v / 2 for v in z[0]]) + _kl_uniform([v / 2 for v in z[1]])) / 2
    assert float(t2(Fixed(logits), batch, None)) == pytest.approx(want2, rel=1e-6)
    with pytest.raises(ValueError, match="'random' or 'uniform'"):
        BadTeacherTerm(teacher="bad")


@pytest.fixture(scope="module")
def micro():
    from transformers import LlamaConfig, LlamaForCausalLM

    from obliviate.models.tiny import train_tokenizer

    items = [
        QAItem(f"Which song does bird {i} sing?", f"Bird {i} sings {x}.")
        for i, x in zip(range(8), ["la", "do", "mi", "re"] * 2)
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
    model = LlamaForCausalLM(cfg)
    req = UnlearningRequest(forget=items[:4], retain=items[4:])
    return {"tok": tok, "model": model, "req": req}


def _batch(micro, items):
    from obliviate.training import collate_encoded

    job = UnlearnJob(micro["model"], micro["tok"], micro["req"], progress=False)
    return collate_encoded(
        job.encode_items(items), list(range(len(items))), micro["tok"].pad_token_id
    )


def test_random_teacher_is_seeded_frozen_and_not_the_model(micro):
    from obliviate.methods import functional as F

    a, b = random_teacher(micro["model"], seed=1), random_teacher(micro["model"], seed=1)
    c = random_teacher(micro["model"], seed=2)
    sa, sb, sc = (dict(m.named_parameters()) for m in (a, b, c))
    assert all(torch.equal(sa[n], sb[n]) for n in sa)
    assert any(not torch.equal(sa[n], sc[n]) for n in sa)
    assert all(not p.requires_grad for p in a.parameters()) and not a.training
    assert any(not torch.equal(sa[n], p) for n, p in micro["model"].named_parameters())
    job = UnlearnJob(micro["model"], micro["tok"], micro["req"], progress=False)
    term = BadTeacherTerm(seed=1)
    term.setup(job, [], None)
    batch = _batch(micro, micro["req"].forget)
    got = term(micro["model"], batch, job)
    with torch.no_grad():
        teacher = a(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    student = micro["model"](
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).logits
    assert torch.allclose(got, F.distillation_loss(student, teacher, batch["labels"]))
    assert float(got.detach()) > 0


def test_retain_term_is_the_kl_to_the_original_model(micro):
    from obliviate.methods import functional as F
    from obliviate.methods.retain import RetainKL

    job = UnlearnJob(copy.deepcopy(micro["model"]), micro["tok"], micro["req"], progress=False)
    job.reference_model()
    with torch.no_grad():  # the student drifts away from the original
        for p in job.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch = _batch(micro, micro["req"].retain)
    kd, kl = DistillRetainTerm()(job.model, batch, job), RetainKL()(job.model, batch, job)
    assert float(kd) > 0 and torch.allclose(kd, kl)
    hot = DistillRetainTerm(temperature=3.0)(job.model, batch, job)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    s = job.model(input_ids=ids, attention_mask=mask).logits
    t = job.reference_model()(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(hot, F.distillation_loss(s, t, batch["labels"], 3.0))


def test_distill_preset_trains_the_student_and_keeps_the_teacher(micro):
    from obliviate.registry import METHODS

    d = METHODS.get("distill").defaults()
    assert (d["forget"], d["retain"], d["forget_params"]["teacher"]) == (
        "bad_teacher",
        "kd",
        "random",
    )
    job = UnlearnJob(copy.deepcopy(micro["model"]), micro["tok"], micro["req"], progress=False)
    theta0 = {n: p.detach().clone() for n, p in job.model.named_parameters()}
    out = build_method("distill", {"train": {"max_steps": 2, "batch_size": 4}}).unlearn(job)
    assert out.info["steps"] == 2 and all("retain_loss" in r for r in out.train_log)
    assert any(not torch.equal(p.detach(), theta0[n]) for n, p in job.model.named_parameters())
    ref = dict(job.reference_model().named_parameters())
    assert all(torch.equal(ref[n], theta0[n]) for n in theta0)
