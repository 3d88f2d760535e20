"""Retain objectives L_r: NLL and KL to the frozen reference (docs/metrics.md notation)."""

from __future__ import annotations

from typing import Any

from obliviate.methods import functional as F
from obliviate.methods.base import Term, UnlearnJob, forward


class RetainNLL(Term):
    """Gradient descent on D_r: mean token NLL over the batch's answer tokens."""

    description = "mean token NLL on a retain batch (gradient descent)"
    name = "nll"

    def loss_from_logits(self, logits: Any, batch: dict, job: UnlearnJob) -> Any:
        return F.nll_loss(logits, batch["labels"])


class RetainKL(Term):
    """KL(π_ref ∥ π_θ) averaged over valid answer positions only. TOFU's KL baseline,
    arXiv 2401.06121. The reference forward runs on each retain batch (retain samples vary)."""

    description = "KL(pi_ref || pi_theta) per answer position on D_r"
    name = "kl"
    needs_reference = True

    def loss_from_logits(self, logits: Any, batch: dict, job: UnlearnJob) -> Any:
        import torch

        ref = job.reference_model()
        with torch.no_grad():
            ref_logits = forward(ref, {k: v.to(ref.device) for k, v in batch.items()}).logits
        return F.kl_retain_loss(logits, ref_logits.to(logits.device), batch["labels"])
