"""MMUnlearner (Huo+ 2025, "MMUnlearner: Reformulating Multimodal Machine Unlearning in the Era
of Multimodal Large Language Models", arXiv 2502.11051): forget the *visual* pattern of a
person while keeping what the language model knows about them in text.

Gradient ascent on the forget people's image+text items, restricted by a weight saliency map
computed once at θ_0 from diagonal Fisher estimates (mean squared gradients of the answer NLL
over batches):

    F_f = (1/|B_f|) Σ_b (∇_θ L(b))²     over batches b of the forget image+text items
    F_p = (1/|B_p|) Σ_b (∇_θ L(b))²     over batches of the preserve set of θ's module
    m   = 1[(F_f + ε) / (F_p + ε) ≥ γ]    (γ = ``threshold`` = 1, ε = 1e-15)
    θ ← θ − η · m ⊙ ∇_θ(−L_NLL(D_f^image))

The preserve set is the retain people's image+text items for the vision tower and projector,
and every text-only item (forget people included: their textual knowledge is to be kept) plus
the retain image+text items for the language model: the saliency map is "jointly restricted by
the remaining concepts and textual knowledge" (the paper's abstract; the released code's
``Mask_Our`` builds the same ratio with threshold 1). Masked-out weights get no gradient and are
restored after every optimiser step (so weight decay cannot move them either), through
:class:`obliviate.methods.saliency.SaliencyHook`. ``alpha`` > 0 adds the retain NLL (GradDiff
style; the paper's method is plain ascent, ``alpha`` = 0).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from obliviate.config import TrainConfig, from_dict
from obliviate.data.collate import pad_id_of
from obliviate.data.templates import Encoded
from obliviate.methods.job import UnlearnJob, UnlearnOutput, forward
from obliviate.multimodal.encoding import has_image

EPS = 1e-15
MMUNLEARNER_TRAIN = {
    "lr": 2.5e-4,
    "epochs": 10,
    "batch_size": 32,
    "warmup_epochs": 1,
    "scheduler": "linear",
    "checkpoint": False,
}


def fisher_diagonal(
    params: Sequence[Any], loss_of: Callable[[Any], Any], batches: Sequence[Any]
) -> list[Any]:
    """``(1/len(batches)) Σ_b (∇ loss_of(b))²`` for each parameter (a batch that does not
    reach a parameter adds 0); gradients are cleared afterwards."""
    import torch

    out = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    if not batches:
        return out
    for batch in batches:
        for p in params:
            p.grad = None
        loss = loss_of(batch)
        if not loss.requires_grad:  # the batch does not reach these parameters
            continue
        loss.backward()
        with torch.no_grad():
            for acc, p in zip(out, params):
                if p.grad is not None:
                    acc += p.grad.detach().float() ** 2 / len(batches)
    for p in params:
        p.grad = None
    return out


def saliency_ratio_masks(
    forget: Sequence[Any], preserve: Sequence[Any], threshold: float = 1.0
) -> list[Any]:
    """``m = (F_f + ε) / (F_p + ε) ≥ threshold`` elementwise, per tensor (module docstring)."""
    if threshold <= 0:
        raise ValueError(f"threshold={threshold}: the saliency ratio threshold must be > 0")
    return [(f + EPS) / (p + EPS) >= threshold for f, p in zip(forget, preserve)]


class MMUnlearner:
    """The method object (``unlearn(job)``) of :mod:`obliviate.multimodal.mmunlearner`."""

    name = "mmunlearner"
    description = "MMUnlearner: saliency-masked ascent on image+text forget items"
    paper = "Huo+ 2025, arXiv 2502.11051"

    def __init__(
        self,
        part: str = "both",
        threshold: float = 1.0,
        alpha: float = 0.0,
        train: dict[str, Any] | None = None,
    ) -> None:
        from obliviate.multimodal.methods import part_pattern

        self.pattern = part_pattern(part)
        if threshold <= 0:
            raise ValueError(f"threshold={threshold}: the saliency ratio threshold must be > 0")
        self.threshold, self.alpha = float(threshold), float(alpha)
        self.train = from_dict(TrainConfig, {**MMUNLEARNER_TRAIN, **(train or {})}, "train")

    def settings(self) -> dict[str, Any]:
        """The resolved settings (what a run's config.yaml records)."""
        from obliviate.config import to_dict

        return {
            "method": self.name,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "train": to_dict(self.train),
        }

    def _batches(self, job: UnlearnJob, items: list[Any]) -> list[dict[str, Any]]:
        from obliviate.training import collate_encoded

        enc = job.encode_items(items, self.train.max_length)
        size, pad = self.train.batch_size, pad_id_of(job.tokenizer)
        return [
            collate_encoded(enc[i : i + size], list(range(i, min(i + size, len(enc)))), pad)
            for i in range(0, len(enc), size)
        ]

    def masks(self, job: UnlearnJob) -> tuple[list[Any], list[Any]]:
        """The trainable parameters and their saliency masks at the current weights."""
        from obliviate.methods import functional as F
        from obliviate.multimodal.methods import PARTS

        model, req = job.model, job.request
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        params = [p for _, p in named]
        forget_img = [it for it in req.forget if has_image(it)]
        if not forget_img:
            raise ValueError("mmunlearner forgets image+text items; the forget set has none")
        retain_img = [it for it in req.retain if has_image(it)]
        texts = [it for it in (req.full or req.forget + req.retain) if not has_image(it)]

        def nll(batch: dict[str, Any]) -> Any:
            return F.nll_loss(forward(model, batch).logits, batch["labels"])

        was = model.training
        model.eval()
        f_forget = fisher_diagonal(params, nll, self._batches(job, forget_img))
        f_vision = fisher_diagonal(params, nll, self._batches(job, retain_img))
        f_language = fisher_diagonal(params, nll, self._batches(job, texts + retain_img))
        model.train(was)
        vision = re.compile(str(PARTS["vision"]))
        preserve = [
            fv if vision.search(n) else fl for (n, _), fv, fl in zip(named, f_vision, f_language)
        ]
        return params, saliency_ratio_masks(f_forget, preserve, self.threshold)

    def unlearn(self, job: UnlearnJob) -> UnlearnOutput:
        from obliviate.methods import functional as F
        from obliviate.methods.saliency import SaliencyHook
        from obliviate.models.selection import select_trainable
        from obliviate.training import train_loop

        if self.pattern is not None:
            select_trainable(job.model, self.pattern)
        params, masks = self.masks(job)
        frozen = [p.detach().masked_select(~m).clone() for p, m in zip(params, masks)]
        kept, total = sum(int(m.sum()) for m in masks), sum(m.numel() for m in masks)
        hook = SaliencyHook(params, masks, frozen, kept, total, self.threshold)
        forget: list[Encoded] = job.encode_items(
            [it for it in job.request.forget if has_image(it)], self.train.max_length
        )
        retain = job.encode_items(job.request.retain, self.train.max_length) if self.alpha else None

        def loss(m: Any, fb: dict, rb: dict | None, _step: int) -> tuple[Any, dict]:
            lf = F.ga_loss(forward(m, fb).logits, fb["labels"])
            logs = {"forget_loss": lf.detach()}
            if rb is None:
                return lf, logs
            lr = F.nll_loss(forward(m, rb).logits, rb["labels"])
            logs["retain_loss"] = lr.detach()
            return lf + self.alpha * lr, logs

        result = train_loop(
            job.model,
            loss,
            forget,
            self.train,
            pad_id_of(job.tokenizer),
            retain_set=retain,
            hooks=[hook],
            desc="unlearning",
            progress=job.progress,
        )
        info = {"steps": result.steps, "saliency_kept": kept / total if total else 0.0}
        return UnlearnOutput(result.model, result.log, kept, result.stopped, info)
