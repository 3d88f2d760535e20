"""Rank-one (ROME) and multi-layer batched (MEMIT) edits that make a model refuse.

Pure updates (docs/methods.md):

- ROME (Meng+ 2022, arXiv 2202.05262, eq. 2): with key k*, target value v* and key second moment
  C, ``W′ = W + (v* − W k*)·(C⁻¹k*)ᵀ / ((C⁻¹k*)ᵀ k*)``. Then ``W′k* = v*`` exactly, and keys
  orthogonal to C⁻¹k* are untouched.
- MEMIT (Meng+ 2023, arXiv 2210.07229, eq. 14): for keys K (one row per edited prompt) and
  residuals R (desired minus current output, one row per prompt), ``Δ = Rᵀ K (C + KᵀK)⁻¹``
  with C = λ·E[k kᵀ] (λ: the update weight). The residual at the top edited layer is spread
  over the edited layers, the l-th of the remaining n layers taking 1/n of what is left.

Target values (ROME §3.1 "Step 2", MEMIT eq. 16): a vector δ added to the edited module's output
at the subject's last token is optimised with Adam so that the model outputs the refusal:
``L(δ) = NLL(refusal | prompts) + kl_factor·KL(p_0 ∥ p_δ) on "{subject} is a"
+ weight_decay·‖δ‖ / ‖v_0‖²``, with ‖δ‖ clamped to ``clamp_norm_factor``·‖v_0‖ after each step
(v_0: the unedited output). ROME edits the MLP output projection of one layer; MEMIT optimises
δ at the output of the top edited *block* (the residual stream) and distributes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from obliviate.data.collate import pad_batch, pad_id_of
from obliviate.data.templates import PromptTemplate, encode
from obliviate.editing.arch import EditableModel, capture_io, patch_output
from obliviate.editing.subjects import SubjectSpan, subject_of, subject_span

# ----------------------------------------------------------------------------- pure updates


def rank_one_update(
    C: torch.Tensor, k: torch.Tensor, residual: torch.Tensor, ridge: float = 1e-6
) -> torch.Tensor:
    """ROME's Δ = residual·(C⁻¹k)ᵀ / ((C⁻¹k)ᵀ k), shape (d_out, d_in).

    ``residual`` = v* − W k*. C is regularised as C + ridge·(tr C / d)·I before solving, so a
    rank-deficient estimate (few statistics tokens) still gives a solution."""
    if C.dim() != 2 or C.shape[0] != C.shape[1] or C.shape[0] != k.shape[0]:
        raise ValueError(
            f"C must be (d, d) with d = len(k); got {tuple(C.shape)} and {tuple(k.shape)}"
        )
    Cd, kd = C.double(), k.double()
    d = Cd.shape[0]
    reg = Cd + ridge * (torch.trace(Cd) / d).clamp_min(1e-12) * torch.eye(
        d, dtype=Cd.dtype, device=Cd.device
    )
    u = torch.linalg.solve(reg, kd)
    denom = u @ kd
    if abs(float(denom)) < 1e-12:
        raise ValueError("the key is (numerically) zero: cannot build a rank-one edit")
    return (torch.outer(residual.double(), u) / denom).to(residual.dtype)


def memit_update(R: torch.Tensor, K: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """MEMIT's Δ = Rᵀ K (C + KᵀK)⁻¹ for R (N, d_out), K (N, d_in), C (d_in, d_in): (d_out, d_in)."""
    if R.shape[0] != K.shape[0] or C.shape != (K.shape[1], K.shape[1]):
        raise ValueError(
            f"shapes do not fit: R {tuple(R.shape)}, K {tuple(K.shape)}, C {tuple(C.shape)}"
        )
    Kd = K.double()
    A = C.double() + Kd.T @ Kd  # symmetric
    return torch.linalg.solve(A, Kd.T @ R.double()).T.to(R.dtype)


# ----------------------------------------------------------------------------- prompts


@dataclass
class EditPrompt:
    """One forget question prepared for editing."""

    group: int
    subject: str | None
    span: SubjectSpan  # the subject's tokens in the prompt (for causal tracing)
    key_pos: int  # where keys are read and values patched
    target_ids: list[int]  # prompt + refusal (+ EOS)
    target_labels: list[int]
    answer_ids: list[int]  # prompt + the true answer (for tracing)
    answer_labels: list[int]


