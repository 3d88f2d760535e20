"""Likelihood losses on the answer tokens and the helpers every loss module shares.

NLL, gradient ascent, NPO, the KL retain term, SimNPO and DPO, plus the masking, upcasting and
reduction helpers (the conventions are in :mod:`obliviate.methods.functional`, which re-exports
every public function here). Imports only torch.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
"""Label value for positions that are not scored (prompt, padding)."""

Reduction = Literal["token_mean", "sample_mean"]


# --------------------------------------------------------------------------- helpers


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` in float32 when it is a lower-precision float (bf16/fp16); else unchanged."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _check_beta(name: str, value: float, *, allow_zero: bool = False) -> None:
    try:
        ok = not isinstance(value, bool) and math.isfinite(float(value))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")


def _check_logits_labels(logits: torch.Tensor, labels: torch.Tensor, name: str = "logits") -> None:
    if logits.dim() != 3:
        raise ValueError(f"{name} must have shape (B, T, V), got {tuple(logits.shape)}")
    if labels.dim() != 2 or tuple(labels.shape) != tuple(logits.shape[:2]):
        raise ValueError(
            f"labels must have shape (B, T) = {tuple(logits.shape[:2])} to match {name} "
            f"{tuple(logits.shape)}, got {tuple(labels.shape)}"
        )
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(
            f"labels must be integer token ids (with -100 for ignored), got {labels.dtype}"
        )
    if not logits.dtype.is_floating_point:
        raise ValueError(f"{name} must be a floating-point tensor, got {logits.dtype}")


def shift_labels(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Align logits with the tokens they predict (causal-LM shift).

    Args:
        logits: ``(B, T, V)`` logits of a causal LM.
        labels: ``(B, T)`` unshifted labels, ``-100`` on prompt and padding.

    Returns:
        ``(logits_shifted, targets, mask)``: ``logits[:, :-1]`` ``(B, T-1, V)`` (a view, not a
        copy); ``labels[:, 1:]`` ``(B, T-1)`` with ``-100`` replaced by 0 so that it can index
        the vocabulary; and the answer mask ``(B, T-1)`` (bool, True where the target is scored).

    Raises:
        ValueError: on shape/dtype mismatch, or when a scored label is negative (other than -100)
            or not below the vocabulary size ``V`` (the message gives row and position).
    """
    _check_logits_labels(logits, labels)
    vocab = logits.shape[-1]
    target_raw = labels[:, 1:]
    mask = target_raw != IGNORE_INDEX
    bad = mask & ((target_raw < 0) | (target_raw >= vocab))
    if bool(bad.any()):
        row, pos = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"labels[{row}, {pos + 1}] = {int(target_raw[row, pos])} is not a valid token id: "
            f"labels must be in [0, {vocab}) (the vocabulary size of the logits) or -100 for "
            "positions that are not scored"
        )
    targets = target_raw.masked_fill(~mask, 0)
    return logits[:, :-1], targets, mask


