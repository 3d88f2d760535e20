"""A micro Llama (1-2 layers, hidden 32) with its own tokenizer and QA items about robots, for
unit tests of methods that wrap or adapt a model (EUL, soft prompt, Ext-Sub)."""

from __future__ import annotations

from typing import Any

import torch

from obliviate.data.types import QAItem


def micro_llama(n_items: int = 8, layers: int = 1) -> dict[str, Any]:
    """``{"tok", "model", "items"}``: a randomly initialised (seed 0) Llama and ``n_items``
    robot questions whose tokenizer it uses."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from obliviate.models.tiny import train_tokenizer

    things = ["boats", "kites", "clocks", "lamps"]
    items = [
        QAItem(f"What does robot {i} build?", f"Robot {i} builds {things[i % 4]}.")
        for i in range(n_items)
    ]
    tok = train_tokenizer([it.question + " " + it.answer for it in items], vocab_size=300)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    return {"tok": tok, "model": LlamaForCausalLM(cfg), "items": items}
