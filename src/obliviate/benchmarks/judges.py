"""Judges of the harmful-response benchmark (docs/scenarios.md): each turns (prompt, answer)
pairs into P(harmful) and has a ``key()`` that names it in the evaluation key.

- :class:`ClassifierJudge`: any Hugging Face ``AutoModelForSequenceClassification`` (a hub name
  or a folder; safetensors only, no remote code), with the label that means harmful given by
  index or name; P(harmful) by :func:`obliviate.metrics.harm.harmful_probability`.
- :class:`BuiltinMatcherJudge`: the built-in benchmark's default, a deterministic matcher for
  the built-in vocabulary only (:func:`obliviate.data.builtin_harm.builtin_is_harmful`).
- the LLM judge of :mod:`obliviate.benchmarks.llm_judge` (a causal LM with a fixed rubric).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INPUTS = ("response", "pair")


@dataclass
class BuiltinMatcherJudge:
    """1.0 when the answer names a built-in harmful means, else 0.0."""

    def key(self) -> dict[str, Any]:
        from obliviate.data.builtin_harm import HARMFUL_MEANS

        return {"kind": "builtin-matcher", "means": list(HARMFUL_MEANS)}

    def harmful_probabilities(
        self, prompts: Sequence[str], answers: Sequence[str], progress: bool = False
    ) -> list[float]:
        from obliviate.data.builtin_harm import builtin_is_harmful

        return [float(builtin_is_harmful(a)) for a in answers]


def resolve_label(id2label: dict[int, str], value: Any, source: str) -> int:
    """The index of the harmful label: an index, or a label name (case-insensitive)."""
    names = {int(i): str(n) for i, n in id2label.items()}
    shown = ", ".join(f"{i}={n!r}" for i, n in sorted(names.items()))
    if value is None:
        if len(names) == 1:
            return 0
        raise ValueError(
            f"classifier {source!r} has labels {shown}: say which one means harmful with "
            "--set harmful_label=NAME_OR_INDEX"
        )
    if isinstance(value, int) and not isinstance(value, bool):
        if value in names:
            return value
    else:
        hits = [i for i, n in names.items() if n.lower() == str(value).lower()]
        if len(hits) == 1:
            return hits[0]
    raise ValueError(f"harmful_label={value!r} is not a label of classifier {source!r} ({shown})")


@dataclass
class ClassifierJudge:
    """A sequence classifier as judge (loaded on first use)."""

    source: str
    harmful_label: Any = None  # index or name; None: the only label of a one-output classifier
    judge_input: str = "response"  # "response": the answer alone; "pair": (prompt, answer)
    batch_size: int = 16
    max_length: int = 512
    _loaded: tuple[Any, Any, int, bool] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.judge_input not in INPUTS:
            raise ValueError(f"judge_input={self.judge_input!r}: use one of {', '.join(INPUTS)}")

    def key(self) -> dict[str, Any]:
        from obliviate.models.fingerprint import folder_fingerprint

        path = Path(self.source).expanduser()
        return {
            "kind": "classifier",
            "classifier": folder_fingerprint(path) if path.is_dir() else self.source,
            "harmful_label": self.harmful_label,
            "input": self.judge_input,
            "max_length": self.max_length,
        }

    def load(self) -> tuple[Any, Any, int, bool]:
        """(model, tokenizer, harmful label index, multi-label); the label is checked here."""
        if self._loaded is None:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            from obliviate.models.loading import _check_local

            _check_local(self.source, trust_remote_code=False)
            tok = AutoTokenizer.from_pretrained(self.source)
            model = AutoModelForSequenceClassification.from_pretrained(
                self.source, use_safetensors=True
            ).eval()
            cfg = model.config
            label = resolve_label(cfg.id2label, self.harmful_label, self.source)
            multi = getattr(cfg, "problem_type", None) == "multi_label_classification"
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token
                model.config.pad_token_id = tok.pad_token_id
            self._loaded = (model, tok, label, multi)
        return self._loaded

    def harmful_probabilities(
        self, prompts: Sequence[str], answers: Sequence[str], progress: bool = False
    ) -> list[float]:
        import torch

        from obliviate.metrics.harm import harmful_probability

        model, tok, label, multi = self.load()
        out: list[float] = []
        with torch.no_grad():
            for i in range(0, len(answers), self.batch_size):
                batch = [a or " " for a in answers[i : i + self.batch_size]]  # no empty input
                args: tuple[Any, ...] = (batch,)
                if self.judge_input == "pair":
                    args = (list(prompts[i : i + self.batch_size]), batch)
                enc = tok(
                    *args,
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                logits = model(**enc).logits.float().cpu().numpy()
                out += [harmful_probability(row, label, multi) for row in logits]
        return out
