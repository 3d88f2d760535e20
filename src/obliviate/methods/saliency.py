"""Weight saliency (SalUn, Fan et al. ICLR 2024, arXiv 2310.12508; docs/methods.md).

SalUn restricts unlearning to the weights that matter most for the forget loss:

    g = ∇_θ L_f(θ_0; D_f)                       (accumulated over the whole forget set)
    m = 1[|g| ≥ τ]                               (elementwise, paper eq. 6)
    θ_u = m ⊙ (θ_0 + Δθ) + (1 − m) ⊙ θ_0          (paper eq. 7: only salient weights move)

The threshold τ is *global*: one value over every trainable weight of the model (not per
tensor), chosen so that the top ``fraction`` of entries by |g| is kept (τ = the k-th largest
|g| with k = ⌊fraction · N⌋; ties at τ are kept; when τ = 0, only weights with a non-zero
gradient are kept). The paper's default keeps the top 50%.

The mask is used through two training hooks: after each backward pass the gradients of
masked-out weights are set to 0 (so they do not count in gradient clipping and give AdamW
nothing to follow), and after each optimiser step the masked-out weights are restored to
θ_0 (so decoupled weight decay, which moves every weight, cannot move them either). Any
composed gradient method accepts ``saliency=<fraction>``; the ``salun`` method
(:mod:`obliviate.methods.salun`) is SalUn's own recipe on LLMs: random-answer fine-tuning on D_f
(paper: "random labelling") + NLL on D_r, with saliency 0.5.

Deliberate differences from the released code (OPTML-Group/Unlearn-Saliency,
``Classification/generate_mask.py``): that script calls ``optimizer.step()`` while it
accumulates the gradients, so g is not taken at θ_0; here no step is taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from obliviate.data.collate import pad_id_of
from obliviate.data.templates import Encoded
from obliviate.methods.job import UnlearnJob

# --------------------------------------------------------------------------- pure mask maths


def _float_from_bits(bits: int) -> Any:
    import torch

    return torch.tensor([bits], dtype=torch.int32).view(torch.float32)[0]


def global_threshold(scores: Sequence[Any], k: int) -> float:
    """The k-th largest value over all entries of the non-negative float tensors ``scores``.

    Exact, and without concatenating the tensors (a model-sized copy): non-negative float32
    values order like their int32 bit patterns, so a bisection over the 31 bits needs 31
    counting passes. ``k`` must be in ``[1, N]``.
    """
    import torch

    n = sum(int(s.numel()) for s in scores)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}] (the number of entries), got {k}")
    flat = [s.detach().reshape(-1).float() for s in scores]
    if any(bool((s < 0).any()) or not bool(torch.isfinite(s).all()) for s in flat):
        raise ValueError("saliency scores must be finite and non-negative (|gradient|)")

    def count_at_least(t: Any) -> int:
        return sum(int((s >= t.to(s.device)).sum()) for s in flat)

    lo, hi = 0, 0x7F800000  # bit patterns of 0.0 and +inf
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_at_least(_float_from_bits(mid)) >= k:
            lo = mid
        else:
            hi = mid - 1
    return float(_float_from_bits(lo))


def saliency_masks(scores: Sequence[Any], fraction: float) -> tuple[list[Any], float]:
    """Boolean masks keeping the top ``fraction`` of all entries of ``scores`` (|g| values).

    Rule (module docstring): τ = k-th largest score, k = ⌊fraction·N⌋ (at least 1);
    m = scores ≥ τ, or scores > 0 when τ = 0 (weights the forget loss does not touch are never
    salient). Returns ``(masks, tau)``.
    """
    if not (isinstance(fraction, (int, float)) and 0 < float(fraction) <= 1):
        raise ValueError(f"saliency fraction must be in (0, 1], got {fraction!r}")
    n = sum(int(s.numel()) for s in scores)
    if n == 0:
        raise ValueError("no trainable weights to build a saliency mask over")
    k = max(1, int(n * float(fraction)))
    tau = global_threshold(scores, k)
    if tau > 0:
        masks = [s >= tau for s in scores]
    else:
        masks = [s > 0 for s in scores]
    return masks, tau


# --------------------------------------------------------------------------- gradients at θ_0


def forget_gradient_scores(
    job: UnlearnJob, method: Any, forget: list[Encoded], batch_size: int
) -> list[tuple[Any, Any]]:
    """``[(param, |g|)]`` for every trainable parameter of ``job.model``, with
    g = ∇_θ L_f(θ_0) of the method's forget term, averaged over the forget set (each batch's
    loss weighted by its share of the items). A term may name a different loss for its
    saliency with a ``saliency_loss(model, batch, job)`` method (the random-answer term uses
    the NLL of the true answers, as SalUn does). The model is left with no gradients and in its
    previous train/eval mode; no weight changes."""
    import torch

    from obliviate.scoring import model_device
    from obliviate.training import collate_encoded

    model = job.model
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("saliency: the model has no trainable parameters")
    device = model_device(model)
    was_training = model.training
    model.eval()  # no dropout while measuring saliency
    for p in params:
        p.grad = None
    pad = pad_id_of(job.tokenizer)
    n = len(forget)
    for i in range(0, n, batch_size):
        idx = list(range(i, min(i + batch_size, n)))
        batch = collate_encoded([forget[j] for j in idx], idx, pad)
        batch = {k: v.to(device) for k, v in batch.items()}
        term = method.forget
        loss_fn = getattr(term, "saliency_loss", term)
        loss = loss_fn(model, batch, job) * (len(idx) / n)
        if not torch.isfinite(loss):
            raise ValueError(f"saliency: the forget loss is {loss.item()} at the target model")
        loss.backward()
    out = []
    for p in params:
        g = p.grad.detach().abs() if p.grad is not None else torch.zeros_like(p)
        out.append((p, g))
        p.grad = None
    model.train(was_training)
    return out


@dataclass
class SaliencyHook:
    """Training hook that keeps masked-out weights at θ_0 (see the module docstring)."""

    params: list[Any]
    masks: list[Any]  # bool, True = salient (trainable)
    frozen_values: list[Any]  # θ_0 at the masked-out positions (1-D)
    kept: int = 0
    total: int = 0
    tau: float = 0.0

    @property
    def kept_fraction(self) -> float:
        return self.kept / self.total if self.total else 0.0

    def _on_device(self, i: int) -> None:
        p = self.params[i]
        if self.masks[i].device != p.device:
            self.masks[i] = self.masks[i].to(p.device)
            self.frozen_values[i] = self.frozen_values[i].to(p.device)

    def rebind(self, new: dict[int, Any]) -> None:
        """Follow the parameters that sharding replaced (``new``: id of the old parameter -> its
        replacement, before any step): an FSDP2 parameter (a DTensor) keeps the part of its
        mask and of θ_0 that this rank holds. Masks are equal on every rank, so each cuts its
        own part without communication."""
        from torch.distributed.tensor import DTensor, distribute_tensor

        for i, old in enumerate(self.params):
            p = new.get(id(old), old)
            if isinstance(p, DTensor):
                full = self.masks[i].to(p.device)
                mask = distribute_tensor(full, p.device_mesh, p.placements, src_data_rank=None)
                self.masks[i] = mask.to_local()
                self.frozen_values[i] = p.to_local().detach().masked_select(~self.masks[i])
                self.frozen_values[i] = self.frozen_values[i].clone()
            self.params[i] = p

    def after_backward(self, model: Any) -> None:
        import torch

        with torch.no_grad():
            for i, p in enumerate(self.params):
                if p.grad is not None:
                    self._on_device(i)
                    _local(p.grad).masked_fill_(~self.masks[i], 0)

    def after_step(self, model: Any) -> None:
        import torch

        with torch.no_grad():
            for i, p in enumerate(self.params):
                self._on_device(i)
                values = self.frozen_values[i].to(p.dtype)
                _local(p.data).masked_scatter_(~self.masks[i], values)


def _local(t: Any) -> Any:
    """This rank's part of a sharded (DTensor) tensor; a plain tensor itself."""
    return t.to_local() if hasattr(t, "to_local") else t


