"""Cached reference-model log-probabilities for a fixed forget set (docs/metrics.md).

The forget set does not change during unlearning, so log π_ref(y|x) is computed once, before
the first step, from the untouched target, instead of a reference forward on every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from obliviate.data.collate import pad_id_of
from obliviate.data.templates import Encoded
from obliviate.models.protocol import CausalLM


def sequence_logprobs(
    model: CausalLM, encoded: Sequence[Encoded], tokenizer: Any, batch_size: int = 32
) -> Any:
    """``(N,)`` tensor of Σ_t log π(y_t | x, y_<t) for each encoded item, in order."""
    import torch

    from obliviate.methods import functional as F
    from obliviate.scoring import model_device
    from obliviate.training import collate_encoded

    pad = pad_id_of(tokenizer)
    device = model_device(model)
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(encoded), batch_size):
            chunk = list(encoded[i : i + batch_size])
            b = collate_encoded(chunk, list(range(len(chunk))), pad)
            logits = model(
                input_ids=b["input_ids"].to(device), attention_mask=b["attention_mask"].to(device)
            ).logits
            lp, mask = F.token_logprobs(logits, b["labels"].to(device))
            out.append(F.sequence_logprob(lp, mask).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)
