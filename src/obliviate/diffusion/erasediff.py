"""EraseDiff (Wu+ 2024, arXiv 2401.05779): erasure as a bi-level (constrained) problem.

Upper level: keep the denoising loss F on the remaining data. Lower level: the forget loss f,
which drives the erased concept's noise predictions towards a random target instead of the
true noise. The first-order method updates θ along ∇F(θ) + λ (∇f(θ) − ∇f(φ_K)), φ_K being K
gradient steps on f from θ (docs/diffusion.md, "Methods").
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
class EraseDiffConfig:
    """EraseDiff defaults (docs/diffusion.md): one inner step (K = 1), λ = 0.1. Learning
    rates and image counts are unverified against the paper."""

    steps: int = 200
    lr: float = 1e-5  # the outer (Adam) step
    inner_steps: int = 1  # K
    inner_lr: float = 1e-5  # α of the lower-level gradient steps
    lam: float = 0.1  # λ
    batch_size: int = 4
    forget_images: int = 100
    retain_images: int = 100
    sample_steps: int = 50
    sample_guidance: float = 3.0
    parameters: str = "all"


class EraseDiff(Eraser):
    """EraseDiff: the remain loss F(θ) = ‖ε_θ(x_t^r, c_r) − ε‖² on images of the preserve
    prompts, the forget loss f(θ) = ‖ε_θ(x_t^f, c_f) − ε̂‖² with ε̂ ~ U[0, 1) (a target that
    is not the added noise, as in the paper) on images of the concept's prompts, both images
    drawn by the frozen original model; each step runs the lower-level loop from θ and applies
    :func:`~obliviate.diffusion.functional.erasediff_loss` (gradient
    :func:`~obliviate.diffusion.functional.erasediff_direction`) with Adam."""

    description = "EraseDiff: bi-level first-order update, random-target forget loss"
    paper = "Wu+ 2024, arXiv 2401.05779"
    name = "erasediff"
    Config = EraseDiffConfig

    def _erase(self, model, request, gen, progress):
        cfg = self.config
        if cfg.inner_steps < 1:
            raise ValueError(f"erasediff: inner_steps={cfg.inner_steps}; give at least 1")
        remain_prompts = request.preserve or [""]
        params = select_parameters(model.unet, cfg.parameters)
        ps = [p for _, p in params]
        unet0 = model.frozen_unet()
        forget = sample_pool(
            model,
            unet0,
            request.prompts,
            cfg.forget_images,
            cfg.sample_steps,
            cfg.sample_guidance,
            gen,
        )
        remain = sample_pool(
            model,
            unet0,
            remain_prompts,
            cfg.retain_images,
            cfg.sample_steps,
            cfg.sample_guidance,
            gen,
        )
        del unet0
        emb_f, emb_r = model.encode(request.prompts), model.encode(remain_prompts)

        def loss_fn(step: int) -> torch.Tensor:
            xf, nf, tf, jf = noised_batch(model, forget["x0"], cfg.batch_size, gen)
            target = torch.rand(nf.shape, generator=gen).to(nf.device)  # ε̂ ~ U[0, 1)
            cf = emb_f[jf % len(request.prompts)]

            def forget_loss() -> torch.Tensor:
                return F.mse(model.eps(model.unet, xf, tf, cf), target)

            theta = [p.detach().clone() for p in ps]
            try:
                for _ in range(cfg.inner_steps):  # φ_k = φ_{k−1} − α ∇f(φ_{k−1})
                    g = torch.autograd.grad(forget_loss(), ps, allow_unused=True)
                    with torch.no_grad():
                        for p, gi in zip(ps, g):
                            if gi is not None:
                                p.sub_(cfg.inner_lr * gi)
                f_phi = forget_loss()
                g_phi = list(torch.autograd.grad(f_phi, ps, allow_unused=True))
            finally:
                with torch.no_grad():
                    for p, t0 in zip(ps, theta):
                        p.copy_(t0)
            xr, nr, tr, jr = noised_batch(model, remain["x0"], cfg.batch_size, gen)
            f_remain = F.mse(model.eps(model.unet, xr, tr, emb_r[jr % len(remain_prompts)]), nr)
            return F.erasediff_loss(f_remain, forget_loss(), f_phi, ps, g_phi, cfg.lam)

        log = train_loop(model, params, cfg.steps, cfg.lr, loss_fn, progress=progress)
        return self._result(train_log=log, trainable_params=_count(params))
