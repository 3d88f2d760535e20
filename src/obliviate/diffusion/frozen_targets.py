"""Training targets supplied by the frozen original model: ESD's x_t states of its DDIM
trajectories (:class:`_TrajectorySource`) and the preservation loss shared by ESD and FMN."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from obliviate.diffusion import functional as F
from obliviate.diffusion.eraser_base import sample_pool

if TYPE_CHECKING:
    from obliviate.diffusion.methods import ESDConfig


class _TrajectorySource:
    """ESD's x_t for a prompt list: states of the frozen model's DDIM trajectories, either
    fresh each draw (``pool_size`` 0, the paper) or drawn from a pool sampled once."""

    def __init__(
        self, model: Any, unet0: Any, prompts: list[str], cfg: ESDConfig, gen: torch.Generator
    ) -> None:
        self.model, self.unet0, self.prompts, self.cfg, self.gen = model, unet0, prompts, cfg, gen
        self.emb = model.encode(prompts)
        self.timesteps = model.timesteps(cfg.sample_steps)
        self.pool = None
        if cfg.pool_size > 0:
            self.pool = sample_pool(
                model,
                unet0,
                prompts,
                cfg.pool_size,
                cfg.sample_steps,
                cfg.sample_guidance,
                gen,
                trajectory=True,
            )

    def draw(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg, gen, model = self.cfg, self.gen, self.model
        if self.pool is not None:
            j = torch.randint(0, cfg.pool_size, (cfg.batch_size,), generator=gen)
            i = torch.randint(0, cfg.sample_steps, (cfg.batch_size,), generator=gen)
            return (
                self.pool["xt"][i, j],
                self.pool["t"][i].to(model.device),
                self.emb[j % len(self.prompts)],
            )
        k = torch.randint(0, len(self.prompts), (cfg.batch_size,), generator=gen)
        stop = int(torch.randint(0, cfg.sample_steps, (1,), generator=gen))
        ps = [self.prompts[int(a)] for a in k]
        x = model.sample(
            ps,
            model.initial_noise(len(ps), gen),
            steps=cfg.sample_steps,
            guidance=cfg.sample_guidance,
            unet=self.unet0,
            stop_at=stop,
        )
        return x, self.timesteps[stop].repeat(len(ps)).to(model.device), self.emb[k]


def preservation_loss(
    model: Any, unet0: Any, x: torch.Tensor, t: torch.Tensor, emb: torch.Tensor
) -> torch.Tensor:
    """MSE between the edited and the frozen UNet's noise predictions for preserve prompts:
    the regulariser of ESD's and FMN's ``preserve_weight`` (an addition to both papers,
    the distillation form of the preservation terms of CA and SalUn)."""
    with torch.no_grad():
        target = model.eps(unet0, x, t, emb)
    return F.mse(model.eps(model.unet, x, t, emb), target)
