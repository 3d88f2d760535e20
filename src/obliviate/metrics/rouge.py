"""ROUGE between generations and gold answers, via Google's ``rouge_score`` package.

Lin 2004, *ROUGE: A Package for Automatic Evaluation of Summaries*: ROUGE-L from the longest
common subsequence (LCS) of the token sequences, ROUGE-1 from unigram overlap.
Recall = LCS / len(reference), precision = LCS / len(generation), F1 = 2PR / (P + R)
(docs/metrics.md). TOFU reports ROUGE-L recall (Porter stemming on, as in OU); MUSE reports
ROUGE-L F1 without stemming in its original code (docs/muse-wmdp.md).
"""

from __future__ import annotations

from collections.abc import Sequence

ROUGE_KEYS = ("rouge_l_recall", "rouge_l_precision", "rouge_l_f1", "rouge1_recall")


def rouge_scores(
    generations: Sequence[str], references: Sequence[str], use_stemmer: bool = True
) -> list[dict[str, float]]:
    """Per-item ROUGE scores of ``generations`` against ``references`` (same order).

    Returns one dict per item with keys ``rouge_l_recall``, ``rouge_l_precision``,
    ``rouge_l_f1`` and ``rouge1_recall``. ``use_stemmer=True`` (Porter stemming) matches TOFU/OU;
    pass ``False`` for MUSE's original VerbMem/KnowMem numbers. ``rouge_score`` lower-cases and
    keeps only alphanumeric tokens; an empty text scores 0. Cutting generations at EOS/stop
    strings is the caller's job (docs/metrics.md). The scorer is built once per call.
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

    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=use_stemmer)
    out: list[dict[str, float]] = []
    for gen, ref in zip(gens, refs):
        s = scorer.score(ref, gen)  # score(target, prediction): recall is relative to target
        out.append(
            {
                "rouge_l_recall": float(s["rougeL"].recall),
                "rouge_l_precision": float(s["rougeL"].precision),
                "rouge_l_f1": float(s["rougeL"].fmeasure),
                "rouge1_recall": float(s["rouge1"].recall),
            }
        )
    return out
