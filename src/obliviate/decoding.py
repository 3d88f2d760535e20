"""The one greedy decoding loop, over a next-token step function with a KV cache.

A *step* ``step(ids, mask, pos, past) -> (logits, past)`` runs the model on the new tokens
``ids`` (the whole prompt first, then one token per row), given the attention mask of everything
so far, the new tokens' position ids and the cache ``past`` it returned last time (``None`` at
first), and returns the next-token logits ``(B, V)`` and the new cache. :func:`hf_step` builds
one over a Hugging Face causal LM; inference wrappers and the SISA ensemble build theirs over the
base model(s) (their ``generate`` methods are this loop, which :func:`obliviate.scoring.generate`
calls like any model's ``generate``); :mod:`obliviate.generation` runs it over plain HF models
too, in place of their ``generate``. Greedy: ``argmax`` at every step; rows that emitted EOS are
continued with the pad token (or, given a ``select`` that cuts the cache's batch, dropped from the
batch: same tokens, less work per step); left padding does not shift positions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from obliviate.models.protocol import CausalLM

StepFn = Callable[["torch.Tensor", "torch.Tensor", "torch.Tensor", Any], tuple["torch.Tensor", Any]]
# ``select(past, rows) -> past``: the cache of the batch rows ``rows`` (a 1-D index tensor) only
SelectFn = Callable[[Any, "torch.Tensor"], Any]


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that count only real tokens (left padding does not shift positions)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)


def cache_argument(model: Any) -> str:
    """The name of the KV-cache argument of ``model.forward`` (and of its output field):
    ``cache`` in recent transformers, ``past_key_values`` before."""
    import inspect

    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def hf_step(model: CausalLM) -> StepFn:
    """A one-step function over an HF causal LM with its KV cache. Where ``forward`` takes
    ``logits_to_keep`` (as ``generate`` passes it), only the last position's logits are computed:
    the prompt pass then skips the LM head over every prompt token."""
    import inspect

    name = cache_argument(model)
    extra: dict[str, Any] = {}
    forward: Any = getattr(model, "forward", model)
    if "logits_to_keep" in inspect.signature(forward).parameters:
        extra["logits_to_keep"] = 1

    def step(
        ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, past: Any
    ) -> tuple[torch.Tensor, Any]:
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            use_cache=True,
            **{name: past},
            **extra,
        )
        return out.logits[:, -1, :], getattr(out, name)

    return step


def hf_select(past: Any, rows: torch.Tensor) -> Any:
    """Keep only the batch rows ``rows`` of an HF KV cache (a ``Cache`` object, cut in place,
    or the legacy tuple of per-layer (key, value) tensors)."""
    if hasattr(past, "batch_select_indices"):
        past.batch_select_indices(rows)
        return past
    return tuple(tuple(t[rows] for t in layer) for layer in past)


def eos_ids(eos_token_id: Any) -> list[int]:
    """``eos_token_id`` (None, an id or a list of ids) as a list of ids."""
    if eos_token_id is None:
        return []
    if isinstance(eos_token_id, (list, tuple)):
        return [int(e) for e in eos_token_id]
    return [int(eos_token_id)]


def greedy_generate(
    step: StepFn,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    pad_token_id: int | None,
    eos_token_id: Any,
    select: SelectFn | None = None,
) -> torch.Tensor:
    """Greedy decoding through ``step``; returns prompt + new tokens like ``generate`` (rows
    that finished are filled with ``pad_token_id``, else the first EOS id, else 0).

    With ``select`` (e.g. :func:`hf_select`), a row that emitted EOS leaves the batch: the later
    steps run on the live rows only, and their cache is cut to those rows. The tokens are the
    same; a batch whose rows end at different lengths costs the work of its live rows only."""
    import torch

    eos = eos_ids(eos_token_id)
    pad = pad_token_id if pad_token_id is not None else (eos[0] if eos else 0)
    eos_t = torch.tensor(eos, dtype=input_ids.dtype, device=input_ids.device)
    rows = input_ids.shape[0]
    out = torch.full((rows, max(max_new_tokens, 0)), pad, dtype=input_ids.dtype)
    out = out.to(input_ids.device)
    steps = 0
    with torch.no_grad():
        mask = attention_mask.long()
        logits, past = step(input_ids, mask, positions(mask), None)
        last_pos = positions(mask)[:, -1:]
        live = torch.arange(rows, device=input_ids.device)  # batch row -> output row
        done = torch.zeros(rows, dtype=torch.bool, device=input_ids.device)
        for t in range(max_new_tokens):
            nxt = logits.argmax(-1)
            steps = t + 1
            if select is None:
                nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
                out[:, t] = nxt
                done |= torch.isin(nxt, eos_t)
                if bool(done.all()) or t == max_new_tokens - 1:
                    break
            else:
                out[live, t] = nxt
                finished = torch.isin(nxt, eos_t)
                if t == max_new_tokens - 1:
                    break
                if bool(finished.any()):
                    keep = (~finished).nonzero()[:, 0]
                    if keep.numel() == 0:
                        break
                    live, nxt, mask, last_pos = live[keep], nxt[keep], mask[keep], last_pos[keep]
                    past = select(past, keep)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            last_pos = last_pos + 1
            logits, past = step(nxt[:, None], mask, last_pos, past)
    if steps == 0:
        return input_ids
    return torch.cat([input_ids, out[:, :steps]], dim=1)
