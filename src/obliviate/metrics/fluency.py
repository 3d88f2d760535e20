"""Fluency of generated text: perplexity under a judge model, repetition rate, unique-token ratio.

docs/metrics.md lists perplexity and the unique-token ratio of generations as fluency checks;
unlearning that collapses a model (GA at a high learning rate, docs/metrics.md) shows up as
degenerate, repetitive or empty generations long before utility metrics move.

Definitions (all pure functions; the model is run elsewhere, by ``obliviate.scoring``):

- **Perplexity** of generations under a *judge* model (the audit uses the retain model): the
  judge scores each generation teacher-forced after its question prompt, and
  PPL = exp(Σ_items Σ_t ℓ_t / Σ_items n_items), pooled over every generated token (corpus
  perplexity, as in language-model evaluation; Jelinek+ 1977). EOS is not part of a generation
  (the text is cut at EOS, docs/metrics.md), so it is not scored. Lower = more fluent *as judged*.
- **Repetition rate** of one text: seq-rep-n of Welleck+ 2019 (arXiv 1908.04319, §5 "sequence-level
  repetition"), the share of its word n-grams that repeat an n-gram seen earlier in the same text:
  rep-n = 1 − |distinct n-grams| / |n-grams| (n = 4 by default, as in the paper). 0 = no
  repeats; "a b a b a b" with n = 2 has 5 bigrams, 2 distinct, so rep-2 = 0.6.
- **Unique-token ratio** (type-token ratio, Templin 1957): |distinct words| / |words| of one text.
  It falls with length even for fluent text, so compare models on the same prompts only.

Words are the lower-cased ``\\w+`` runs of the text (punctuation dropped), so the last two are
independent of any model's tokenizer. A text with fewer than n words has no n-gram and an empty
text has no word: the per-text functions then return ``None`` ("undefined"), and
:func:`fluency_summary` averages over the texts where a value is defined and counts the rest.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from obliviate.metrics.base import as_1d, check_logprobs

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """The lower-cased word tokens (``\\w+`` runs) of ``text``: the unit of the text metrics."""
    if not isinstance(text, str):
        raise ValueError(f"words: expected a str, got {type(text).__name__}")
    return _WORD.findall(text.lower())


def perplexity(token_logprobs: Sequence[Any]) -> float:
    """Pooled perplexity exp(−Σ log p / Σ n) of several texts' token log-probabilities.

    ``token_logprobs`` holds one 1-D array per text: the judge's log p(y_t | prompt, y_<t) of the
    text's tokens (EOS excluded). Texts with no token add nothing. Raises ValueError when no text
    has a token (nothing to measure) or on a positive / NaN log-probability.
    """
    total, count = 0.0, 0
    for i, lp in enumerate(token_logprobs):
        arr = check_logprobs(as_1d(lp, f"token_logprobs[{i}]"), f"token_logprobs[{i}]")
        total += float(arr.sum())
        count += int(arr.shape[0])
    if count == 0:
        raise ValueError("perplexity: no tokens to score (every text is empty)")
    return math.exp(-total / count)


def text_perplexity(token_logprobs: Any) -> float | None:
    """Perplexity exp(−mean log p) of one text; ``None`` for a text with no token."""
    arr = check_logprobs(as_1d(token_logprobs, "token_logprobs"), "token_logprobs")
    return None if arr.shape[0] == 0 else math.exp(-float(arr.mean()))


def _check_n(n: int) -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n-gram size must be an integer >= 1, got {n!r}")


def repetition_rate(tokens: Sequence[str], n: int = 4) -> float | None:
    """seq-rep-n (Welleck+ 2019, arXiv 1908.04319): 1 − |distinct n-grams| / |n-grams|.

    ``tokens`` is one text's word list (see :func:`words`). ``None`` when the text has fewer
    than ``n`` tokens (no n-gram: undefined, not "no repetition").
    """
    _check_n(n)
    toks = list(tokens)
    count = len(toks) - n + 1
    if count <= 0:
        return None
    grams = [tuple(toks[i : i + n]) for i in range(count)]
    return 1.0 - len(set(grams)) / count


def unique_token_ratio(tokens: Sequence[str]) -> float | None:
    """|distinct tokens| / |tokens| of one text (type-token ratio); ``None`` for no token."""
    toks = list(tokens)
    return None if not toks else len(set(toks)) / len(toks)


def fluency_summary(texts: Sequence[str], n: int = 4) -> dict[str, Any]:
    """Mean repetition rate and unique-token ratio over ``texts`` (each text weighs the same).

    Returns ``{"repetition_rate", "unique_token_ratio"}`` (``None`` when no text defines the
    value) plus ``n_texts``, ``n_empty`` (texts without a word) and ``n_short`` (texts with
    fewer than ``n`` words, left out of the repetition mean).
    """
    if isinstance(texts, str):
        raise ValueError("fluency_summary: pass a list of texts, not a single string")
    _check_n(n)
    toks = [words(t) for t in texts]
    reps = [r for r in (repetition_rate(t, n) for t in toks) if r is not None]
    uniq = [u for u in (unique_token_ratio(t) for t in toks) if u is not None]
    return {
        "repetition_rate": float(np.mean(reps)) if reps else None,
        "unique_token_ratio": float(np.mean(uniq)) if uniq else None,
        "n_texts": len(toks),
        "n_empty": sum(1 for t in toks if not t),
        "n_short": sum(1 for t in toks if len(t) < n),
        "ngram": int(n),
    }