@dataclass
class EditConfig:
    refusal: str = "I don't know."
    steps: int = 25
    lr: float = 0.5
    weight_decay: float = 1e-3
    clamp_norm_factor: float = 4.0
    kl_factor: float = 0.0625
    batch_size: int = 32
    max_length: int = 512
    seed: int = 0
    subject_field: str = "subject"
    key_position: str = "subject_last"  # or "prompt_last"
    logs: list[dict[str, Any]] = field(default_factory=list)


def prepare_prompts(
    tokenizer: Any, template: PromptTemplate, items: Sequence[Any], cfg: EditConfig
) -> list[EditPrompt]:
    """Encode forget items with the refusal as target; group them by subject (items without a
    subject, and every item when ``cfg.key_position == "prompt_last"``, form groups of one)."""
    from obliviate.data.types import DataError

    if cfg.key_position not in ("subject_last", "prompt_last"):
        raise ValueError(
            f"key_position must be 'subject_last' or 'prompt_last', not {cfg.key_position!r}"
        )
    groups: dict[str, int] = {}
    out = []
    for i, it in enumerate(items):
        if it.is_document:
            raise DataError(
                f"forget item {i + 1} is a plain document: model editing needs questions"
            )
        subj = subject_of(it, cfg.subject_field)
        tgt = encode(tokenizer, it.question, cfg.refusal, template, cfg.max_length)
        ans = encode(tokenizer, it.question, it.answer, template, cfg.max_length)
        span = subject_span(tokenizer, tgt.input_ids[: tgt.prompt_len], subj)
        by_subject = cfg.key_position == "subject_last" and span.found
        key_pos = span.last if by_subject else tgt.prompt_len - 1
        g = groups.setdefault(subj if by_subject else f"\0item{i}", len(groups))  # type: ignore[arg-type]
        out.append(
            EditPrompt(
                g,
                subj if span.found else None,
                span,
                key_pos,
                tgt.input_ids,
                tgt.labels,
                ans.input_ids,
                ans.labels,
            )
        )
    return out


def _batch(
    seqs: Sequence[Sequence[int]], labels: Sequence[Sequence[int]] | None, pad: int, device: Any
) -> dict[str, torch.Tensor]:
    b = pad_batch(seqs, pad, labels)
    return {k: v.to(device) for k, v in b.items()}


@torch.no_grad()
def read_at(
    model: Any, tokenizer: Any, module: Any, prompts: Sequence[EditPrompt], batch_size: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """(keys, values) of ``module`` at each prompt's subject-last token: (N, d_in), (N, d_out)."""
    from obliviate.scoring import model_device

    device, pad = model_device(model), pad_id_of(tokenizer)
    keys, values = [], []
    for i in range(0, len(prompts), batch_size):
        chunk = prompts[i : i + batch_size]
        b = _batch([p.target_ids for p in chunk], None, pad, device)
        store: dict[str, torch.Tensor] = {}
        with capture_io(module, [p.key_pos for p in chunk], store):
            model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        keys.append(store.get("key", torch.zeros(len(chunk), 0, device=device)))
        values.append(store["value"])
    return torch.cat(keys).float(), torch.cat(values).float()


def _essence(
    tokenizer: Any, subject: str | None, device: Any
) -> tuple[dict[str, torch.Tensor], list[int]] | None:
    """The KL prompt ``"{subject} is a"`` (ROME's essence-drift prompt) and its subject position."""
    from obliviate.editing.subjects import last_token_of

    if not subject:
        return None
    ids = list(tokenizer(f"{subject} is a")["input_ids"])
    last = last_token_of(tokenizer, ids, subject)
    if last is None:
        return None
    b = {
        "input_ids": torch.tensor([ids], device=device),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long, device=device),
    }
    return b, [last]


