"""Pure tensor functions of the added-parameter and adapter-arithmetic methods
(docs/methods.md): EUL's objective and its fusion of unlearning layers, SPUL's soft-prompt
objective and Ext-Sub's extraction of the deficiency part of an anti-expert adapter.

Re-exported by :mod:`obliviate.methods.functional`; the conventions of that module hold here
(unshifted labels with ``-100`` on prompt and padding, reductions over answer tokens only,
float32 at least).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from obliviate.methods.likelihood_losses import kl_retain_loss, nll_loss


def eul_loss(
    logits_f: torch.Tensor,
    ref_logits_f: torch.Tensor,
    labels_f: torch.Tensor,
    logits_r: torch.Tensor | None = None,
    ref_logits_r: torch.Tensor | None = None,
    labels_r: torch.Tensor | None = None,
    alpha: float = 1.0,
    beta: float = 1.0,
    lam: float = 1.0,
    gamma: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """EUL's objective for one unlearning layer (Chen & Yang 2023, arXiv 2310.20150, §3.1,
    eqs. 1-4, with the generative task written as next-token prediction):

        L_KL   = α · KL(F(x_r) ∥ F'(x_r)) − β · KL(F(x_f) ∥ F'(x_f))      (eq. 1, selective
                                                                         teacher-student)
        L_TASK = NLL(y_r | x_r)                                          (eq. 2)
        L_LM   = NLL(x_f)                                                (eq. 3)
        L_EUL  = L_KL + λ · L_TASK − γ · L_LM                            (eq. 4)

    F is the frozen original model (the teacher: ``ref_logits_*``), F' the model with the
    unlearning layers (the student: ``logits_*``). Each KL is ``KL(F ∥ F')`` per answer position,
    averaged over the answer positions of the batch; each NLL is the token mean
    (:func:`~obliviate.methods.likelihood_losses.nll_loss`). Without a retain batch the retain
    parts are 0. Returns the loss and its parts (detached).
    """
    kl_f = kl_retain_loss(logits_f, ref_logits_f.detach(), labels_f)
    nll_f = nll_loss(logits_f, labels_f)
    loss = -beta * kl_f - gamma * nll_f
    parts = {"kl_forget": kl_f.detach(), "nll_forget": nll_f.detach()}
    if logits_r is not None and ref_logits_r is not None and labels_r is not None:
        kl_r = kl_retain_loss(logits_r, ref_logits_r.detach(), labels_r)
        nll_r = nll_loss(logits_r, labels_r)
        loss = loss + alpha * kl_r + lam * nll_r
        parts.update(kl_retain=kl_r.detach(), nll_retain=nll_r.detach())
    return loss, parts


def augmented_gram(x: torch.Tensor) -> torch.Tensor:
    """``X̃ᵀX̃`` of the inputs ``x`` ``(N, d)`` of a linear layer with a bias, X̃ = [X, 1]
    (float64, ``(d + 1, d + 1)``): the statistic EUL's fusion needs from each request."""
    xt = torch.cat([x.detach().double(), x.new_ones(x.shape[0], 1, dtype=torch.float64)], 1)
    return xt.T @ xt


def fuse_linear(
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
    grams: Sequence[torch.Tensor],
    ridge: float = 1e-4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """EUL's fusion of the same linear layer of several unlearning layers (Chen & Yang 2023,
    arXiv 2310.20150, §3.2): the one layer ``W_m`` whose outputs on every request's inputs are
    closest to that request's own layer,

        W_m = argmin_W Σ_i ‖X̃_i W − X̃_i W_i‖²  =  (Σ_i G_i)⁻¹ Σ_i G_i W_i,   G_i = X̃_iᵀX̃_i,

    (the closed form of the linear-regression merge, RegMean, Jin+ 2023, arXiv 2212.09849),
    with ``W_i`` the weight ``(out, in)`` transposed and the bias appended as the last row, and
    X̃_i the inputs with a column of ones (:func:`augmented_gram`).

    ``ridge`` > 0 regularises towards the plain average W̄ of the layers, in directions no
    request's inputs span: ``(Σ G_i + εI) W_m = Σ G_i W_i + ε W̄`` with ε = ``ridge`` times the
    mean diagonal of Σ G_i; identical layers therefore fuse to themselves. ``ridge=0`` is the
    exact closed form (Σ G_i must then be invertible). Returns ``(weight, bias)`` in the dtype of
    the first weight.
    """
    if not weights or not (len(weights) == len(biases) == len(grams)):
        raise ValueError("fuse_linear needs as many weights, biases and Gram matrices, at least 1")
    out_dim, in_dim = weights[0].shape
    for w, b, g in zip(weights, biases, grams):
        if w.shape != (out_dim, in_dim) or b.shape != (out_dim,):
            raise ValueError(
                f"layers to fuse differ in shape: {tuple(w.shape)} vs {(out_dim, in_dim)}"
            )
        if g.shape != (in_dim + 1, in_dim + 1):
            raise ValueError(f"Gram matrix {tuple(g.shape)} does not fit inputs of size {in_dim}")
    stacked = [
        torch.cat([w.detach().double().T, b.detach().double()[None]], 0)
        for w, b in zip(weights, biases)
    ]
    total = torch.stack([g.double() for g in grams]).sum(0)
    rhs = sum((g.double() @ wt for g, wt in zip(grams, stacked)), torch.zeros_like(stacked[0]))
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    if ridge:
        eps = ridge * float(total.diagonal().mean().clamp_min(1e-12))
        total = total + eps * torch.eye(in_dim + 1, dtype=torch.float64)
        rhs = rhs + eps * torch.stack(stacked).mean(0)
    fused = torch.linalg.solve(total, rhs)
    dtype = weights[0].dtype
    return fused[:-1].T.contiguous().to(dtype), fused[-1].contiguous().to(dtype)


def spul_loss(
    forget_loss: torch.Tensor,
    logits_r: torch.Tensor | None = None,
    ref_logits_r: torch.Tensor | None = None,
    labels_r: torch.Tensor | None = None,
    alpha: float = 0.5,
    beta: float = 0.5,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """SPUL's soft-prompt objective (Bhaila, Van & Wu 2024, arXiv 2406.12038, §3):

        L = L_f + α · L_r + β · L_KL

    L_f: the forget objective of the prompted model on D_f (the paper: cross-entropy towards a
    generic answer, given here as ``forget_loss``); L_r: NLL of the prompted model on D_r (token
    mean); L_KL: ``KL(F(x_r) ∥ F(φ; x_r))`` between the frozen model without the prompt
    (``ref_logits_r``) and with it, per answer position, averaged over the answer positions.
    α = β = 0.5 are the authors' defaults. Returns the loss and its parts (detached).
    """
    loss = forget_loss
    parts = {"forget_loss": forget_loss.detach()}
    if logits_r is not None and ref_logits_r is not None and labels_r is not None:
        nll_r = nll_loss(logits_r, labels_r)
        kl_r = kl_retain_loss(logits_r, ref_logits_r.detach(), labels_r)
        loss = loss + alpha * nll_r + beta * kl_r
        parts.update(nll_retain=nll_r.detach(), kl_retain=kl_r.detach())
    return loss, parts


def _unit_rows(m: torch.Tensor) -> torch.Tensor:
    norm = m.norm(dim=-1, keepdim=True)
    return torch.where(norm > 0, m / norm.clamp_min(torch.finfo(m.dtype).tiny), torch.zeros_like(m))


def ext_sub_deficiency(expert: torch.Tensor, anti: torch.Tensor) -> torch.Tensor:
    """The deficiency-only part of an anti-expert update (Ext-Sub, Hu+ 2024, arXiv 2308.08090,
    §3, "Extraction"): per row i of the full updates ΔW (``(out, in)``), the capability common to
    expert and anti-expert is the anti-expert row projected on the bisector of the two rows,

        c_i = (ê_i + â_i) / ‖ê_i + â_i‖,   ê_i = ΔW⁺_i/‖ΔW⁺_i‖,  â_i = ΔW⁻_i/‖ΔW⁻_i‖,
        common_i = (ΔW⁻_i · c_i) c_i,       deficiency_i = ΔW⁻_i − common_i.

    A row the expert left at zero, or two opposite rows (ê + â = 0), share no direction: the
    whole anti-expert row is deficiency (the authors' code divides by zero there). Computed in float64, returned in ``anti``'s dtype.
    """
    if expert.shape != anti.shape or expert.dim() != 2:
        raise ValueError(
            f"expert and anti-expert updates must be matrices of one shape, got "
            f"{tuple(expert.shape)} and {tuple(anti.shape)}"
        )
    e, a = expert.detach().double(), anti.detach().double()
    both = (e.norm(dim=-1, keepdim=True) > 0) & (a.norm(dim=-1, keepdim=True) > 0)
    c = torch.where(both, _unit_rows(_unit_rows(e) + _unit_rows(a)), torch.zeros_like(a))
    common = (a * c).sum(-1, keepdim=True) * c
    return (a - common).to(anti.dtype)


def ext_sub_update(expert: torch.Tensor, anti: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Extraction-before-subtraction of two full updates (Hu+ 2024, arXiv 2308.08090, §3):
    ``ΔW = ΔW⁺ − λ · deficiency(ΔW⁺, ΔW⁻)`` (:func:`ext_sub_deficiency`), λ = ``scale``."""
    return (expert.detach().double() - scale * ext_sub_deficiency(expert, anti).double()).to(
        expert.dtype
    )
