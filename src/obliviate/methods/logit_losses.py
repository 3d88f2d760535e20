"""Losses that reweight or reshape the token distribution: WGA, SatImp, CE-U, UNDIAL, PDU's
margin and dual update, distillation, and WHP's generic logits.

Conventions as in :mod:`obliviate.methods.functional`, which re-exports every function here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from obliviate.methods.likelihood_losses import (
    IGNORE_INDEX,
    _answer_rows,
    _check_beta,
    _check_logits_labels,
    _gathered_logprobs,
    _kl_per_position,
    _reduce_tokens,
    _upcast,
)


def wga_loss(logits: torch.Tensor, labels: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Weighted gradient ascent (Wang et al. 2025, arXiv 2502.19301, WGA).

    ``L = -(1/N) · Σ_t w_t · ℓ_t`` with ``w_t = sg(exp(-ℓ_t))^β = sg(p_t)^β``, the sum over the
    N valid answer tokens of the whole batch (token mean over the batch, as OU). β ≥ 0;
    β = 0 is plain GA. No answer token -> 0 with the graph intact.
    """
    _check_beta("beta", beta, allow_zero=True)
    z, y, mask = _answer_rows(logits, labels)
    logp = _gathered_logprobs(z, y)
    weight = torch.exp(beta * logp.detach())
    return _reduce_tokens(weight * logp, mask, "token_mean", None)  # -(w · ℓ) = w · logp


def satimp_loss(
    logits: torch.Tensor, labels: torch.Tensor, beta1: float = 5.0, beta2: float = 1.0
) -> torch.Tensor:
    """SatImp (Yang et al. 2025, arXiv 2505.11953): saturation × importance token weights.

    ``L = -(1/N) · Σ_t sg(p_t^β1 · (1 - p_t)^β2) · ℓ_t`` with ``p_t = exp(-ℓ_t)``, the sum over the
    N valid answer tokens of the whole batch (token mean over the batch, as OU).
    Defaults β1 = 5, β2 = 1. No answer token -> 0 with the graph intact.
    """
    _check_beta("beta1", beta1, allow_zero=True)
    _check_beta("beta2", beta2, allow_zero=True)
    z, y, mask = _answer_rows(logits, labels)
    logp = _gathered_logprobs(z, y)
    p = logp.detach().exp()
    weight = p.pow(beta1) * (1.0 - p).pow(beta2)
    return _reduce_tokens(weight * logp, mask, "token_mean", None)


def ceu_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_first_n: int = 1) -> torch.Tensor:
    """Cross-entropy unlearning, CE-U (Yang 2025, arXiv 2503.01224).

    At each scored answer position t: ``CE(z_t, sg(softmax(z̃_t)))`` where z̃_t is z_t with the
    true label's logit set to -∞, i.e. the target keeps the model's own distribution over all
    *other* tokens and puts 0 on y_t. Reduction: mean over the scored answer positions of the
    batch.

    Skipped positions (``ignore_first_n``, default 1): in each row, the first ``n`` tokens whose
    unshifted label is not -100 (the first answer token y_1, i.e. the prediction made at the
    last prompt position) are not scored. This follows the paper's footnote in its training
    settings, as implemented by OU's ``compute_batch_ceu``; the rationale is the paper's and is
    not restated here. When ``labels[:, 0]`` is itself an answer token (a document without a
    prompt or BOS), it is the one "skipped", which changes nothing because position 0 is never
    predicted. Rows whose answer has at most n tokens contribute nothing.
    """
    if not isinstance(ignore_first_n, int) or ignore_first_n < 0:
        raise ValueError(f"ignore_first_n must be an int >= 0, got {ignore_first_n!r}")
    _check_logits_labels(logits, labels)
    if logits.shape[-1] < 2:
        raise ValueError("ceu_loss needs a vocabulary of at least 2 tokens")
    valid = labels != IGNORE_INDEX
    first = valid & (valid.cumsum(-1) <= ignore_first_n)
    z, y, mask = _answer_rows(logits, labels.masked_fill(first, IGNORE_INDEX))
    target = z.detach().scatter(-1, y.unsqueeze(-1), float("-inf")).softmax(-1)
    logp = F.log_softmax(z, dim=-1)
    ce = -torch.where(target > 0, target * logp, torch.zeros_like(logp)).sum(-1)
    return _reduce_tokens(ce, mask, "token_mean", None)


