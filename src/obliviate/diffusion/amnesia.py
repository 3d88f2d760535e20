"""Selective Amnesia (Heng & Soh 2023, arXiv 2305.10120): forgetting as continual learning.

The erased concept's prompts are trained to generate a *surrogate* distribution (images of
another concept, drawn by the frozen original model), while two continual-learning terms keep
everything else: elastic weight consolidation (EWC) with the original model's diagonal Fisher
information on the remembered data, and generative replay of the remembered prompts' images
from the frozen model (docs/diffusion.md, "Methods").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from obliviate.diffusion import functional as F
from obliviate.diffusion.eraser_base import (
    Eraser,
    _count,
    noised_batch,
    sample_pool,
    select_parameters,
    train_loop,
)


@dataclass(frozen=True)
class SAConfig:
    """Selective Amnesia defaults. The paper fine-tunes the whole UNet with λ large (Fisher
    values of a diffusion loss are tiny); the values below are unverified against the
    paper's Stable Diffusion configuration (docs/diffusion.md)."""

    steps: int = 200
    lr: float = 1e-5
    batch_size: int = 4
    ewc_lambda: float = 5e4  # λ of the EWC term
    replay_weight: float = 1.0  # weight of the generative-replay term
    fisher_samples: int = 50  # per-sample gradients in the Fisher estimate
    surrogate_images: int = 100  # frozen-model images of the surrogate concept
    replay_images: int = 100  # frozen-model images of the remembered prompts
    sample_steps: int = 50
    sample_guidance: float = 3.0
    parameters: str = "all"


class SelectiveAmnesia(Eraser):
    """Selective Amnesia: maximise the likelihood of surrogate images under the concept's
    prompts, plus generative replay of the remembered prompts, minus the EWC penalty (the
    objective of arXiv 2305.10120, §3.2):

    L(θ) = L_diff(θ; x ~ q(x | c_sur), c_f) + w · L_diff(θ; x ~ p(x | θ*, c_r), c_r)
           + (λ/2) Σ_i F_i (θ_i − θ*_i)²,

    with L_diff the denoising loss (the ELBO's stand-in for −log p), q the frozen model's
    images of the surrogate prompts (the request's mismatched concept, e.g. "a green circle"
    for "a red circle"; SA's "middle-aged man" for a celebrity), c_r the preserve prompts, F
    the diagonal Fisher of the original model on its replayed images
    (:func:`~obliviate.diffusion.functional.diagonal_fisher`,
    :func:`~obliviate.diffusion.functional.ewc_penalty`)."""

    description = "Selective Amnesia: surrogate mapping + EWC + generative replay"
    paper = "Heng & Soh NeurIPS 2023, arXiv 2305.10120"
    name = "sa"
    Config = SAConfig

    def _erase(self, model, request, gen, progress):
        cfg = self.config
        if cfg.fisher_samples < 1:
            raise ValueError(f"sa: fisher_samples={cfg.fisher_samples}; give at least 1")
        surrogate = request.mapped(request.mismatched_concept())
        remembered = request.preserve or [""]
        params = select_parameters(model.unet, cfg.parameters)
        unet0 = model.frozen_unet()
        sur = sample_pool(
            model,
            unet0,
            surrogate,
            cfg.surrogate_images,
            cfg.sample_steps,
            cfg.sample_guidance,
            gen,
        )
        rep = sample_pool(
            model,
            unet0,
            remembered,
            cfg.replay_images,
            cfg.sample_steps,
            cfg.sample_guidance,
            gen,
        )
        del unet0
        emb_f, emb_r = model.encode(request.prompts), model.encode(remembered)
        anchors = [p.detach().clone() for _, p in params]
        fisher = self._fisher(model, params, rep["x0"], emb_r, gen)

        def loss_fn(step: int) -> torch.Tensor:
            xs, ns, ts, js = noised_batch(model, sur["x0"], cfg.batch_size, gen)
            loss = F.mse(model.eps(model.unet, xs, ts, emb_f[js % len(request.prompts)]), ns)
            if cfg.replay_weight:
                xr, nr, tr, jr = noised_batch(model, rep["x0"], cfg.batch_size, gen)
                loss = loss + cfg.replay_weight * F.mse(
                    model.eps(model.unet, xr, tr, emb_r[jr % len(remembered)]), nr
                )
            return loss + F.ewc_penalty([p for _, p in params], anchors, fisher, cfg.ewc_lambda)

        log = train_loop(model, params, cfg.steps, cfg.lr, loss_fn, progress=progress)
        return self._result(
            train_log=log,
            trainable_params=_count(params),
            info={
                "surrogate_prompts": surrogate,
                "fisher_mean": float(sum(f.sum() for f in fisher) / _count(params)),
            },
        )

    def _fisher(self, model, params, x_all, emb_r, gen) -> list[torch.Tensor]:
        """The original model's diagonal Fisher: squared per-sample gradients of the
        denoising loss on ``fisher_samples`` replayed images, averaged."""
        ps = [p for _, p in params]

        def per_sample():
            for _ in range(self.config.fisher_samples):
                x, noise, t, j = noised_batch(model, x_all, 1, gen)
                loss = F.mse(model.eps(model.unet, x, t, emb_r[j % len(emb_r)]), noise)
                g = torch.autograd.grad(loss, ps, allow_unused=True)
                yield [torch.zeros_like(p) if gi is None else gi for p, gi in zip(ps, g)]

        for p in ps:
            p.requires_grad_(True)
        try:
            return F.diagonal_fisher(per_sample())
        finally:
            for p in ps:
                p.requires_grad_(False)