def build_saliency_hook(scored: list[tuple[Any, Any]], fraction: float) -> SaliencyHook:
    """A :class:`SaliencyHook` from ``[(param, |g|)]`` keeping the top ``fraction``."""
    params = [p for p, _ in scored]
    masks, tau = saliency_masks([g for _, g in scored], fraction)
    frozen = [p.detach().masked_select(~m).clone() for p, m in zip(params, masks)]
    kept = sum(int(m.sum()) for m in masks)
    total = sum(int(m.numel()) for m in masks)
    return SaliencyHook(params, masks, frozen, kept, total, tau)


def saliency_hooks(
    job: UnlearnJob, method: Any, forget_encoded: list[Encoded], fraction: float
) -> list[SaliencyHook]:
    """SalUn hooks for a composed method: mask = top ``fraction`` of |∇ forget loss| at θ_0.

    Called by :class:`obliviate.methods.base.ComposedMethod` after the PEFT adapter and the
    ``trainable`` selection are applied, so the mask covers exactly the trainable weights.
    """
    if job.accelerator is not None:  # measure where training will run
        job.model.to(job.accelerator.device)
    batch_size = method.train.batch_size if hasattr(method, "train") else 8
    scored = forget_gradient_scores(job, method, forget_encoded, batch_size)
    return [build_saliency_hook(scored, fraction)]
