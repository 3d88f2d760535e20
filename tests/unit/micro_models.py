"""Micro models for unit tests: a micro Llama (1-2 layers, hidden 32) with its own tokenizer and
QA items about robots, for methods that wrap or adapt a model (EUL, soft prompt, Ext-Sub); and a
tokenizer of two QA texts with an ``xs`` tiny Llama of spread-out random weights, for scoring
and generation."""

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


QA_TEXTS = [
    "Question: Where was Ann Berro born?\nAnswer: Ann Berro was born in Paris.",
    "Question: What does Olli write?\nAnswer: Olli writes short mystery novels about sailors.",
]


def qa_tokenizer() -> Any:
    """A tokenizer trained on :data:`QA_TEXTS`."""
    from obliviate.models.tiny import train_tokenizer

    return train_tokenizer(QA_TEXTS * 5, vocab_size=400)


def noisy_tiny_llama(tok: Any) -> Any:
    """An ``xs`` tiny Llama (seed 0) with weights drawn from N(0, 0.2), larger than at init, so
    that its distributions are spread out and its greedy tokens varied; in eval mode."""
    from obliviate.models.tiny import build_tiny_llama

    torch.manual_seed(0)
    m = build_tiny_llama(tok, "xs")
    with torch.no_grad():
        for w in m.parameters():
            if w.dim() > 1:
                w.normal_(0, 0.2)
    return m.eval()
