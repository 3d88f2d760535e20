"""The maths of the concept-erasure methods as pure tensor functions (docs/diffusion.md).

Every function here is deterministic, has no side effects and is unit-tested against
hand-computed values (tests/unit/test_diffusion_functional.py). Reductions are stated per
function; "MSE" is the mean over every element, as ``torch.nn.MSELoss()`` in the reference
implementations.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import torch

from obliviate.data.types import DataError


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every element (``torch.nn.MSELoss`` with reduction "mean")."""
    if pred.shape != target.shape:
        raise ValueError(
            f"shape mismatch: prediction {tuple(pred.shape)} vs target {tuple(target.shape)}"
        )
    if pred.numel() == 0:
        raise ValueError("empty prediction: nothing to compare")
    return torch.nn.functional.mse_loss(pred, target)


def esd_target(
    eps_from: torch.Tensor,
    eps_concept: torch.Tensor,
    eps_null: torch.Tensor,
    negative_guidance: float,
) -> torch.Tensor:
    """ESD's training target (Gandikota+ 2023, arXiv 2303.07345, the negative-guidance
    target of §3, in the reference code's form, ``rohitgandikota/erasing, esd_sd.py``):

    ε* = ε_0(x_t, c_from, t) − η · (ε_0(x_t, c, t) − ε_0(x_t, ∅, t)),

    all from the frozen model ε_0. With c_from = c this equals the paper's
    ε_0(x_t, ∅) − η'·(ε_0(x_t, c) − ε_0(x_t, ∅)) with η' = η − 1 (so the code default η = 2 is
    the paper's η' = 1). The result is detached: it is a fixed regression target.
    """
    return (eps_from - negative_guidance * (eps_concept - eps_null)).detach()


def ablation_loss(eps_concept: torch.Tensor, eps_anchor: torch.Tensor) -> torch.Tensor:
    """Concept Ablation, model-based variant (Kumari+ 2023, arXiv 2303.13516, §3, model-based
    objective):
    ‖ε_θ(x_t, c*, t) − sg(ε_θ(x_t, c_anchor, t))‖², with x_t noised anchor-concept images;
    MSE over every element."""
    return mse(eps_concept, eps_anchor.detach())


def salun_loss(
    eps_forget: torch.Tensor,
    eps_mismatch: torch.Tensor,
    eps_retain: torch.Tensor,
    noise_retain: torch.Tensor,
    alpha: float,
) -> torch.Tensor:
    """SalUn for diffusion (Fan+ 2024, arXiv 2310.12508, §4, random-label
    objective for diffusion models as in the reference code):

    L = ‖ε_θ(x_t | c_f) − sg(ε_θ(x_t | c′))‖² + α · ‖ε_θ(x_r,t | c_r) − ε‖²,

    forget images x_t paired with a mismatched concept c′, plus the ordinary diffusion loss on
    retain images. Each term is an MSE over every element. (Saliency masking of the gradient is
    applied by the caller, :func:`saliency_mask`.)
    """
    return mse(eps_forget, eps_mismatch.detach()) + alpha * mse(eps_retain, noise_retain)


