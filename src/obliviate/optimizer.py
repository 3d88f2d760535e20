"""The optimiser of the training loop: AdamW in the implementation ``train.adamw`` names
(docs/methods.md, "Training speed"), or SOUL's second-order clipped update with
``train.optimizer=soul`` (:mod:`obliviate.soul`; docs/methods.md, "Second-order unlearning
(SOUL)").

``plain`` is PyTorch's loop over the parameters (one small operation per tensor and update
term), ``foreach`` batches those operations over all tensors, ``fused`` runs one kernel per
parameter group (CPU and CUDA, floating-point parameters). ``auto`` takes the fused kernel
where every parameter can use it and foreach otherwise. All compute the same update up to
float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from obliviate.config import TrainConfig

FUSED_DEVICES = ("cpu", "cuda", "xpu", "mps")  # where torch has a fused AdamW kernel


def fused_supported(params: Sequence[Any]) -> bool:
    """True when every parameter is a floating-point tensor on a device with a fused kernel."""
    return all(p.is_floating_point() and p.device.type in FUSED_DEVICES for p in params)


def make_optimizer(params: Sequence[Any], cfg: TrainConfig) -> Any:
    """The optimiser ``cfg.optimizer`` names over ``params``: AdamW (:func:`make_adamw`) or
    :class:`obliviate.soul.SOUL` with the ``cfg.soul_*`` settings, ``cfg.lr`` and
    ``cfg.weight_decay``."""
    if cfg.optimizer == "soul":
        from obliviate.soul import SOUL

        return SOUL(
            list(params),
            lr=cfg.lr,
            betas=(cfg.soul_beta1, cfg.soul_beta2),
            rho=cfg.soul_rho,
            batch=cfg.soul_batch,
            every=cfg.soul_every,
            weight_decay=cfg.weight_decay,
        )
    return make_adamw(params, cfg)


def make_adamw(params: Sequence[Any], cfg: TrainConfig) -> Any:
    """``torch.optim.AdamW`` over ``params`` with ``cfg.lr``/``cfg.weight_decay`` and the
    implementation ``cfg.adamw``; ``fused`` where it is not supported is a one-line error."""
    import torch

    kind = cfg.adamw
    if kind == "auto":
        kind = "fused" if fused_supported(params) else "foreach"
    if kind == "fused" and not fused_supported(params):
        where = sorted({f"{p.dtype} on {p.device.type}" for p in params})
        raise ValueError(
            f"train setting adamw=fused: no fused AdamW kernel for parameters of "
            f"{', '.join(where)}; use adamw=auto or adamw=foreach"
        )
    return torch.optim.AdamW(
        list(params),
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        foreach=kind == "foreach",
        fused=True if kind == "fused" else None,
    )
