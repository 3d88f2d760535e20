"""RMU's losses on hidden states (Li et al. 2024, arXiv 2403.03218): the fixed random control
vector, the forget term that steers activations towards it and the retain term that keeps them.

Conventions as in :mod:`obliviate.methods.functional`, which re-exports every function here.
"""

from __future__ import annotations

import math

import torch

from obliviate.methods.likelihood_losses import Reduction, _reduce_tokens, _upcast


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
