"""Gradient-based forget objectives and their paper presets (reference.md §2.1)."""

from __future__ import annotations

from typing import Any

from obliviate.methods import functional as F
from obliviate.methods.base import MethodPreset, Term, UnlearnJob, forward, register_preset
from obliviate.registry import FORGET_TERMS

# Training defaults for the tiny CPU models: the community's lr 1e-5 / 10 epochs is tuned for
# 7B models; tiny models trained from scratch need larger steps (cpu-budget.md). Override with
# train.lr=... for real models.
TINY_TRAIN = {"lr": 5e-5, "epochs": 5, "batch_size": 32, "warmup_epochs": 1, "scheduler": "linear"}


@FORGET_TERMS.register("ga", description="gradient ascent: -NLL on D_f")
class GradientAscentTerm(Term):
    """L_f = −NLL(D_f), HF token mean over the batch (Jang+ 2022, arXiv 2210.01504)."""

    name = "ga"

    def __call__(self, model: Any, batch: dict, job: UnlearnJob) -> Any:
        return F.ga_loss(forward(model, batch).logits, batch["labels"])


register_preset(MethodPreset(
    "ga", "Gradient ascent on the forget set, no retain term", "Jang+ 2022, arXiv 2210.01504",
    forget="ga", retain=None, train=TINY_TRAIN,
))
register_preset(MethodPreset(
    "graddiff", "Gradient difference: ascent on forget + descent on retain (GDR)",
    "Maini+ 2024 (TOFU), arXiv 2401.06121", forget="ga", retain="nll", train=TINY_TRAIN,
))
register_preset(MethodPreset(
    "ga_kl", "Gradient ascent + KL(pi_ref || pi_theta) on retain (KLR)",
    "Maini+ 2024 (TOFU), arXiv 2401.06121", forget="ga", retain="kl", train=TINY_TRAIN,
))
