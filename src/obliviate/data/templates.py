"""Prompt templates and tokenisation of (prompt, answer) pairs with an exact label mask.

The prompt and the answer are tokenised separately and their ids concatenated, so the border
never merges tokens and the scored tokens decode to exactly the answer (docs/metrics.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IGNORE = -100


@dataclass(frozen=True)
class PromptTemplate:
    """How a question becomes a prompt.

    - ``qa``: ``"Question: {q}\\nAnswer:"`` and the answer follows after one space (base models,
      docs/metrics.md; the space belongs to the answer's first token).
    - ``chat``: the tokenizer's own chat template with a generation prompt; optional system prompt
      and pinned date string.
    - ``raw``: the question text itself, answer appended directly.
    """

    name: str = "qa"
    system_prompt: str | None = None
    date_string: str = "10 Apr 2025"

    def __post_init__(self) -> None:
        if self.name not in ("qa", "chat", "raw"):
            raise ValueError(f"unknown prompt template {self.name!r}; use 'qa', 'chat' or 'raw'")

    def prompt_text(self, question: str) -> str:
        if self.name == "qa":
            return f"Question: {question}\nAnswer:"
        return question

    def answer_text(self, answer: str) -> str:
        return (" " + answer) if self.name == "qa" and answer else answer

    def prompt_ids(self, tokenizer: Any, question: str) -> list[int]:
        """Token ids of the prompt (with BOS when the tokenizer adds one)."""
        if question == "":  # a plain document: only BOS
            return [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        if self.name == "chat":
            messages = []
            if self.system_prompt:
                messages.append({"role": "system", "content": self.system_prompt})
            messages.append({"role": "user", "content": question})
            out = tokenizer.apply_chat_template(
                messages, tokenize=True, add_generation_prompt=True, date_string=self.date_string
            )
            if isinstance(out, dict) or hasattr(out, "input_ids"):
                out = out["input_ids"]
            return list(out)
        return list(tokenizer(self.prompt_text(question), add_special_tokens=True)["input_ids"])

    def answer_ids(self, tokenizer: Any, answer: str, document: bool = False) -> list[int]:
        text = answer if document else self.answer_text(answer)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    prompt_len: int
    has_eos: bool


def encode(
    tokenizer: Any,
    question: str,
    answer: str,
    template: PromptTemplate,
    max_length: int = 512,
    add_eos: bool = True,
) -> Encoded:
    """Tokenise prompt + answer; labels are IGNORE on the prompt.

    EOS is appended to QA answers (not to plain documents) unless the answer already ends with it.
    Over-long items are cut at ``max_length``: the answer's tail goes first (the EOS with it).
    """
    document = question == ""
    p_ids = template.prompt_ids(tokenizer, question)
    a_ids = template.answer_ids(tokenizer, answer, document=document)
    eos = tokenizer.eos_token_id
    has_eos = False
    if add_eos and not document and eos is not None and (not a_ids or a_ids[-1] != eos):
        a_ids = a_ids + [eos]
    if a_ids and a_ids[-1] == eos and not document:
        has_eos = True
    if len(p_ids) >= max_length:
        p_ids = p_ids[-(max_length // 2) :]
    room = max_length - len(p_ids)
    if len(a_ids) > room:
        a_ids = a_ids[:room]
        has_eos = False
    return Encoded(p_ids + a_ids, [IGNORE] * len(p_ids) + a_ids, len(p_ids), has_eos)
