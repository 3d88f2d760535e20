"""Generation latency per generated token, measured the way evaluation generates (batched,
left-padded, greedy, KV cache), for comparing wrappers and edited models with their target.

``added latency per token`` of a method = its seconds per generated token minus the target's on
the same questions and settings. A token here is one decoding step of one row: a batch that
decodes for T steps counts rows x T tokens, also for rows that stopped early (they still cost
a slot in the batch). Counting only the tokens up to each row's EOS would instead make a
model that answers briefly look slower per token.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from obliviate.data.templates import PromptTemplate


def generation_latency(
    model: Any,
    tokenizer: Any,
    questions: Sequence[str],
    template: PromptTemplate,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    repeats: int = 1,
) -> dict[str, float]:
    """Wall seconds, generated tokens and seconds per generated token (best of ``repeats``)."""
    import torch

    from obliviate.data.collate import pad_batch, pad_id_of
    from obliviate.scoring import model_device

    if not questions:
        raise ValueError("latency needs at least one question")
    pad, eos = pad_id_of(tokenizer), tokenizer.eos_token_id
    device = model_device(model)
    prompts = [template.prompt_ids(tokenizer, q) for q in questions]
    best: dict[str, float] | None = None
    for _ in range(max(1, repeats)):
        wall, tokens = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(prompts), batch_size):
                b = pad_batch(prompts[i : i + batch_size], pad, side="left")
                b = {k: v.to(device) for k, v in b.items()}
                t0 = time.perf_counter()
                gen = model.generate(
                    input_ids=b["input_ids"],
                    attention_mask=b["attention_mask"],
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    use_cache=True,
                    pad_token_id=pad,
                    eos_token_id=eos,
                )
                wall += time.perf_counter() - t0
                tokens += gen.shape[0] * (gen.shape[1] - b["input_ids"].shape[1])
        res = {"seconds": wall, "tokens": float(tokens), "s_per_token": wall / max(tokens, 1)}
        if best is None or res["s_per_token"] < best["s_per_token"]:
            best = res
    return best  # type: ignore[return-value]
