"""Pure tensor functions for every LLM unlearning loss (docs/methods.md).

Conventions shared by every function here:

- ``logits`` is ``(B, T, V)`` from a causal LM run on ``input_ids`` ``(B, T)``.
- ``labels`` is ``(B, T)``: ``input_ids`` with ``-100`` on prompt and padding positions. It is
  *unshifted* (Hugging Face convention): the logits at position ``t`` predict ``labels[t + 1]``.
- Every token-level reduction runs over the *answer mask* of the shifted labels
  (``labels[:, 1:] != -100``). Prompt and padding positions never count, and their logits are never
  read: a loss is unchanged when padding is added, even if the padding logits are NaN.
- Likelihood-based losses consume gathered log-softmax values of the label tokens, never raw
  logits. Computation is done in at least float32 (bf16/fp16 inputs are upcast).
- Each loss states its reduction (token mean over the batch, per-sample mean, or sequence sum),
  matching its paper. A batch without any answer token gives a loss of 0 whose autograd
  graph is intact (``backward()`` works and yields zero gradients), never NaN.

Methods that need no function of their own: GradDiff is ``-γ·nll(forget) + α·nll(retain)``;
LLMU's mismatch term (Yao et al. 2023, arXiv 2310.10683) is plain :func:`nll_loss` on
(forget prompt, random normal answer) pairs, built by the data layer and weighted by the method
composition; IdkDPO/AltPO are :func:`dpo_loss` with different winners.

This module imports only torch; it is imported on use, never by ``import obliviate``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
"""Label value for positions that are not scored (prompt, padding)."""

Reduction = Literal["token_mean", "sample_mean"]

__all__ = [
    "IGNORE_INDEX",
    "shift_labels",
    "token_logprobs",
    "sequence_logprob",
    "nll_loss",
    "ga_loss",
    "npo_loss",
    "kl_retain_loss",
    "simnpo_loss",
    "dpo_loss",
    "wga_loss",
    "satimp_loss",
    "ceu_loss",
    "undial_loss",
    "pdu_margin_loss",
    "pdu_dual_update",
    "rmu_control_vector",
    "rmu_forget_loss",
    "rmu_retain_loss",
    "distillation_loss",
    "whp_generic_logits",
]


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


# --------------------------------------------------------------------------- second group


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


def rmu_control_vector(
    dim: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """RMU's fixed random direction u (Li et al. 2024, arXiv 2403.03218): a draw from
    U[0, 1)^dim, normalised to unit L2 norm. Draw it once per forget topic and keep it."""
    if not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive int (the hidden size), got {dim!r}")
    u = torch.rand(dim, generator=generator, dtype=torch.float32)
    return (u / u.norm()).to(dtype=dtype, device=device)


def _check_hidden(hidden: torch.Tensor, other_shape: tuple[int, ...], mask: torch.Tensor) -> None:
    if hidden.dim() != 3:
        raise ValueError(f"hidden must be (B, T, D), got {tuple(hidden.shape)}")
    if tuple(other_shape) != tuple(hidden.shape):
        raise ValueError(f"hidden_ref {tuple(other_shape)} must match hidden {tuple(hidden.shape)}")
    if mask.dtype != torch.bool or tuple(mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError(
            f"mask must be a bool (B, T) = {tuple(hidden.shape[:2])} tensor of the input positions "
            f"that count, got {mask.dtype} {tuple(mask.shape)} (use attention_mask.bool() or "
            "labels != -100)"
        )


def rmu_forget_loss(
    hidden: torch.Tensor,
    control: torch.Tensor,
    mask: torch.Tensor,
    coeff: float,
    reduction: Reduction = "token_mean",
) -> torch.Tensor:
    """RMU forget term (Li et al. 2024, WMDP, arXiv 2403.03218, RMU's L_forget).

    ``L = mean over counted positions t of mean_d (h_t,d - c · u_d)^2``: the squared distance to
    the scaled control vector, *averaged* over the hidden dimension D as upstream's
    ``F.mse_loss`` does (the paper writes the squared L2 norm, a sum over D: a factor D, absorbed
    by c, α and the learning rate).

    Args:
        hidden: ``(B, T, D)`` output of the chosen decoder block of the trained model.
        control: ``(D,)`` the unit control vector u (:func:`rmu_control_vector`).
        mask: ``(B, T)`` bool, **per input position, not shifted**: h_t is the representation
            of input token t itself, not a prediction of the next token. Pass
            ``attention_mask.bool()`` for plain-text corpora (upstream, WMDP) or
            ``labels != -100`` for answer tokens only (OU, TOFU).
        coeff: steering coefficient c (no default on purpose: 20 upstream/OU class, 6.5 in the
            released Zephyr recipe, 2 in OU's YAML).
        reduction: ``"token_mean"`` (mean over all counted positions of the batch; equals
            upstream's MSE when nothing is padded) or ``"sample_mean"`` (OU's per-sample mean).
    """
    _check_hidden(hidden, tuple(hidden.shape), mask)
    if control.shape != (hidden.shape[-1],):
        raise ValueError(
            f"control must be (D,) = ({hidden.shape[-1]},), got {tuple(control.shape)}"
        )
    if not math.isfinite(coeff):
        raise ValueError(f"coeff must be finite, got {coeff!r}")
    h = _upcast(hidden[mask])
    sq = (h - coeff * _upcast(control).to(h.dtype).detach()).pow(2).mean(-1)
    return _reduce_tokens(sq, mask, reduction, None)


def rmu_retain_loss(
    hidden: torch.Tensor,
    hidden_ref: torch.Tensor,
    mask: torch.Tensor,
    reduction: Reduction = "token_mean",
) -> torch.Tensor:
    """RMU retain term (arXiv 2403.03218, RMU's L_retain): ``mean_t mean_d (h_t,d - h^ref_t,d)^2``.

    Same reduction, mask convention (per input position, not shifted) and mean over D as
    :func:`rmu_forget_loss`. ``hidden_ref`` (frozen model, same layer) is detached. The weight α
    belongs to the composition.
    """
    _check_hidden(hidden, tuple(hidden_ref.shape), mask)
    h = _upcast(hidden[mask])
    h_ref = _upcast(hidden_ref[mask]).detach()
    return _reduce_tokens((h - h_ref).pow(2).mean(-1), mask, reduction, None)


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
