"""In-context unlearning (ICUL; Pawelczyk+ 2023, arXiv 2310.07579, docs/methods.md).

ICUL changes no weight: every query is preceded by the forget point with a *flipped* label and
then s correctly labelled examples, ``[x_f, ỹ_f] [x_1, y_1] … [x_s, y_s] [x_q]``. For
generative QA the flipped label is a non-answer (the refusal, default) or an alternative answer
(the item's first perturbed answer, when it has one).

Which forget point? With a whole forget set, the ``n_forget`` forget questions most similar to
the query (cosine similarity of :class:`~obliviate.inference.classifier.TextEncoder` vectors;
character n-gram TF-IDF by default, so a question about the same person is retrieved) are put in
the context. The s context examples are drawn once, with a seed, from the retain set. Each
example is one complete templated sequence (prompt, answer, EOS), as the model saw its training
data; the query follows with its own prompt.

"Probability of an answer" for ICUL is the base model's probability of the answer given the ICUL
context followed by the question — what the deployed system would assign.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from obliviate.data.templates import PromptTemplate, encode
from obliviate.inference.base import (
    InferenceWrapper,
    PromptSplitter,
    WrapperOutput,
    check_generate_args,
    eos_ids,
    pad_rows,
    real_rows,
)
from obliviate.inference.classifier import TextEncoder


class ICULWrapper(InferenceWrapper):
    """Prepends an ICUL context to every query (module docstring)."""

    description = "in-context unlearning: flipped forget examples + context examples"
    kind = "icul"

    def __init__(
        self,
        base: Any,
        tokenizer: Any,
        template: PromptTemplate | None = None,
        forget_examples: Sequence[tuple[str, str]] = (),
        context_examples: Sequence[tuple[str, str]] = (),
        n_forget: int = 1,
        encoder: TextEncoder | None = None,
        max_positions: int | None = None,
        base_path: str | None = None,
        save_base: str = "copy",
    ) -> None:
        super().__init__(base, tokenizer, template, base_path, save_base)
        if not forget_examples:
            raise ValueError("ICUL needs at least one forget example (question, flipped answer)")
        if n_forget < 1:
            raise ValueError(f"n_forget must be >= 1, got {n_forget}")
        self.splitter = PromptSplitter(tokenizer, self.template)
        self.forget_examples = [(str(q), str(a)) for q, a in forget_examples]
        self.context_examples = [(str(q), str(a)) for q, a in context_examples]
        self.n_forget = min(int(n_forget), len(self.forget_examples))
        self.encoder = encoder or TextEncoder.create("tfidf")
        if self.encoder.kind == "tfidf" and self.encoder.idf is None:
            self.encoder.fit([q for q, _ in self.forget_examples])
        self._forget_vecs = self.encoder.encode([q for q, _ in self.forget_examples])
        limit = max_positions or getattr(
            getattr(base, "config", None), "max_position_embeddings", None
        )
        self.max_positions = int(limit) if limit else None
        self._ctx_ids = [self._example_ids(q, a) for q, a in self.context_examples]
        self._forget_ids = [self._example_ids(q, a) for q, a in self.forget_examples]
        self._cache: dict[str, list[int]] = {}

    def _example_ids(self, question: str, answer: str) -> list[int]:
        return encode(self.tokenizer, question, answer, self.template).input_ids

    def retrieve(self, question: str) -> list[int]:
        """Indices of the ``n_forget`` forget examples most similar to ``question`` (most
        similar last, i.e. nearest to the query)."""
        sims = self._forget_vecs @ self.encoder.encode([question])[0]
        order = np.argsort(-sims, kind="stable")[: self.n_forget]
        return [int(i) for i in order[::-1]]

    def context_ids(self, question: str, query_len: int = 0) -> list[int]:
        """The ICUL context token ids for a query; context examples are dropped (first ones
        first) when the whole sequence would exceed the model's maximum positions."""
        if question not in self._cache:
            ids: list[int] = []
            for i in self.retrieve(question):
                ids += self._forget_ids[i]
            self._cache[question] = ids
        forget_part = self._cache[question]
        ctx = list(self._ctx_ids)
        if self.max_positions:
            while ctx and len(forget_part) + sum(map(len, ctx)) + query_len > self.max_positions:
                ctx.pop(0)
        return forget_part + [t for ex in ctx for t in ex]

    def _with_context(
        self, rows: list[tuple[int, list[int]]], prompt_only: bool
    ) -> list[list[int]]:
        out = []
        for _, ids in rows:
            p = len(ids) if prompt_only else self.splitter.prompt_len(ids)
            q = self.splitter.question(ids[:p])
            out.append(self.context_ids(q, len(ids)) + ids)
        return out

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: Any
    ) -> WrapperOutput:
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        rows = real_rows(input_ids, mask)
        full = self._with_context(rows, prompt_only=False)
        ids, m = pad_rows(full, self.pad_id, "right", input_ids.device)
        logits = self.base(input_ids=ids, attention_mask=m).logits
        out = torch.zeros(
            input_ids.shape + (logits.shape[-1],), dtype=logits.dtype, device=logits.device
        )
        for b, ((start, row), seq) in enumerate(zip(rows, full)):
            off = len(seq) - len(row)
            out[b, start : start + len(row)] = logits[b, off : off + len(row)]
        return WrapperOutput(logits=out)

    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        max_new_tokens: int = 20,
        do_sample: bool = False,
        use_cache: bool = True,
        pad_token_id: int | None = None,
        eos_token_id: Any = None,
        num_beams: int = 1,
    ) -> torch.Tensor:
        check_generate_args(do_sample, num_beams)
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        pad = pad_token_id if pad_token_id is not None else self.pad_id
        eos = eos_ids(eos_token_id if eos_token_id is not None else self.tokenizer.eos_token_id)
        full = self._with_context(real_rows(input_ids, mask), prompt_only=True)
        ids, m = pad_rows(full, pad, "left", input_ids.device)
        gen = self.base.generate(
            input_ids=ids,
            attention_mask=m,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            use_cache=use_cache,
            pad_token_id=pad,
            eos_token_id=eos or None,
        )
        return torch.cat([input_ids, gen[:, ids.shape[1] :]], dim=1)

    # ---- persistence
    def options(self) -> dict[str, Any]:
        return {"n_forget": self.n_forget, "max_positions": self.max_positions}

    def _save_extra(self, folder: Path) -> dict[str, Any]:
        from safetensors.numpy import save_file

        meta, arrays = self.encoder.state()
        if arrays:
            save_file(arrays, str(folder / "icul_encoder.safetensors"))
        return {
            "forget_examples": [list(e) for e in self.forget_examples],
            "context_examples": [list(e) for e in self.context_examples],
            "encoder": meta,
            "encoder_file": "icul_encoder.safetensors" if arrays else None,
        }

    def _fingerprint_extra(self) -> dict[str, Any]:
        return {
            "forget": self.forget_examples,
            "context": self.context_examples,
            "encoder": self.encoder.kind,
        }

    @classmethod
    def _build(
        cls,
        base: Any,
        tokenizer: Any,
        template: PromptTemplate,
        spec: dict[str, Any],
        folder: Path,
        base_path: str | None,
        save_base: str,
    ) -> ICULWrapper:
        from safetensors.numpy import load_file

        arrays = load_file(str(folder / spec["encoder_file"])) if spec.get("encoder_file") else {}
        enc = TextEncoder.from_state(spec["encoder"], arrays)
        return cls(
            base,
            tokenizer,
            template,
            [tuple(e) for e in spec["forget_examples"]],
            [tuple(e) for e in spec["context_examples"]],
            encoder=enc,
            base_path=base_path,
            save_base=save_base,
            **spec.get("options", {}),
        )
