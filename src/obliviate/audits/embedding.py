"""The embedding-space (soft-prompt) attack of the robustness audit (docs/audit.md).

Schwinn, Dobre, Xhonneux, Gidel & Günnemann 2024, "Soft Prompt Threats: Attacking Safety
Alignment and Unlearning in Open-Source LLMs through the Embedding Space", arXiv 2402.09063
(Sec. 3, the embedding attack, and its unlearning experiments): instead of searching discrete
tokens, the attacker optimises a few continuous input embeddings placed next to the question so
that the model assigns a high log-probability to the target answer. Their *universal* variant
optimises one set of embeddings on several questions and applies it to unseen ones; here it is
optimised on a seeded half of the forget items (:func:`obliviate.audits.scores.split_halves`) and
measured on the other half (and, reported apart, on the optimised half itself).

Update (projected signed / normalised gradient descent on the answer NLL L, per soft token ``j``):

    L-inf:  δ_j ← clip_ε(δ_j − α · sign(∇_δj L))
    L2:     δ_j ← Π_ε(δ_j − α · ∇_δj L / ‖∇_δj L‖₂),   Π_ε(v) = v · min(1, ε / ‖v‖₂)

The soft tokens are ``e₀ + δ`` with ``e₀`` the mean row of the model's input-embedding matrix
and δ starting at 0. ε and α are given in units of the typical size of an embedding row (the
mean over the vocabulary of ‖E_v‖∞ or ‖E_v‖₂, the norm the budget uses), so one setting means
the same on every model; ``embed_budget=None`` leaves δ unbounded, as in the paper.

Chen, Szyller, Xu & Himayat 2025 (arXiv 2502.15836) show that such soft tokens can make a model
emit text it never saw; the audit therefore runs the same attack on the retain model (the
control) and counts only what it recovers beyond that.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from obliviate.audits.runner import _Ctx

NORMS = ("linf", "l2")
POSITIONS = ("suffix", "prefix")


def project(delta: torch.Tensor, budget: float | None, norm: str) -> torch.Tensor:
    """``delta`` (…, d) projected onto the ε-ball of ``norm`` per soft token (last dimension).

    L-inf: every entry clamped to [−ε, ε]. L2: rows longer than ε scaled back to length ε,
    shorter rows unchanged. ``budget=None``: no projection.
    """
    if norm not in NORMS:
        raise ValueError(f"embed_norm must be one of {', '.join(NORMS)}, got {norm!r}")
    if budget is None:
        return delta
    if norm == "linf":
        return delta.clamp(-budget, budget)
    length = delta.norm(dim=-1, keepdim=True)
    return delta * torch.clamp(budget / length.clamp_min(1e-12), max=1.0)


def embedding_step(
    delta: torch.Tensor, grad: torch.Tensor, step_size: float, budget: float | None, norm: str
) -> torch.Tensor:
    """One attack step on ``delta`` given the gradient of the loss (the answer NLL) w.r.t. it:
    a signed (L-inf) or per-token normalised (L2) descent step of length ``step_size``, then
    :func:`project`. A soft token whose gradient is 0 does not move."""
    if norm not in NORMS:
        raise ValueError(f"embed_norm must be one of {', '.join(NORMS)}, got {norm!r}")
    if norm == "linf":
        direction = grad.sign()
    else:
        length = grad.norm(dim=-1, keepdim=True)
        direction = torch.where(length > 0, grad / length.clamp_min(1e-30), torch.zeros_like(grad))
    return project(delta - step_size * direction, budget, norm)


def embedding_scale(weight: torch.Tensor, norm: str) -> float:
    """Mean over the vocabulary of ‖E_v‖∞ (``linf``) or ‖E_v‖₂ (``l2``): the unit of ε and α."""
    w = weight.detach().float()
    rows = w.abs().amax(dim=-1) if norm == "linf" else w.norm(dim=-1)
    return float(rows.mean())


def per_item_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean answer-token NLL of each row, ``(B,)`` (labels −100 are not scored; EOS is, when it
    is a label). A row without answer tokens gives 0."""
    from obliviate.methods import functional as F

    logp, mask = F.token_logprobs(logits, labels)
    count = mask.sum(-1)
    return -(logp * mask).sum(-1) / count.clamp_min(1)


