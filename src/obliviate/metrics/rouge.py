"""ROUGE between generations and gold answers, via Google's ``rouge_score`` package.

Lin 2004, *ROUGE: A Package for Automatic Evaluation of Summaries*: ROUGE-L from the longest
common subsequence (LCS) of the token sequences, ROUGE-1 from unigram overlap.
Recall = LCS / len(reference), precision = LCS / len(generation), F1 = 2PR / (P + R)
(docs/metrics.md). TOFU reports ROUGE-L recall (Porter stemming on, as in OU); MUSE reports
ROUGE-L F1 without stemming in its original code (docs/muse-wmdp.md).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

ROUGE_KEYS = ("rouge_l_recall", "rouge_l_precision", "rouge_l_f1", "rouge1_recall")


def rouge_scores(
    generations: Sequence[str], references: Sequence[str], use_stemmer: bool = True
) -> list[dict[str, float]]:
    """Per-item ROUGE scores of ``generations`` against ``references`` (same order).

    Returns one dict per item with keys ``rouge_l_recall``, ``rouge_l_precision``,
    ``rouge_l_f1`` and ``rouge1_recall``. ``use_stemmer=True`` (Porter stemming) matches TOFU/OU;
    pass ``False`` for MUSE's original VerbMem/KnowMem numbers. ``rouge_score`` lower-cases and
    keeps only alphanumeric tokens; an empty text scores 0. Cutting generations at EOS/stop
    strings is the caller's job (docs/metrics.md). Each word's stem is computed once per
    process (:func:`scorer`).
    """
    if isinstance(generations, str) or isinstance(references, str):
        raise ValueError("rouge_scores: pass lists of strings, not a single string")
    gens, refs = list(generations), list(references)
    if len(gens) != len(refs):
        raise ValueError(
            f"rouge_scores: {len(gens)} generations but {len(refs)} references; "
            "they must be paired item by item"
        )
    for name, texts in (("generations", gens), ("references", refs)):
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValueError(f"rouge_scores: {name}[{i}] is {type(t).__name__}, not str")

    rouge = scorer(use_stemmer)
    out: list[dict[str, float]] = []
    for gen, ref in zip(gens, refs):
        s = rouge.score(ref, gen)  # score(target, prediction): recall is relative to target
        out.append(
            {
                "rouge_l_recall": float(s["rougeL"].recall),
                "rouge_l_precision": float(s["rougeL"].precision),
                "rouge_l_f1": float(s["rougeL"].fmeasure),
                "rouge1_recall": float(s["rouge1"].recall),
            }
        )
    return out


@functools.lru_cache(maxsize=2)
def scorer(use_stemmer: bool) -> Any:
    """A ``rouge_score`` scorer for ROUGE-1 and ROUGE-L whose tokenizer is the package's own
    (:func:`rouge_score.tokenize.tokenize`: lower-case, alphanumeric tokens, Porter stems of
    words over 3 characters), with each word's stem kept: stemming is most of the time of
    scoring long generations, and a word's stem never changes."""
    from nltk.stem import porter
    from rouge_score import rouge_scorer, tokenize, tokenizers

    class KeptStems(tokenizers.Tokenizer):
        def __init__(self) -> None:
            self.stem = functools.lru_cache(maxsize=None)(porter.PorterStemmer().stem)

        def tokenize(self, text: str) -> list[str]:
            return tokenize.tokenize(text, self if use_stemmer else None)

    return rouge_scorer.RougeScorer(["rouge1", "rougeL"], tokenizer=KeptStems())