def _answer_rows(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Select the answer positions only: ``(z (N, V) upcast, y (N,), mask (B, T-1))``.

    Selecting first (instead of computing on all positions and masking afterwards) means prompt
    and padding logits are never read, so even NaN there cannot reach the loss or its gradient.
    """
    shifted, targets, mask = shift_labels(logits, labels)
    return _upcast(shifted[mask]), targets[mask], mask


def _gathered_logprobs(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log softmax(z)[y] per row of ``z`` ``(N, V)``: a gathered log-softmax value."""
    return z.gather(-1, y.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(z, dim=-1)


def _reduce_tokens(
    values: torch.Tensor, mask: torch.Tensor, reduction: str, num_items: float | torch.Tensor | None
) -> torch.Tensor:
    """Reduce per-answer-token ``values`` ``(N,)`` (ordered as ``mask.nonzero()``) to a scalar.

    ``token_mean``: sum / N over the whole batch (or / ``num_items`` when given).
    ``sample_mean``: mean over the samples that have at least one answer token of each sample's
    token mean. Empty selection gives 0 with the graph intact.
    """
    if reduction == "token_mean":
        if num_items is not None:
            return values.sum() / num_items
        return values.sum() / mask.sum().clamp(min=1)
    if reduction == "sample_mean":
        if num_items is not None:
            raise ValueError("num_items is only meaningful with reduction='token_mean'")
        rows = mask.nonzero()[:, 0]
        per_row = values.new_zeros(mask.shape[0]).index_add(0, rows, values)
        counts = mask.sum(-1)
        nonempty = counts > 0
        if not bool(nonempty.any()):
            return values.sum()  # == 0 (empty), graph intact
        return (per_row[nonempty] / counts[nonempty]).mean()
    raise ValueError(f"reduction must be 'token_mean' or 'sample_mean', got {reduction!r}")


# --------------------------------------------------------------------------- first group


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position log-probability of the label token, ``log π_θ(y_t | x, y_<t)``.

    Returns ``(logp (B, T-1), mask (B, T-1))``: ``logp`` is the gathered log-softmax value
    (docs/metrics.md, ``-ℓ_t``) at answer positions and exactly 0 at masked positions (whose
    logits are not read). ``logp`` is float32 (float64 if the logits are float64).
    """
    z, y, mask = _answer_rows(logits, labels)
    values = _gathered_logprobs(z, y)
    logp = values.new_zeros(mask.shape)
    logp = logp.masked_scatter(mask, values)
    return logp, mask


def sequence_logprob(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sequence log-probability ``log π(y | x) = Σ_t log π(y_t | x, y_<t)`` per sample, ``(B,)``.

    A sum over answer tokens (not length-normalised; docs/metrics.md). Rows without answer
    tokens give 0. ``logp``/``mask`` are the outputs of :func:`token_logprobs`.
    """
    if logp.shape != mask.shape or logp.dim() != 2:
        raise ValueError(
            f"logp and mask must both be (B, T-1); got {tuple(logp.shape)} and {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor, got {mask.dtype}")
    return torch.where(mask, logp, torch.zeros_like(logp)).sum(-1)


def nll_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    reduction: Reduction = "token_mean",
    *,
    num_items: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Negative log-likelihood of the answer tokens, ``ℓ_t = -log π_θ(y_t | x, y_<t)``.

    Reductions:

    - ``"token_mean"`` (default): Σ ℓ_t / N with N the number of answer tokens in the whole
      batch. Identical to Hugging Face's ``outputs.loss``: long answers weigh more.
      ``num_items`` replaces N, for gradient accumulation where N must count the tokens of every
      micro-batch of one optimiser step (as HF's ``num_items_in_batch``).
    - ``"sample_mean"``: mean over samples of each sample's token mean NLL_avg; samples without
      answer tokens are left out of the mean.

    No answer token at all -> 0 with the graph intact (not NaN).
    """
    z, y, mask = _answer_rows(logits, labels)
    nll = -_gathered_logprobs(z, y)
    return _reduce_tokens(nll, mask, reduction, num_items)


def ga_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    reduction: Reduction = "token_mean",
    *,
    num_items: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Gradient ascent: ``L = -NLL(D_f)`` (Jang et al. 2022, arXiv 2210.01504, "knowledge
    unlearning": the language-modelling loss of the forget sequences, negated).

    Reduction as :func:`nll_loss`; the default is HF's token mean over the batch (docs/metrics.md).
    Unbounded below: minimising it drives the forget NLL to infinity.
    """
    return -nll_loss(logits, labels, reduction, num_items=num_items)


def npo_loss(
    logp_theta_sum: torch.Tensor, logp_ref_sum: torch.Tensor, beta: float = 0.1
) -> torch.Tensor:
    """Negative Preference Optimisation (Zhang et al. 2024, arXiv 2404.05868, the loss L_NPO,β).

    ``L = -(2/β) · mean_i log σ(-β · [log π_θ(y_i|x_i) - log π_ref(y_i|x_i)])``

    Args:
        logp_theta_sum: ``(B,)`` sequence log-probabilities under the trained model (sums over
            answer tokens, :func:`sequence_logprob`), with gradient.
        logp_ref_sum: ``(B,)`` the same under the frozen reference model (treated as a constant:
            it is detached here).
        beta: inverse temperature β > 0 (paper default 0.1).

    Reduction: mean over samples of per-sequence terms built from sequence *sums*.
    Computed with ``F.logsigmoid`` for stability. A sample without answer tokens (both sums 0)
    contributes the constant (2/β)·log 2 and no gradient. As β → 0 the gradient tends to
    ``∇ mean_i log π_θ(y_i|x_i)``, i.e. gradient ascent on sequence sums.
    """
    _check_beta("beta", beta)
    if logp_theta_sum.dim() != 1 or logp_theta_sum.shape != logp_ref_sum.shape:
        raise ValueError(
            "logp_theta_sum and logp_ref_sum must both be (B,) sequence log-prob sums, got "
            f"{tuple(logp_theta_sum.shape)} and {tuple(logp_ref_sum.shape)}"
        )
    if logp_theta_sum.numel() == 0:
        raise ValueError("npo_loss got an empty batch (B = 0)")
    log_ratio = _upcast(logp_theta_sum) - _upcast(logp_ref_sum).detach()
    return -(2.0 / beta) * F.logsigmoid(-beta * log_ratio).mean()


def _kl_per_position(
    logits: torch.Tensor, target_logits: torch.Tensor, labels: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """KL(softmax(target/τ) ∥ softmax(logits/τ)) at each answer position: ``((N,), mask)``."""
    if target_logits.shape != logits.shape:
        raise ValueError(
            f"reference/teacher logits {tuple(target_logits.shape)} must have the same shape as "
            f"the logits {tuple(logits.shape)} (same batch, same tokenisation, same vocabulary)"
        )
    z, _, mask = _answer_rows(logits, labels)
    z_t = _upcast(target_logits[:, :-1][mask]).detach()
    logp = F.log_softmax(z / temperature, dim=-1)
    logq = F.log_softmax(z_t / temperature, dim=-1)
    # kl_div(input=log p_θ, target=log p_ref, log_target=True) = Σ_v p_ref (log p_ref - log p_θ)
    kl = F.kl_div(logp, logq, reduction="none", log_target=True).sum(-1)
    return kl, mask


def kl_retain_loss(
    logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Retain KL term ``KL(π_ref ∥ π_θ)`` (TOFU's "KL" baseline, Maini et al. 2024, arXiv
    2401.06121; docs/metrics.md "L_r = KL").

    Per answer position t: ``Σ_v π_ref(v|·) (log π_ref(v|·) - log π_θ(v|·))``, computed from
    log-softmax values of both models (never raw logits as log-probs). Reduction: mean over
    the valid answer positions of the whole batch only (prompt and padding never count).
    ``ref_logits`` ``(B, T, V)`` come from the frozen reference on the same inputs and are
    detached. No answer token -> 0 with the graph intact.
    """
    kl, mask = _kl_per_position(logits, ref_logits, labels, 1.0)
    return _reduce_tokens(kl, mask, "token_mean", None)


def simnpo_loss(
    logp_sum: torch.Tensor, lengths: torch.Tensor, beta: float = 4.5, gamma: float = 0.0
) -> torch.Tensor:
    """SimNPO, reference-free and length-normalised NPO (Fan et al. 2024, arXiv 2410.07163).

    Paper form: ``L = -(2/β) · mean_i log σ(-(β/n_i) · log π_θ(y_i|x_i) - γ)``, i.e.
    ``-(2/β) · log σ(β · NLL_avg - γ)`` with margin γ (the paper's γ_m; 0 in its TOFU runs).

    Args:
        logp_sum: ``(B,)`` sequence log-probabilities ``log π_θ(y|x)`` (sums, with gradient).
        lengths: ``(B,)`` number of answer tokens n_i of each sequence (``mask.sum(-1)`` of
            :func:`token_logprobs`).
        beta: β > 0 (OU's TOFU default 4.5; the paper uses 2.5 for forget05, 4.5 for forget10,
            0.7/0.75 for MUSE News/Books).
        gamma: the margin γ_m.

    Reduction: mean over samples of per-sequence terms of the length-normalised log-probability.
    Samples with n_i = 0 have no defined NLL_avg and are left out of the mean (OU divides by
    zero there); a batch with no answer token at all gives 0 with the graph intact.

    Placement of the offset (``locuslab/open-unlearning#123``): OU computes
    ``-(2/β) · log σ(β · (NLL_avg - δ))``, i.e. its ``delta`` sits inside the β scaling and
    equals γ/β here. To reproduce an OU run with ``delta = δ`` pass ``gamma = beta * δ``.
    """
    _check_beta("beta", beta)
    if not math.isfinite(gamma):
        raise ValueError(f"gamma must be a finite number, got {gamma!r}")
    if logp_sum.dim() != 1 or lengths.shape != logp_sum.shape:
        raise ValueError(
            "logp_sum and lengths must both be (B,), got "
            f"{tuple(logp_sum.shape)} and {tuple(lengths.shape)}"
        )
    if bool((lengths < 0).any()):
        raise ValueError(f"lengths must be >= 0 answer-token counts, got {lengths.tolist()}")
    keep = lengths > 0
    if not bool(keep.any()):
        return _upcast(logp_sum[:0]).sum()
    avg = _upcast(logp_sum[keep]) / lengths[keep].to(_upcast(logp_sum).dtype)
    return -(2.0 / beta) * F.logsigmoid(-beta * avg - gamma).mean()


def dpo_loss(
    w_theta: torch.Tensor,
    w_ref: torch.Tensor,
    l_theta: torch.Tensor,
    l_ref: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """DPO as an unlearning loss (Rafailov et al. 2023, arXiv 2305.18290, the DPO objective;
    used for unlearning as IdkDPO with y_w = an "I don't know" answer, y_l = the true answer).

    ``L = -(2/β) · mean_i log σ(β · [(log π_θ(y_w) - log π_ref(y_w))
    - (log π_θ(y_l) - log π_ref(y_l))])``

    All four inputs are ``(B,)`` sequence log-prob *sums* ; the reference values are
    detached. The 2/β factor follows docs/methods.md and OU's ``compute_dpo_loss`` (it matches
    NPO's scaling); Rafailov et al.'s objective has no 2/β, a constant rescaling of the loss
    (equivalent to scaling the learning rate by 2/β). Reduction: mean over pairs.
    """
    _check_beta("beta", beta)
    shapes = {tuple(x.shape) for x in (w_theta, w_ref, l_theta, l_ref)}
    if len(shapes) != 1 or w_theta.dim() != 1:
        raise ValueError(
            "w_theta, w_ref, l_theta and l_ref must all be (B,) sequence log-prob sums, got "
            f"{[tuple(x.shape) for x in (w_theta, w_ref, l_theta, l_ref)]}"
        )
    if w_theta.numel() == 0:
        raise ValueError("dpo_loss got an empty batch (B = 0)")
    win = _upcast(w_theta) - _upcast(w_ref).detach()
    lose = _upcast(l_theta) - _upcast(l_ref).detach()
    return -(2.0 / beta) * F.logsigmoid(beta * (win - lose)).mean()
