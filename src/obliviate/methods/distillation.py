"""Unlearning by distillation from a competent and an incompetent teacher ("bad teaching",
Chundawat et al. AAAI 2023, arXiv 2205.08096; docs/methods.md).

The student starts as a copy of the target (the paper initialises it with the competent
teacher's weights). The paper's loss for a sample x with forget label l_f ∈ {0, 1} is

    L(x, l_f) = (1 − l_f) · KL(T_s(x) ∥ S(x)) + l_f · KL(T_d(x) ∥ S(x))

with T_s the competent teacher (the original model), T_d an incompetent teacher (a randomly
initialised model of the same architecture) and S the student, on softmax outputs at
temperature τ (the paper uses τ = 1, Adam, lr 1e-4, one epoch over D_f plus a subset of D_r).

For a language model the KL is taken per answer position (next-token distributions) and
averaged over the valid answer positions (:func:`obliviate.methods.functional.
distillation_loss`, which includes Hinton's τ² factor: τ = 1 is the plain KL). The paper's
mixed batches become the composition used by every gradient method here:

    L = γ · mean_t KL(T_d ∥ S)  on a forget batch  +  α · mean_t KL(T_s ∥ S)  on a retain batch

with γ = α = 1 (equal-sized forget and retain batches, so the two sample kinds weigh as in a
50/50 mixed batch). ``teacher="uniform"`` replaces the random network by the uniform
distribution (KL(U ∥ S)), which needs no second model in memory.
"""

from __future__ import annotations

import copy
from typing import Any

from obliviate.config import TrainConfig
from obliviate.data.templates import Encoded
from obliviate.methods import functional as F
from obliviate.methods.base import MethodPreset, Term, UnlearnJob, forward
from obliviate.methods.job import _unwrap

BAD_TEACHER_PAPER = "Chundawat+ AAAI 2023 (bad teaching), arXiv 2205.08096"


def random_teacher(model: Any, seed: int = 0) -> Any:
    """A randomly initialised, frozen model of ``model``'s architecture (the incompetent
    teacher): ``type(model)(config)`` under ``torch.manual_seed(seed)``, same dtype/device."""
    import torch

    from obliviate.scoring import model_device

    base = _unwrap(model)
    if not hasattr(base, "config"):
        raise ValueError("the random teacher needs a Hugging Face model with a .config")
    dtype = next(base.parameters()).dtype
    torch.manual_seed(seed)
    teacher = type(base)(copy.deepcopy(base.config))
    teacher.to(device=model_device(base), dtype=dtype)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


class BadTeacherTerm(Term):
    """KL(T_d ∥ S) per answer position on a forget batch (Chundawat+ 2023, arXiv 2205.08096,
    eq. 2 with l_f = 1), mean over valid answer positions, temperature τ (τ² scaled).

    ``teacher``: ``"random"`` (a randomly initialised copy of the architecture, seeded by
    ``seed``; the paper's choice) or ``"uniform"`` (uniform next-token distribution)."""

    description = "KL(incompetent teacher || student) on D_f"
    name = "bad_teacher"

    def __init__(self, temperature: float = 1.0, teacher: str = "random", seed: int = 0) -> None:
        if teacher not in ("random", "uniform"):
            raise ValueError(f"bad_teacher teacher must be 'random' or 'uniform', got {teacher!r}")
        self.temperature, self.teacher, self.seed = temperature, teacher, seed
        self.model: Any = None

    def setup(self, job: UnlearnJob, forget: list[Encoded], cfg: TrainConfig) -> None:
        if self.teacher == "random":
            self.model = random_teacher(job.model, self.seed)

    def __call__(self, model: Any, batch: dict, job: UnlearnJob) -> Any:
        import torch

        logits = forward(model, batch).logits
        if self.model is None:  # uniform: equal logits everywhere
            target = torch.zeros_like(logits)
        else:
            dev = next(self.model.parameters()).device
            with torch.no_grad():
                target = forward(self.model, {k: v.to(dev) for k, v in batch.items()}).logits
            target = target.to(logits.device)
        return F.distillation_loss(logits, target, batch["labels"], self.temperature)


class DistillRetainTerm(Term):
    """KL(T_s ∥ S) per answer position on a retain batch, T_s = the frozen original model
    (Chundawat+ 2023, eq. 2 with l_f = 0); mean over valid answer positions, τ² scaled. With
    τ = 1 it equals the ``kl`` retain term."""

    description = "KL(original model || student) on D_r, temperature tau"
    name = "kd"
    needs_reference = True

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = temperature

    def __call__(self, model: Any, batch: dict, job: UnlearnJob) -> Any:
        import torch

        logits = forward(model, batch).logits
        ref = job.reference_model()
        dev = next(ref.parameters()).device
        with torch.no_grad():
            target = forward(ref, {k: v.to(dev) for k, v in batch.items()}).logits
        return F.distillation_loss(
            logits, target.to(logits.device), batch["labels"], self.temperature
        )


# Tiny CPU models: a larger step than the paper's lr 1e-4 one-epoch recipe (override for real
# models: train.lr=1e-4 train.epochs=1).
DISTILL_TINY_TRAIN = {
    "lr": 1e-3,
    "epochs": 5,
    "batch_size": 32,
    "warmup_epochs": 0,
    "scheduler": "constant",
}

DISTILL = MethodPreset(
    "distill",
    "Bad-teacher distillation: student matches a random teacher on forget, the target on retain",
    BAD_TEACHER_PAPER,
    forget="bad_teacher",
    retain="kd",
    gamma=1.0,
    alpha=1.0,
    train=DISTILL_TINY_TRAIN,
)
