"""Fixtures of the reliability suite.

Tokenizers of the three families real models use, built locally (no network): a Llama-2-style
SentencePiece BPE (normalizer prepends and replaces spaces with "▁", as the converted Llama-2
tokenizer.json does), a Llama-3-style byte-level BPE with BOS, and a GPT-2-style byte-level BPE
without BOS; plus the built-in tokenizer and a tiny random model of 512 positions; files and a model folder that fail fast."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

TEXTS = [
    "Question: Where was Anna Berg born?\nAnswer: Anna Berg was born in Paris.",
    "Question: Which city is the capital of France?\nAnswer: Paris is the capital.",
    "Paris is a city. Berlin is a city too. The answer is Paris, said Anna Berg.",
    "You are a helpful assistant. Answer briefly and truthfully.",
] * 5

LLAMA3_CHAT = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>"
    "\n\n{{ m['content'] }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
LLAMA2_CHAT = (
    "{{ bos_token }}[INST] {% for m in messages %}{% if m['role'] == 'system' %}<<SYS>>\n"
    "{{ m['content'] }}\n<</SYS>>\n\n{% else %}{{ m['content'] }} [/INST]{% endif %}{% endfor %}"
)


def llama2_style() -> Any:
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import LlamaTokenizerFast

    tok = Tokenizer(models.BPE(byte_fallback=True, fuse_unk=True, unk_token="<unk>"))
    # train with word-initial "▁" pieces (as SentencePiece does), then read text the way the
    # converted Llama-2 tokenizer.json does: prepend "▁", spaces become "▁", no pre-tokenizer
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False
    )
    tok.train_from_iterator(TEXTS, trainer)
    tok.pre_tokenizer = None
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    out = LlamaTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", legacy=True
    )
    out.chat_template = LLAMA2_CHAT
    return out


def byte_level(bos: bool) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>"]
    specials += ["<|end_header_id|>", "<|eot_id|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TEXTS, trainer)
    if bos:  # Llama-3 style: BOS added by the post-processor, chat template with headers
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A",
            special_tokens=[("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))],
        )
        out = PreTrainedTokenizerFast(
            tokenizer_object=tok,
            bos_token="<|begin_of_text|>",
            eos_token="<|eot_id|>",
            additional_special_tokens=specials[2:],
        )
        out.chat_template = LLAMA3_CHAT
        return out
    tok.post_processor = processors.ByteLevel(trim_offsets=False)  # GPT-2: no BOS
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|end_of_text|>")


@pytest.fixture(scope="session")
def styles() -> dict[str, Any]:
    """{"llama2": ..., "llama3": ..., "gpt2": ...} tokenizers."""
    return {"llama2": llama2_style(), "llama3": byte_level(True), "gpt2": byte_level(False)}


@pytest.fixture(scope="session")
def builtin_tok(tiny_builtin: dict) -> Any:
    """The built-in byte-level tokenizer trained on the tiny built-in benchmark's text."""
    from obliviate.api import corpus_text
    from obliviate.models.tiny import train_tokenizer

    return train_tokenizer(corpus_text("builtin", tiny_builtin))


@pytest.fixture(scope="session")
def random_model(builtin_tok: Any) -> Any:
    """A randomly initialised tiny Llama with 512 positions (nothing is trained)."""
    from obliviate.models.tiny import build_tiny_llama

    model = build_tiny_llama(builtin_tok, size="xs", max_positions=512, seed=0)
    model.eval()
    return model


@pytest.fixture
def fake_model(tmp_path: Path) -> Path:
    """A folder that passes the path checks (config.json and a safetensors file) but holds no
    loadable model: errors that must fire before any loading are checked with it."""
    folder = tmp_path / "runs" / "target" / "model"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "model.safetensors").write_bytes(b"not loaded before the error")
    return folder


@pytest.fixture
def qa_file(tmp_path: Path) -> Path:
    path = tmp_path / "forget.jsonl"
    path.write_text(
        '{"question": "Who is Ann?", "answer": "Ann is a sailor."}\n'
        '{"question": "Who is Bob?", "answer": "Bob is a baker."}\n'
    )
    return path


@pytest.fixture
def retain_file(tmp_path: Path) -> Path:
    path = tmp_path / "retain.jsonl"
    path.write_text('{"question": "Who is Cid?", "answer": "Cid is a potter."}\n')
    return path
