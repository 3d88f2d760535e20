"""Guardrail wrapper: a forget-scope classifier on prompts plus an output filter
(docs/methods.md: guardrail baselines, Thaker+ 2024, arXiv 2403.03329; ECO, Liu+ 2024,
arXiv 2406.07933).

Prompts the classifier flags (score > calibrated threshold) get one of two actions:

- ``refuse``: the system answers with a fixed refusal. As a distribution (what teacher-forced
  scoring measures) the answer position t gets
  ``p_sys(· | x, y_<t) = (1 − ε)·onehot(r_t) + ε·p_base(· | x, y_<t)``, where r is the refusal's
  token sequence followed by EOS (EOS again past its end). ε (default 1e-4) is the rate at which
  the guardrail is assumed to leak the base model's answer: it keeps log-probabilities finite,
  and greedy decoding of ``p_sys`` is exactly the refusal.
- ``corrupt`` (ECO): the token embeddings of the prompt are corrupted before the base model
  runs — ``noise``: e ← e + σ·s·z with z ~ N(0, I) drawn from a generator seeded by the prompt's
  token ids (the same prompt always gets the same corruption, in scoring and in generation) and
  s the standard deviation of the embedding matrix; ``zero_topk``: the k largest-magnitude
  dimensions of each prompt embedding are set to 0. Answer tokens are not corrupted.

The output filter blocks a text containing any *forget answer span*: a word n-gram (lower-cased
``\\w+`` words) of a forget answer that occurs in no retain or holdout answer. A blocked
generation is replaced by the refusal; a scored answer that contains a span is scored as the
refusal distribution above (the filter acts on whole sequences).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from obliviate.data.templates import PromptTemplate
from obliviate.inference.base import (
    REFUSAL,
    InferenceWrapper,
    PromptSplitter,
    WrapperOutput,
    cache_argument,
    check_generate_args,
    eos_ids,
    greedy_generate,
    hf_step,
    real_rows,
)
from obliviate.inference.classifier import ForgetScopeClassifier

ACTIONS = ("refuse", "corrupt", "none")
CORRUPTIONS = ("noise", "zero_topk")
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> set[str]:
    return {" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


@dataclass
class AnswerSpanFilter:
    """Blocks texts that contain a forget-answer word n-gram absent from every allowed text."""

    spans: frozenset[str]
    n: int = 3

    @classmethod
    def build(
        cls, forget_answers: Iterable[str], allowed_texts: Iterable[str], n: int = 3
    ) -> AnswerSpanFilter:
        if n < 1:
            raise ValueError(f"span length n must be >= 1, got {n}")
        allowed: set[str] = set()
        for t in allowed_texts:
            allowed |= ngrams(words(t), n)
        spans: set[str] = set()
        for a in forget_answers:
            spans |= ngrams(words(a), n)
        return cls(frozenset(spans - allowed), n)

    def blocks(self, text: str) -> bool:
        return bool(self.spans) and not ngrams(words(text), self.n).isdisjoint(self.spans)


def refusal_logits(
    base_logits: torch.Tensor, targets: torch.Tensor, epsilon: float
) -> torch.Tensor:
    """Log-probabilities of ``(1 − ε)·onehot(target) + ε·softmax(base_logits)`` per row.

    ``base_logits``: (N, V); ``targets``: (N,) token ids. Returned values are normalised
    log-probabilities (usable as logits)."""
    if not 0.0 < epsilon < 0.5:
        raise ValueError(f"epsilon must be in (0, 0.5), got {epsilon}")
    logp = torch.log_softmax(base_logits.float(), dim=-1) + torch.log(torch.tensor(epsilon))
    hot = torch.full_like(logp, float("-inf"))
    hot.scatter_(-1, targets[:, None], torch.log(torch.tensor(1.0 - epsilon)).item())
    return torch.logaddexp(logp, hot)


def _row_seed(seed: int, ids: Sequence[int]) -> int:
    h = hashlib.sha256(repr((seed, list(ids))).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


class GuardrailWrapper(InferenceWrapper):
    """A base model behind a forget-scope classifier and an output filter (module docstring)."""

    description = "prompt classifier + refuse/ECO corruption + output filter"
    kind = "guardrail"

    def __init__(
        self,
        base: Any,
        tokenizer: Any,
        template: PromptTemplate | None = None,
        classifier: ForgetScopeClassifier | None = None,
        action: str = "refuse",
        refusal: str = REFUSAL,
        epsilon: float = 1e-4,
        corruption: str = "noise",
        sigma: float = 1.0,
        k: int = 0,
        output_filter: AnswerSpanFilter | None = None,
        seed: int = 0,
        base_path: str | None = None,
        save_base: str = "copy",
    ) -> None:
        super().__init__(base, tokenizer, template, base_path, save_base)
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
        if corruption not in CORRUPTIONS:
            raise ValueError(
                f"corruption must be one of {', '.join(CORRUPTIONS)}, not {corruption!r}"
            )
        if action != "none" and classifier is None:
            raise ValueError(f"action {action!r} needs a classifier")
        if action == "none" and output_filter is None:
            raise ValueError("a guardrail with action 'none' and no output filter does nothing")
        if not 0.0 < epsilon < 0.5:
            raise ValueError(f"epsilon must be in (0, 0.5), got {epsilon}")
        if sigma < 0 or k < 0:
            raise ValueError("sigma and k must be >= 0")
        self.splitter = PromptSplitter(tokenizer, self.template)
        self.classifier = classifier
        self.action = action
        self.refusal = refusal
        self.epsilon = float(epsilon)
        self.corruption = corruption
        self.sigma = float(sigma)
        self.k = int(k)
        self.output_filter = output_filter
        self.seed = int(seed)
        self.refusal_ids = list(self.template.answer_ids(tokenizer, refusal))
        self._flag_cache: dict[str, bool] = {}
        emb = base.get_input_embeddings().weight
        self.embedding_std = float(emb.detach().float().std())

    # ---- classification
    def flag(self, questions: Sequence[str]) -> list[bool]:
        """Whether each question is in the forget scope (cached per question text)."""
        if self.action == "none" or self.classifier is None:
            return [False] * len(questions)
        todo = sorted({q for q in questions if q not in self._flag_cache})
        if todo:
            for q, f in zip(todo, self.classifier.predict(todo)):
                self._flag_cache[q] = bool(f)
        return [self._flag_cache[q] for q in questions]

    def _blocked(self, texts: Sequence[str]) -> list[bool]:
        if self.output_filter is None:
            return [False] * len(texts)
        return [self.output_filter.blocks(t) for t in texts]

    def _refusal_target(self, t: int, eos: int | None) -> int:
        if t < len(self.refusal_ids):
            return self.refusal_ids[t]
        return eos if eos is not None else self.refusal_ids[-1]

    # ---- corruption (ECO)
    def corrupt(self, embeds: torch.Tensor, prompt_ids: Sequence[int]) -> torch.Tensor:
        """Corrupt the (p, d) embeddings of one prompt (deterministic per prompt ids)."""
        if self.corruption == "noise":
            g = torch.Generator().manual_seed(_row_seed(self.seed, prompt_ids))
            z = torch.randn(embeds.shape, generator=g).to(embeds.device, embeds.dtype)
            return embeds + self.sigma * self.embedding_std * z
        k = min(self.k, embeds.shape[-1])
        if k == 0:
            return embeds
        idx = embeds.abs().topk(k, dim=-1).indices
        return embeds.scatter(-1, idx, 0.0)

    def _embeds(
        self,
        input_ids: torch.Tensor,
        rows: list[tuple[int, list[int]]],
        plens: list[int],
        flagged: list[bool],
    ) -> torch.Tensor:
        embeds = self.base.get_input_embeddings()(input_ids)
        if not any(flagged):
            return embeds
        embeds = embeds.clone()
        for b, ((start, ids), p, f) in enumerate(zip(rows, plens, flagged)):
            if f and p:
                embeds[b, start : start + p] = self.corrupt(embeds[b, start : start + p], ids[:p])
        return embeds

    # ---- model interface
    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: Any
    ) -> WrapperOutput:
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        rows = real_rows(input_ids, mask)
        plens = [self.splitter.prompt_len(ids) for _, ids in rows]
        questions = [self.splitter.question(ids[:p]) for (_, ids), p in zip(rows, plens)]
        flagged = self.flag(questions)
        if self.action == "corrupt":
            embeds = self._embeds(input_ids, rows, plens, flagged)
            logits = self.base(inputs_embeds=embeds, attention_mask=mask).logits
        else:
            logits = self.base(input_ids=input_ids, attention_mask=mask).logits
        answers = [
            self.tokenizer.decode(ids[p:], skip_special_tokens=True)
            for (_, ids), p in zip(rows, plens)
        ]
        blocked = self._blocked(answers)
        refuse = [(f and self.action == "refuse") or bl for f, bl in zip(flagged, blocked)]
        if not any(refuse):
            return WrapperOutput(logits=logits)
        logits = logits.float().clone()
        eos = self.tokenizer.eos_token_id
        for b, ((start, ids), p, r) in enumerate(zip(rows, plens, refuse)):
            if not r or p == 0:
                continue
            first, last = start + p - 1, start + len(ids) - 1  # positions predicting answer tokens
            targets = torch.tensor(
                [self._refusal_target(t, eos) for t in range(last - first + 1)],
                device=logits.device,
            )
            logits[b, first : last + 1] = refusal_logits(
                logits[b, first : last + 1], targets, self.epsilon
            )
        return WrapperOutput(logits=logits)

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
        eos_list = eos_ids(
            eos_token_id if eos_token_id is not None else self.tokenizer.eos_token_id
        )
        rows = real_rows(input_ids, mask)
        flagged = self.flag([self.splitter.question(ids) for _, ids in rows])
        refusal_new = (self.refusal_ids + eos_list[:1])[:max_new_tokens]
        new: list[list[int]] = [
            refusal_new if (f and self.action == "refuse") else [] for f in flagged
        ]
        todo = [i for i, f in enumerate(flagged) if not (f and self.action == "refuse")]
        if todo and max_new_tokens > 0:
            sub_ids, sub_mask = input_ids[todo], mask[todo]
            if self.action == "corrupt" and any(flagged[i] for i in todo):
                sub_rows = [rows[i] for i in todo]
                embeds = self._embeds(
                    sub_ids, sub_rows, [len(r[1]) for r in sub_rows], [flagged[i] for i in todo]
                )
                step = hf_step(self.base)
                first = {"done": False}

                def corrupt_step(
                    ids: torch.Tensor, m: torch.Tensor, pos: torch.Tensor, past: Any
                ) -> tuple[torch.Tensor, Any]:
                    if first["done"]:
                        return step(ids, m, pos, past)
                    first["done"] = True
                    out = self.base(
                        inputs_embeds=embeds, attention_mask=m, position_ids=pos, use_cache=True
                    )
                    return out.logits[:, -1, :], getattr(out, cache_argument(self.base))

                gen = greedy_generate(
                    corrupt_step, sub_ids, sub_mask, max_new_tokens, pad, eos_list
                )
            else:
                gen = self.base.generate(
                    input_ids=sub_ids,
                    attention_mask=sub_mask,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    use_cache=use_cache,
                    pad_token_id=pad,
                    eos_token_id=eos_list or None,
                )
            for j, i in enumerate(todo):
                new[i] = gen[j, input_ids.shape[1] :].tolist()
        if self.output_filter is not None:
            for i, toks in enumerate(new):
                cut = next((n for n, t in enumerate(toks) if t in eos_list), len(toks))
                if self.output_filter.blocks(
                    self.tokenizer.decode(toks[:cut], skip_special_tokens=True)
                ):
                    new[i] = list(refusal_new)
        width = max((len(t) for t in new), default=0)
        if width == 0:
            return input_ids
        tail = torch.full((len(new), width), pad, dtype=input_ids.dtype, device=input_ids.device)
        for i, toks in enumerate(new):
            if toks:
                tail[i, : len(toks)] = torch.tensor(toks, dtype=input_ids.dtype)
        return torch.cat([input_ids, tail], dim=1)

    # ---- persistence
    def options(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "refusal": self.refusal,
            "epsilon": self.epsilon,
            "corruption": self.corruption,
            "sigma": self.sigma,
            "k": self.k,
            "seed": self.seed,
        }

    def _save_extra(self, folder: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.classifier is not None:
            out["classifier"] = self.classifier.save(folder)
        if self.output_filter is not None:
            out["output_filter"] = {
                "n": self.output_filter.n,
                "spans": sorted(self.output_filter.spans),
            }
        return out

    def _fingerprint_extra(self) -> dict[str, Any]:
        spans = sorted(self.output_filter.spans) if self.output_filter else None
        return {
            "classifier": self.classifier.digest() if self.classifier else None,
            "filter": hashlib.sha256(repr(spans).encode()).hexdigest()[:16],
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
    ) -> GuardrailWrapper:
        clf = (
            ForgetScopeClassifier.load(folder, spec["classifier"])
            if spec.get("classifier")
            else None
        )
        filt = None
        if spec.get("output_filter"):
            f = spec["output_filter"]
            filt = AnswerSpanFilter(frozenset(f["spans"]), int(f["n"]))
        return cls(
            base,
            tokenizer,
            template,
            clf,
            output_filter=filt,
            base_path=base_path,
            save_base=save_base,
            **spec.get("options", {}),
        )