def undial_loss(
    logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor, beta: float = 10.0
) -> torch.Tensor:
    """UNDIAL self-distillation (Dong et al. 2024, arXiv 2402.10052).

    Target at each answer position t: ``q_t = softmax(z^ref_t - β · onehot(y_t))``, the frozen
    reference's distribution with the true token's logit lowered by β. Loss:
    ``mean_t CE(z^θ_t, q_t) = mean_t -Σ_v q_t,v · log softmax(z^θ_t)_v``.

    Reduction: mean over the valid answer positions of the batch. Only answer positions are
    used, so a -100 label never builds a one-hot (OU's version indexes vocabulary row V - 100
    there and averages over prompt and padding). ``ref_logits`` are detached. β ≥ 0
    (paper default 10, range 3-30).
    """
    _check_beta("beta", beta, allow_zero=True)
    if ref_logits.shape != logits.shape:
        raise ValueError(
            f"ref_logits {tuple(ref_logits.shape)} must have the same shape as the logits "
            f"{tuple(logits.shape)}"
        )
    z, y, mask = _answer_rows(logits, labels)
    z_ref = _upcast(ref_logits[:, :-1][mask]).detach()
    z_ref = z_ref - beta * F.one_hot(y, z_ref.shape[-1]).to(z_ref.dtype)
    target = z_ref.softmax(-1)
    ce = -(target * F.log_softmax(z, dim=-1)).sum(-1)
    return _reduce_tokens(ce, mask, "token_mean", None)


def pdu_margin_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """PDU forget term: logit-margin flattening (Entesari et al. 2025, arXiv 2506.05314).

    ``L_f = mean_t (max_v z_t,v - mean_v z_t,v)^2`` over the answer positions of the shifted
    labels (OU averages over every position, prompt and padding included; and #149).
    Computed on the raw logits by definition; the margin is invariant to adding a constant to
    all logits, so it equals the same quantity on log-softmax values. Reduction: mean over the
    valid answer positions of the batch.
    """
    z, _, mask = _answer_rows(logits, labels)
    margin = z.max(-1).values - z.mean(-1)
    return _reduce_tokens(margin.pow(2), mask, "token_mean", None)


def pdu_dual_update(lam: float, retain_loss: float | torch.Tensor, eps: float, eta: float) -> float:
    """PDU dual ascent step (arXiv 2506.05314): ``λ_r ← max(0, λ_r + η · (L_r - ε))``.

    ``retain_loss`` is the current retain NLL (a float or a scalar tensor; it is read, not
    differentiated). When to apply it (per step or per epoch, after the warm-up) is the
    trainer's choice.
    """
    if isinstance(retain_loss, torch.Tensor):
        retain_loss = retain_loss.detach()
    value = float(retain_loss)
    for name, v in (("lam", lam), ("retain_loss", value), ("eps", eps), ("eta", eta)):
        if not math.isfinite(v):
            raise ValueError(f"{name} must be finite, got {v!r}")
    if lam < 0:
        raise ValueError(f"lam (the dual variable λ_r) must be >= 0, got {lam!r}")
    if eta <= 0:
        raise ValueError(f"eta (the dual step size η) must be > 0, got {eta!r}")
    return max(0.0, float(lam) + float(eta) * (value - float(eps)))


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Knowledge distillation ``τ² · KL(softmax(z_teacher/τ) ∥ softmax(z_student/τ))``
    (Hinton et al. 2015, arXiv 1503.02531; the τ² factor keeps gradient magnitudes comparable
    across temperatures, so τ = 1 is the plain KL).

    Per answer position of the shifted labels; reduction: mean over the valid answer positions
    of the batch. ``teacher_logits`` are detached. With τ = 1 this equals
    :func:`kl_retain_loss` (teacher = reference).
    """
    _check_beta("temperature", temperature)
    kl, mask = _kl_per_position(student_logits, teacher_logits, labels, temperature)
    return temperature**2 * _reduce_tokens(kl, mask, "token_mean", None)


def whp_generic_logits(
    base_logits: torch.Tensor, reinforced_logits: torch.Tensor, alpha: float = 1.0
) -> torch.Tensor:
    """Who's Harry Potter generic prediction (Eldan & Russinovich 2023, arXiv 2310.02238):
    ``v_generic = v_base - α · ReLU(v_reinforced - v_base)``.

    Elementwise on logits of any (equal) shape: tokens whose logit the reinforced model raised
    are pushed down; the others are unchanged. α ≥ 0 (MUSE's implementation uses 1).
    """
    _check_beta("alpha", alpha, allow_zero=True)
    if base_logits.shape != reinforced_logits.shape:
        raise ValueError(
            f"base_logits {tuple(base_logits.shape)} and reinforced_logits "
            f"{tuple(reinforced_logits.shape)} must have the same shape"
        )
    return base_logits - alpha * F.relu(reinforced_logits - base_logits)
