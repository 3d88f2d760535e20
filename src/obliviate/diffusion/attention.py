"""Reading cross-attention probabilities through diffusers' public attention-processor API.

Diffusers' default processors use fused scaled-dot-product attention, which never forms the
probability matrix. :func:`record_cross_attention` swaps in a processor that computes
cross-attention explicitly with the module's own public helpers (``to_q/to_k/to_v``,
``head_to_batch_dim``, ``get_attention_scores``, ``to_out``) and keeps the probabilities,
with gradients, for Forget-Me-Not's re-steering loss. Self-attention is left untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch


class RecordingCrossAttnProcessor:
    """Plain (non-fused) attention that appends ``(B, heads, queries, tokens)`` probabilities
    to ``store`` on every call."""

    def __init__(self, store: list[torch.Tensor]) -> None:
        self.store = store

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        if (
            hidden_states.ndim != 3
            or getattr(attn, "spatial_norm", None) is not None
            or getattr(attn, "group_norm", None) is not None
            or getattr(attn, "residual_connection", False)
        ):
            raise NotImplementedError(
                "this cross-attention layout is not supported for "
                "attention recording (expected a Transformer2D attn2 block)"
            )
        b, n, _ = hidden_states.shape
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if getattr(attn, "norm_cross", None):
            context = attn.norm_encoder_hidden_states(context)
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, context.shape[1], b)
        q = attn.head_to_batch_dim(attn.to_q(hidden_states))
        k = attn.head_to_batch_dim(attn.to_k(context))
        v = attn.head_to_batch_dim(attn.to_v(context))
        probs = attn.get_attention_scores(q, k, attention_mask)  # (B*heads, n, tokens)
        self.store.append(probs.view(b, attn.heads, n, probs.shape[-1]))
        out = attn.batch_to_head_dim(torch.bmm(probs, v))
        out = attn.to_out[1](attn.to_out[0](out))
        return out / attn.rescale_output_factor


@contextlib.contextmanager
def record_cross_attention(unet: Any) -> Iterator[list[torch.Tensor]]:
    """Within the block, every cross-attention (``attn2``) call of ``unet`` appends its
    probabilities to the yielded list; the original processors are restored afterwards."""
    originals = dict(unet.attn_processors)
    store: list[torch.Tensor] = []
    recorder = RecordingCrossAttnProcessor(store)
    swapped = {
        name: (recorder if name.endswith("attn2.processor") else proc)
        for name, proc in originals.items()
    }
    if not any(name.endswith("attn2.processor") for name in originals):
        raise ValueError("this UNet has no cross-attention (attn2) layers")
    unet.set_attn_processor(swapped)
    try:
        yield store
    finally:
        unet.set_attn_processor(originals)