def optimise_delta(
    model: Any,
    tokenizer: Any,
    module: Any,
    prompts: Sequence[EditPrompt],
    v0_norm: float,
    cfg: EditConfig,
) -> torch.Tensor:
    """δ added to ``module``'s output at each prompt's subject-last token so the model outputs
    the refusal (module docstring: loss, weight decay, clamp)."""
    from obliviate.methods import functional as F
    from obliviate.scoring import model_device

    device, pad = model_device(model), pad_id_of(tokenizer)
    b = _batch([p.target_ids for p in prompts], [p.target_labels for p in prompts], pad, device)
    pos = [p.key_pos for p in prompts]
    d = None
    with torch.no_grad():
        store: dict[str, torch.Tensor] = {}
        with capture_io(module, pos[:1], store):
            model(input_ids=b["input_ids"][:1], attention_mask=b["attention_mask"][:1])
        d = store["value"].shape[-1]
    essence = _essence(tokenizer, prompts[0].subject, device) if cfg.kl_factor > 0 else None
    ref_logp = None
    if essence is not None:
        with torch.no_grad():
            ref_logp = torch.log_softmax(model(**essence[0]).logits[:, -1].float(), -1)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    delta = torch.zeros(d, device=device, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=cfg.lr)
    limit = cfg.clamp_norm_factor * max(v0_norm, 1e-8)
    try:
        for step in range(cfg.steps):
            opt.zero_grad()
            with torch.enable_grad():
                with patch_output(module, pos, delta=delta):
                    logits = model(
                        input_ids=b["input_ids"], attention_mask=b["attention_mask"]
                    ).logits
                nll = F.nll_loss(logits, b["labels"])
                loss = nll + cfg.weight_decay * delta.norm() / max(v0_norm, 1e-8) ** 2
                kl = torch.zeros(())
                if essence is not None and ref_logp is not None:
                    with patch_output(module, essence[1], delta=delta):
                        new_logp = torch.log_softmax(model(**essence[0]).logits[:, -1].float(), -1)
                    kl = torch.nn.functional.kl_div(
                        new_logp, ref_logp, log_target=True, reduction="batchmean"
                    )
                    loss = loss + cfg.kl_factor * kl
                loss.backward()
            opt.step()
            with torch.no_grad():
                n = delta.norm()
                if n > limit:
                    delta.mul_(limit / n)
            if step == cfg.steps - 1 or step == 0:
                cfg.logs.append(
                    {
                        "step": step,
                        "nll": float(nll.detach()),
                        "kl": float(kl.detach()),
                        "delta_norm": float(delta.detach().norm()),
                    }
                )
    finally:
        for p in params:
            p.requires_grad_(True)
    return delta.detach()


def _groups(prompts: Sequence[EditPrompt]) -> list[list[EditPrompt]]:
    out: dict[int, list[EditPrompt]] = {}
    for p in prompts:
        out.setdefault(p.group, []).append(p)
    return list(out.values())


def rome_edit(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[EditPrompt],
    layer: int,
    C: torch.Tensor,
    cfg: EditConfig,
) -> list[dict[str, Any]]:
    """Sequential rank-one edits of layer ``layer``, one per subject group: k* is the mean key of
    the group's prompts at the subject's last token, v* = v_0 + δ (so v* − W k* = δ)."""
    ed = EditableModel(model)
    module = ed.down(layer)
    report = []
    for group in _groups(prompts):
        K, V = read_at(model, tokenizer, module, group, cfg.batch_size)
        k_star, v0 = K.mean(0), V.mean(0)
        delta = optimise_delta(model, tokenizer, module, group, float(v0.norm()), cfg)
        upd = rank_one_update(C.to(k_star.device), k_star, delta)
        ed.add_to_weight(layer, upd)
        report.append(
            {
                "subject": group[0].subject,
                "prompts": len(group),
                "layer": layer,
                "delta_norm": float(delta.norm()),
                "update_norm": float(upd.norm()),
            }
        )
    return report


def memit_edit(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[EditPrompt],
    layers: Sequence[int],
    C: dict[int, torch.Tensor],
    update_weight: float,
    cfg: EditConfig,
) -> list[dict[str, Any]]:
    """MEMIT over ``layers`` (ascending): targets at the top layer's block output, residuals
    spread over the layers, one least-squares update per layer for all prompts at once."""
    ed = EditableModel(model)
    layers = sorted(layers)
    top = ed.blocks[layers[-1]]
    _, H0 = read_at(model, tokenizer, top, prompts, cfg.batch_size)
    Z = H0.clone()
    idx = {id(p): i for i, p in enumerate(prompts)}
    for group in _groups(prompts):
        rows = [idx[id(p)] for p in group]
        delta = optimise_delta(
            model, tokenizer, top, group, float(H0[rows].norm(dim=-1).mean()), cfg
        )
        Z[rows] = H0[rows] + delta
    report = []
    for i, layer in enumerate(layers):
        K, _ = read_at(model, tokenizer, ed.down(layer), prompts, cfg.batch_size)
        _, H = read_at(model, tokenizer, top, prompts, cfg.batch_size)
        R = (Z - H) / (len(layers) - i)
        upd = memit_update(R, K, update_weight * C[layer].to(K.device))
        ed.add_to_weight(layer, upd)
        report.append(
            {
                "layer": layer,
                "residual_norm": float(R.norm(dim=-1).mean()),
                "update_norm": float(upd.norm()),
            }
        )
    _, H = read_at(model, tokenizer, top, prompts, cfg.batch_size)
    report.append({"final_residual_norm": float((Z - H).norm(dim=-1).mean())})
    return report
