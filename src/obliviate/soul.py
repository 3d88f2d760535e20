"""SOUL: second-order unlearning with a Sophia-style clipped update (``train.optimizer=soul``).

*Jia, Zhang, Zhang, Liu, Runwal, Diffenderfer, Kailkhura, Liu. SOUL: Unlocking the Power of
Second-Order Optimization for LLM Unlearning. EMNLP 2024, arXiv 2404.18239*, built on Sophia
(*Liu, Li, Hall, Liang, Ma. Sophia: A Scalable Stochastic Second-order Optimizer for Language
Model Pre-training. ICLR 2024, arXiv 2305.14342*, Algorithm 3). SOUL is loss-agnostic: it
replaces the first-order optimiser of any unlearning objective, so every gradient method of
obliviate accepts it (docs/methods.md, "Second-order unlearning (SOUL)"). Per coordinate, at
optimiser step t (1-based), with g_t the (clipped) gradient of the method's loss:

    m_t = β1·m_{t-1} + (1 − β1)·g_t                                  (momentum)
    h_t = β2·h_{t-k} + (1 − β2)·ĥ_t,  ĥ_t = g_t ⊙ g_t   when (t − 1) mod k = 0, else h_{t-1}
    θ ← θ − η·λ·θ                                                    (decoupled weight decay)
    θ ← θ − η·clip(m_t / max(ρ·B·h_t, ε), 1)                         (clip(z, 1) = max(min(z, 1), −1))

The Hessian diagonal is estimated as in Sophia's Gauss-Newton-Bartlett estimator (B·ĝ⊙ĝ for
a mean loss over a batch of B; the factor B sits in the denominator), with ĝ the gradient of
the unlearning objective itself, as SOUL's released optimiser does, so no second backward
pass is needed. Defaults are SOUL's TOFU recipe (β1 0.9, β2 0.95, ρ 0.04, k 1, B 5120,
weight decay from ``train.weight_decay``). The clip bounds every coordinate's step by η; where
the curvature estimate is small the update is η·sign(m).

The optimiser keeps three tensors per parameter (``step``, ``exp_avg`` = m, ``hessian`` = h);
they are saved and restored with the training checkpoints like AdamW's state.
"""

from __future__ import annotations

from typing import Any

import torch

EPS = 1e-15  # ε of the denominator (Sophia's released value)


def soul_step(
    theta: torch.Tensor,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    hessian: torch.Tensor,
    step: int,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    rho: float,
    batch: int,
    every: int = 1,
    weight_decay: float = 0.0,
    eps: float = EPS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One SOUL/Sophia update of one tensor (the module docstring's equations), returning new
    ``(theta, exp_avg, hessian)``; nothing is changed in place. ``step`` is the 1-based number
    of this step: the Hessian estimate is refreshed when ``(step - 1) % every == 0``."""
    if step < 1:
        raise ValueError(f"step must be >= 1 (1-based), got {step}")
    m = beta1 * exp_avg + (1.0 - beta1) * grad
    h = beta2 * hessian + (1.0 - beta2) * grad * grad if (step - 1) % every == 0 else hessian
    decayed = theta * (1.0 - lr * weight_decay)
    denom = torch.clamp(rho * batch * h, min=eps)
    ratio = torch.clamp(m / denom, min=-1.0, max=1.0)
    return decayed - lr * ratio, m, h


class SOUL(torch.optim.Optimizer):
    """``torch.optim`` wrapper of :func:`soul_step` (state: ``step``, ``exp_avg``, ``hessian``)."""

    def __init__(
        self,
        params: Any,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.95),
        rho: float = 0.04,
        batch: int = 5120,
        every: int = 1,
        weight_decay: float = 0.0,
        eps: float = EPS,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            rho=rho,
            batch=batch,
            every=every,
            weight_decay=weight_decay,
            eps=eps,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise ValueError("train.optimizer=soul does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["hessian"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                theta, m, h = soul_step(
                    p,
                    p.grad,
                    state["exp_avg"],
                    state["hessian"],
                    int(state["step"].item()),
                    lr=float(group["lr"]),
                    beta1=beta1,
                    beta2=beta2,
                    rho=group["rho"],
                    batch=group["batch"],
                    every=group["every"],
                    weight_decay=group["weight_decay"],
                    eps=group["eps"],
                )
                p.copy_(theta)
                state["exp_avg"].copy_(m)
                state["hessian"].copy_(h)
        return loss