def with_soft_tokens(
    embeds: list[torch.Tensor],
    labels: list[list[int]],
    insert_at: list[int],
    soft: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A right-padded batch (inputs_embeds (B, T, d), attention_mask (B, T), labels (B, T)) with
    the ``soft`` tokens (n, d) inserted into item ``i`` before position ``insert_at[i]``; the
    soft tokens and the padding are not scored (−100)."""
    n = soft.shape[0]
    rows, labs = [], []
    for e, lab, k in zip(embeds, labels, insert_at):
        rows.append(torch.cat([e[:k], soft.to(e.dtype), e[k:]]))
        labs.append(lab[:k] + [-100] * n + lab[k:])
    width = max(r.shape[0] for r in rows)
    d = soft.shape[1]
    batch = rows[0].new_zeros((len(rows), width, d))
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=batch.device)
    out_labels = torch.full((len(rows), width), -100, dtype=torch.long, device=batch.device)
    for i, (r, lab) in enumerate(zip(rows, labs)):
        batch[i, : r.shape[0]] = r
        mask[i, : r.shape[0]] = 1
        out_labels[i, : r.shape[0]] = torch.tensor(lab, device=batch.device)
    return batch, mask, out_labels


class _Encoded:
    """The forget items as token embeddings with their labels and soft-token positions."""

    def __init__(self, model: Any, tok: Any, items: list[Any], ctx: _Ctx) -> None:
        from obliviate.data.templates import encode
        from obliviate.scoring import model_device

        s = ctx.settings
        table = model.get_input_embeddings()
        device = model_device(model)
        self.embeds, self.labels, self.insert_at = [], [], []
        bos = getattr(tok, "bos_token_id", None)
        for it in items:
            enc = encode(tok, it.question, it.answer, ctx.template, s.max_length)
            ids = torch.tensor(enc.input_ids, device=device)
            with torch.no_grad():
                self.embeds.append(table(ids))
            self.labels.append(list(enc.labels))
            if s.embed_position == "suffix":
                self.insert_at.append(enc.prompt_len)
            else:
                self.insert_at.append(1 if enc.input_ids and enc.input_ids[0] == bos else 0)

    def batches(self, size: int) -> list[slice]:
        return [slice(i, i + size) for i in range(0, len(self.embeds), size)]

    def nll(self, model: Any, soft: torch.Tensor, part: slice) -> torch.Tensor:
        x, mask, labels = with_soft_tokens(
            self.embeds[part], self.labels[part], self.insert_at[part], soft
        )
        logits = model(inputs_embeds=x, attention_mask=mask).logits
        return per_item_nll(logits, labels)


def embedding_attack(model: Any, tok: Any, ctx: _Ctx) -> dict[str, Any]:
    """Optimise the soft tokens on the optimisation half of the forget items (one universal set,
    ``embed_steps`` full-batch steps) and score every forget item with them.

    Returns ``prob`` (per measured item, exp(−NLL_avg) with EOS, as the audit's other rows),
    ``prob_in_sample`` (per optimised item), ``loss`` (first and last optimisation loss) and the
    item indices used.
    """
    from obliviate.audits.scores import split_halves

    s = ctx.settings
    opt_idx, measure_idx = split_halves(len(ctx.items), s.seed, s.embed_fraction)
    was_training = model.training
    model.eval()
    table = model.get_input_embeddings().weight
    scale = embedding_scale(table, s.embed_norm)
    budget = None if s.embed_budget is None else s.embed_budget * scale
    alpha = s.embed_step_size * scale
    init = table.detach().float().mean(0).expand(s.embed_tokens, -1).clone()
    delta = torch.zeros_like(init)
    train = _Encoded(model, tok, [ctx.items[i] for i in opt_idx], ctx)
    n = len(opt_idx)
    losses: list[float] = []
    for _ in range(s.embed_steps):
        delta.requires_grad_(True)
        grad = torch.zeros_like(delta)
        total = 0.0
        for part in train.batches(s.batch_size):
            nll = train.nll(model, init + delta, part)
            loss = nll.sum() / n
            grad += torch.autograd.grad(loss, [delta])[0]
            total += float(loss.detach())
        losses.append(total)
        delta = embedding_step(delta.detach(), grad, alpha, budget, s.embed_norm)
    soft = (init + delta).detach()

    def probs(idx: list[int]) -> list[float]:
        enc = train if idx is opt_idx else _Encoded(model, tok, [ctx.items[i] for i in idx], ctx)
        out: list[float] = []
        with torch.no_grad():
            for part in enc.batches(s.batch_size):
                out += [math.exp(-float(v)) for v in enc.nll(model, soft, part)]
        return out

    result = {
        "prob": probs(measure_idx),
        "prob_in_sample": probs(opt_idx),
        "loss": [losses[0], losses[-1]] if losses else [],
        "optimised_idx": opt_idx,
        "measured_idx": measure_idx,
        "delta_norm": float(delta.norm(dim=-1).max()) / scale if scale else 0.0,
    }
    model.train(was_training)
    return result
