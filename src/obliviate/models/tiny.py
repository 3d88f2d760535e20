"""The CPU default: a byte-level BPE tokenizer trained on the benchmark text and a small
Llama-architecture model trained from scratch."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# hidden, layers, heads, ffn  (xs 0.9M, s 2.1M, m 5.0M, l 10.6M parameters)
TINY_SIZES: dict[str, tuple[int, int, int, int]] = {
    "xs": (128, 2, 4, 512),
    "s": (160, 4, 4, 640),
    "m": (256, 4, 4, 1024),
    "l": (384, 4, 6, 1536),
}

BOS, EOS, PAD = "<s>", "</s>", "<pad>"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 3000) -> Any:
    """Train a byte-level BPE tokenizer and wrap it as a transformers fast tokenizer.

    BOS is prepended by the post-processor, so ``tokenizer(text)`` behaves like Llama's.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, padding_side="right"
    )


def llama_config(
    tokenizer: Any, dims: tuple[int, int, int, int], max_positions: int, **extra: Any
) -> Any:
    """The ``LlamaConfig`` of a tiny model: ``dims`` = (hidden, layers, heads, ffn), full
    multi-head attention, the tokenizer's special ids, tied embeddings."""
    from transformers import LlamaConfig

    hidden, layers, heads, ffn = dims
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        intermediate_size=ffn,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        **extra,
    )


def build_tiny_llama(
    tokenizer: Any, size: str = "s", max_positions: int = 512, seed: int = 0
) -> Any:
    """A randomly initialised LlamaForCausalLM of one of :data:`TINY_SIZES`."""
    import torch
    from transformers import LlamaForCausalLM

    if size not in TINY_SIZES:
        raise ValueError(f"unknown tiny model size {size!r}; choose one of {sorted(TINY_SIZES)}")
    config = llama_config(tokenizer, TINY_SIZES[size], max_positions, attn_implementation="sdpa")
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    return model
