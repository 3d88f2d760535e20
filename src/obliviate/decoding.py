"""The one greedy decoding loop, over a next-token step function with a KV cache.

A *step* ``step(ids, mask, pos, past) -> (logits, past)`` runs the model on the new tokens
``ids`` (the whole prompt first, then one token per row), given the attention mask of everything
so far, the new tokens' position ids and the cache ``past`` it returned last time (``None`` at
first), and returns the next-token logits ``(B, V)`` and the new cache. :func:`hf_step` builds
one over a Hugging Face causal LM; inference wrappers and the SISA ensemble build theirs over the
base model(s) (their ``generate`` methods are this loop, which :func:`obliviate.scoring.generate`
calls like any model's ``generate``). Greedy: ``argmax`` at every step; rows that emitted EOS are
continued with the pad token; left padding does not shift positions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from obliviate.models.protocol import CausalLM

StepFn = Callable[["torch.Tensor", "torch.Tensor", "torch.Tensor", Any], tuple["torch.Tensor", Any]]


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
    """A one-step function over an HF causal LM with its KV cache."""
    name = cache_argument(model)

    def step(
        ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, past: Any
    ) -> tuple[torch.Tensor, Any]:
        out = model(
            input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **{name: past}
        )
        return out.logits[:, -1, :], getattr(out, name)

    return step


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
) -> torch.Tensor:
    """Greedy decoding through ``step``; returns prompt + new tokens like ``generate`` (rows
    that finished are filled with ``pad_token_id``, else the first EOS id, else 0)."""
    import torch

    eos = eos_ids(eos_token_id)
    pad = pad_token_id if pad_token_id is not None else (eos[0] if eos else 0)
    new: list[torch.Tensor] = []
    with torch.no_grad():
        mask = attention_mask.long()
        logits, past = step(input_ids, mask, positions(mask), None)
        last_pos = positions(mask)[:, -1:]
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for t in range(max_new_tokens):
            nxt = logits.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            new.append(nxt)
            for e in eos:
                done |= nxt == e
            if bool(done.all()) or t == max_new_tokens - 1:
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            last_pos = last_pos + 1
            logits, past = step(nxt[:, None], mask, last_pos, past)
    if not new:
        return input_ids
    return torch.cat([input_ids, torch.stack(new, dim=1)], dim=1)