def saliency_mask(grads: dict[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """SalUn's weight saliency mask (arXiv 2310.12508, §4): m = 1[|∇_θ L_f| ≥ γ], with the
    threshold γ chosen globally over all given tensors so that a ``ratio`` share of the entries
    is kept (the largest gradient magnitudes; ties at the threshold are kept).

    Returns float masks (1.0 = trainable) with the shapes of ``grads``.
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"saliency ratio must be in (0, 1], got {ratio}")
    if not grads:
        raise ValueError("no gradients given")
    flat = torch.cat([g.detach().abs().flatten() for g in grads.values()])
    k = max(1, int(round(ratio * flat.numel())))  # noqa: RUF046 (ratio may be a tensor/numpy scalar)
    threshold = torch.topk(flat, k, sorted=True).values[-1]
    return {n: (g.detach().abs() >= threshold).to(g.dtype) for n, g in grads.items()}


def attention_resteer_loss(probs: torch.Tensor, concept_mask: torch.Tensor) -> torch.Tensor:
    """Forget-Me-Not's attention re-steering loss for one cross-attention layer (Zhang+ 2023,
    arXiv 2303.17591, "attention re-steering"): ‖A_concept‖², the squared attention probabilities that image
    queries put on the concept's tokens.

    ``probs`` is ``(B, heads, queries, tokens)`` (each row sums to 1); ``concept_mask`` is
    ``(B, tokens)``, true at the concept's token positions. Reduction: sum over the concept
    tokens, mean over batch, heads and queries.
    """
    if probs.ndim != 4:
        raise ValueError(f"probs must be (batch, heads, queries, tokens), got {tuple(probs.shape)}")
    b, _, _, n_tok = probs.shape
    if concept_mask.shape != (b, n_tok):
        raise ValueError(f"concept_mask must be ({b}, {n_tok}), got {tuple(concept_mask.shape)}")
    if not bool(concept_mask.any(dim=1).all()):
        raise ValueError("every sample needs at least one concept token in concept_mask")
    m = concept_mask.to(probs.dtype)[:, None, None, :]
    return (probs.pow(2) * m).sum(-1).mean()


def uce_closed_form(
    weight: torch.Tensor,
    erase_keys: torch.Tensor,
    erase_values: torch.Tensor,
    preserve_keys: torch.Tensor | None = None,
    erase_scale: float = 1.0,
    preserve_scale: float = 1.0,
    lam: float = 0.5,
) -> torch.Tensor:
    """UCE's closed-form edit of one projection matrix (Gandikota+ 2024, arXiv 2308.14761,
    §3, closed-form solution; ``rohitgandikota/unified-concept-editing``):

    W* = (λW + Σ_e s_e v*_e c_eᵀ + Σ_p s_p (W c_p) c_pᵀ) · (λI + Σ_e s_e c_e c_eᵀ + Σ_p s_p c_p c_pᵀ)⁻¹

    ``weight`` W is ``(out, in)``; ``erase_keys`` c_e ``(n_e, in)``; ``erase_values`` v*_e
    ``(n_e, out)`` (the edited outputs, W_0 c_guide); ``preserve_keys`` c_p ``(n_p, in)``.
    W* minimises λ‖W* − W‖² + Σ_e s_e‖W* c_e − v*_e‖² + Σ_p s_p‖W* c_p − W c_p‖². Computed in
    float64 with a linear solve; returned in ``weight``'s dtype.
    """
    if lam <= 0:
        raise ValueError(f"lambda must be positive (it keeps the system invertible), got {lam}")
    w = weight.detach().double()
    out_dim, in_dim = w.shape
    ce, ve = erase_keys.detach().double(), erase_values.detach().double()
    if ce.ndim != 2 or ce.shape[1] != in_dim:
        raise ValueError(f"erase_keys must be (n, {in_dim}), got {tuple(ce.shape)}")
    if ve.shape != (ce.shape[0], out_dim):
        raise ValueError(f"erase_values must be ({ce.shape[0]}, {out_dim}), got {tuple(ve.shape)}")
    lhs = lam * w + erase_scale * ve.T @ ce  # (out, in)
    rhs = lam * torch.eye(in_dim, dtype=torch.float64) + erase_scale * ce.T @ ce  # (in, in)
    if preserve_keys is not None and preserve_keys.numel():
        cp = preserve_keys.detach().double()
        if cp.ndim != 2 or cp.shape[1] != in_dim:
            raise ValueError(f"preserve_keys must be (n, {in_dim}), got {tuple(cp.shape)}")
        lhs = lhs + preserve_scale * (w @ cp.T) @ cp
        rhs = rhs + preserve_scale * cp.T @ cp
    # W* = lhs @ rhs^-1  <=>  rhs^T W*^T = lhs^T (rhs is symmetric)
    w_new = torch.linalg.solve(rhs, lhs.T).T
    return w_new.to(weight.dtype)


def anchor_prompt(prompt: str, concept: str, anchor: str) -> str:
    """``prompt`` with the concept (whole words, case-insensitive) replaced by ``anchor``;
    ``anchor=""`` removes it. Whitespace is normalised. A :class:`DataError` when the prompt
    does not contain the concept."""
    pattern = re.compile(rf"(?<!\w){re.escape(concept.strip())}(?!\w)", re.IGNORECASE)
    if not concept.strip() or not pattern.search(prompt):
        raise DataError(f"prompt {prompt!r} does not contain the concept {concept!r}")
    return " ".join(pattern.sub(anchor.strip(), prompt).split())


def contains_concept(prompt: str, concept: str) -> bool:
    pattern = re.compile(rf"(?<!\w){re.escape(concept.strip())}(?!\w)", re.IGNORECASE)
    return bool(concept.strip()) and bool(pattern.search(prompt))


def align_replacement(
    length: int, start: int, n_concept: int, n_anchor: int
) -> list[tuple[int, int]]:
    """Token alignment of a prompt and its copy with the concept replaced (UCE's erase keys).

    The prompt holds the concept's ``n_concept`` tokens at ``start``; the guide prompt holds
    ``n_anchor`` anchor tokens there instead (0 when the concept was removed); both are padded
    to ``length``. Returns ``(prompt position, guide position)`` pairs:

    - concept token i -> anchor token min(i, n_anchor − 1); with no anchor, the token before
      the concept (its embedding is the same in both prompts, so every erase prompt gets the
      same, consistent target for its concept token);
    - the j-th token after the concept -> the j-th token after the anchor, while both exist.

    The UCE code aligns only from the concept's last token onward and trims the longer
    sequence; this keeps the concept token itself and shifts the suffix exactly.
    """
    if not (
        start > 0
        and n_concept > 0
        and start + n_concept <= length
        and n_anchor >= 0
        and start + n_anchor <= length
    ):
        raise ValueError(
            f"bad alignment: length={length}, start={start}, "
            f"n_concept={n_concept}, n_anchor={n_anchor}"
        )
    pairs = [
        (start + i, start + min(i, n_anchor - 1) if n_anchor else start - 1)
        for i in range(n_concept)
    ]
    j = 0
    while start + n_concept + j < length and start + n_anchor + j < length:
        pairs.append((start + n_concept + j, start + n_anchor + j))
        j += 1
    return pairs


def find_subsequence(ids: list[int], sub: list[int]) -> int:
    """Start index of the first occurrence of ``sub`` in ``ids``, or -1."""
    if not sub:
        return -1
    for i in range(len(ids) - len(sub) + 1):
        if ids[i : i + len(sub)] == sub:
            return i
    return -1


# ----------------------------------------------------------------------------- Selective Amnesia


def diagonal_fisher(per_sample_grads: Iterable[list[torch.Tensor]]) -> list[torch.Tensor]:
    """The empirical diagonal Fisher information of Selective Amnesia (Heng & Soh 2023,
    arXiv 2305.10120, §3.1, the EWC term): F_i = (1/N) Σ_n (∂ log p(x_n | θ*) / ∂θ_i)², with
    the diffusion loss standing for −log p. Each item of ``per_sample_grads`` is one sample's
    gradients, one tensor per parameter; they are consumed one at a time (a generator keeps
    one sample's gradients in memory). Returns one tensor per parameter."""
    total: list[torch.Tensor] | None = None
    n = 0
    for grads in per_sample_grads:
        if total is None:
            total = [g.detach().pow(2) for g in grads]
        elif len(grads) != len(total):
            raise ValueError("every sample needs one gradient per parameter")
        else:
            total = [a + g.detach().pow(2) for a, g in zip(total, grads)]
        n += 1
    if total is None:
        raise ValueError("no samples: the Fisher information needs at least one gradient")
    return [a / n for a in total]


def ewc_penalty(
    params: list[torch.Tensor],
    anchors: list[torch.Tensor],
    fisher: list[torch.Tensor],
    lam: float,
) -> torch.Tensor:
    """Selective Amnesia's EWC term (Heng & Soh 2023, arXiv 2305.10120, §3.1, Kirkpatrick+
    2017): (λ / 2) Σ_i F_i (θ_i − θ*_i)², summed over every entry of every parameter, with
    θ* the original parameters and F their diagonal Fisher (:func:`diagonal_fisher`)."""
    if not (len(params) == len(anchors) == len(fisher)):
        raise ValueError(
            f"{len(params)} parameters, {len(anchors)} anchors and {len(fisher)} Fisher "
            "tensors: give one of each per parameter"
        )
    if not params:
        raise ValueError("no parameters: the EWC penalty needs at least one")
    total = sum(
        ((p - a.detach()).pow(2) * f.detach()).sum() for p, a, f in zip(params, anchors, fisher)
    )
    return 0.5 * lam * torch.as_tensor(total)


# ----------------------------------------------------------------------------- EraseDiff


def erasediff_direction(
    grad_remain: list[torch.Tensor],
    grad_forget_theta: list[torch.Tensor],
    grad_forget_phi: list[torch.Tensor],
    lam: float,
) -> list[torch.Tensor]:
    """EraseDiff's first-order update direction (Wu+ 2024, arXiv 2401.05779, §3, the update
    of Algorithm 1): d = ∇F(θ) + λ (∇f(θ) − ∇f(φ_K)), with F the remain loss, f the forget
    loss and φ_K the lower-level iterate (K gradient steps on f from θ)."""
    if not (len(grad_remain) == len(grad_forget_theta) == len(grad_forget_phi)):
        raise ValueError("the three gradient lists must have one tensor per parameter")
    return [
        gr + lam * (gt - gp) for gr, gt, gp in zip(grad_remain, grad_forget_theta, grad_forget_phi)
    ]


def erasediff_loss(
    remain: torch.Tensor,
    forget_theta: torch.Tensor,
    forget_phi: torch.Tensor,
    params: list[torch.Tensor],
    grad_forget_phi: list[torch.Tensor | None],
    lam: float,
) -> torch.Tensor:
    """A scalar whose value is EraseDiff's penalised objective F(θ) + λ (f(θ) − f(φ_K))
    (arXiv 2401.05779, §3) and whose gradient in ``params`` is
    :func:`erasediff_direction`: φ_K is a constant of θ in the first-order method, so
    −λ ∇f(φ_K) enters through a term of value 0, −λ Σ ⟨∇f(φ_K), θ − sg(θ)⟩."""
    if len(params) != len(grad_forget_phi):
        raise ValueError(f"{len(params)} parameters but {len(grad_forget_phi)} gradients")
    shift = sum(
        (g.detach() * (p - p.detach())).sum()
        for p, g in zip(params, grad_forget_phi)
        if g is not None
    )
    return remain + lam * (forget_theta - forget_phi.detach()) - lam * torch.as_tensor(shift)


def bilevel_step(
    theta: list[torch.Tensor],
    grad_remain: Callable[[list[torch.Tensor]], list[torch.Tensor]],
    grad_forget: Callable[[list[torch.Tensor]], list[torch.Tensor]],
    lam: float,
    inner_steps: int,
    inner_lr: float,
    lr: float,
) -> list[torch.Tensor]:
    """One EraseDiff outer step with plain gradient descent (arXiv 2401.05779, Algorithm 1):
    φ_0 = θ, φ_k = φ_{k−1} − α ∇f(φ_{k−1}) for k = 1..K, then
    θ ← θ − ζ (∇F(θ) + λ (∇f(θ) − ∇f(φ_K))). ``grad_*`` map parameters to gradients.
    (The eraser applies the same direction through Adam: :func:`erasediff_loss`.)"""
    if inner_steps < 1:
        raise ValueError(f"inner_steps must be at least 1, got {inner_steps}")
    phi = [p.detach().clone() for p in theta]
    for _ in range(inner_steps):
        phi = [p - inner_lr * g for p, g in zip(phi, grad_forget(phi))]
    d = erasediff_direction(grad_remain(theta), grad_forget(theta), grad_forget(phi), lam)
    return [p - lr * g for p, g in zip(theta, d)]


# ----------------------------------------------------------------------------- SPM


def spm_erase_target(
    eps_target: torch.Tensor, eps_surrogate: torch.Tensor, eta: float
) -> torch.Tensor:
    """SPM's erasing target (Lyu+ 2024, arXiv 2312.16145, §3.2, the erasing loss):
    ε* = ε_0(x_t, c_sur) − η (ε_0(x_t, c_tar) − ε_0(x_t, c_sur)), from the frozen model,
    detached; the adapted model's ε(x_t, c_tar) is regressed onto it."""
    return (eps_surrogate - eta * (eps_target - eps_surrogate)).detach()


def adapter_forward(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    down: torch.Tensor,
    up: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """A linear layer with SPM's one-dimensional adapter (arXiv 2312.16145, §3.1, the
    rank-1 membrane): y = W x + b + s · u (dᵀ x), ``down`` d ``(r, in)``, ``up`` u
    ``(out, r)``, r = 1 for SPM. Equal to a linear layer of weight W + s·u d
    (:func:`adapter_delta`)."""
    base = torch.nn.functional.linear(x, weight, bias)
    return base + scale * torch.nn.functional.linear(torch.nn.functional.linear(x, down), up)


def adapter_delta(down: torch.Tensor, up: torch.Tensor, scale: float) -> torch.Tensor:
    """The weight change s · u d of an adapter, ``(out, in)``, merged into W."""
    if down.ndim != 2 or up.ndim != 2 or up.shape[1] != down.shape[0]:
        raise ValueError(
            f"adapter shapes do not fit: down {tuple(down.shape)}, up {tuple(up.shape)}"
        )
    return scale * up @ down


# ----------------------------------------------------------------------------- UnlearnDiff


def nearest_tokens(
    embeds: torch.Tensor, vocab: torch.Tensor, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """The projection of continuous prompt embeddings onto the vocabulary (UnlearnDiff,
    Zhang+ 2023, arXiv 2310.11868, §4, the discrete projection of the token optimisation;
    as in Wen+ 2023, arXiv 2302.03668): for each row of ``embeds`` ``(K, D)`` the id of the
    nearest row of ``vocab`` ``(V, D)`` in Euclidean distance among the ``allowed`` ids
    (bool ``(V,)``; ties: the smallest id)."""
    if embeds.ndim != 2 or vocab.ndim != 2 or embeds.shape[1] != vocab.shape[1]:
        raise ValueError(
            f"embeds (K, D) and vocab (V, D) must share D: {tuple(embeds.shape)}, "
            f"{tuple(vocab.shape)}"
        )
    dist = torch.cdist(embeds.detach().double(), vocab.detach().double())
    if allowed is not None:
        if not bool(allowed.any()):
            raise ValueError("no allowed tokens to search over")
        dist = dist.masked_fill(~allowed.to(dist.device)[None, :], float("inf"))
    return dist.argmin(dim=1)


def token_search_step(
    continuous: torch.Tensor,
    grad_at_projection: torch.Tensor,
    vocab: torch.Tensor,
    lr: float,
    allowed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the gradient-guided token search (arXiv 2310.11868, §4; the projected
    update of Wen+ 2023, arXiv 2302.03668): the gradient of the attack loss, taken at the
    projected (discrete) embeddings, moves the continuous embeddings,
    e_k ← e_k − η · ∇_k / ‖∇_k‖ per token k (rows with a zero gradient stay; the normalised
    step makes η independent of the text encoder's embedding scale, as Adam's steps are in
    the reference), then they are projected again (:func:`nearest_tokens`). Returns the new
    continuous embeddings and the token ids."""
    if continuous.shape != grad_at_projection.shape:
        raise ValueError("the gradient must have the shape of the continuous embeddings")
    g = grad_at_projection.detach().to(continuous.dtype)
    norm = g.norm(dim=-1, keepdim=True)
    step = torch.where(norm > 0, g / norm.clamp_min(1e-30), torch.zeros_like(g))
    new = (continuous.detach() - lr * step).detach()
    return new, nearest_tokens(new, vocab, allowed)
