"""Memorisation metrics over teacher-forced argmax hits: exact memorisation, extraction strength.

Input: ``correct[t] = (argmax_v z_t == y_t)`` for the answer tokens of one item, EOS last when
``has_eos``. Both metrics exclude the EOS by default (``include_eos=False``), as OpenUnlearning
(arXiv 2506.12618) does (docs/metrics.md); pass ``has_eos`` so the EOS is dropped, or drop it
yourself and leave ``has_eos=False``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from obliviate.metrics.base import answer_tokens, as_bool_1d, check_nonempty


def exact_memorisation(correct: Any, *, include_eos: bool = False, has_eos: bool = False) -> float:
    """Exact memorisation EM = (1/n) sum_t 1[argmax z_t = y_t] over the answer tokens.

    Tirumala+ 2022 (arXiv 2205.10770), as used by OpenUnlearning (2506.12618); docs/metrics.md
    §3.3. Teacher-forced, EOS excluded by default. Raises ValueError on an empty answer (a mean
    over no tokens is undefined; OU stores None there).
    """
    arr = answer_tokens(
        as_bool_1d(correct, "correct"), "correct", include_eos=include_eos, has_eos=has_eos
    )
    check_nonempty(arr, "correct", "exact memorisation is undefined for an answer with no tokens")
    return float(arr.mean())


def extraction_strength(correct: Any, *, include_eos: bool = False, has_eos: bool = False) -> float:
    """Extraction strength ES = 1 - k/n, k the smallest index with yhat_{k:} == y_{k:}.

    docs/metrics.md (attributed by OpenUnlearning 2506.12618 to Carlini+ 2021, 2012.07805;
    unverified). With teacher-forced argmax predictions yhat, ES is the fraction of the answer
    that greedy decoding reproduces once given the prefix y_{<k}, i.e. the length of the longest
    all-correct suffix divided by n. If no suffix matches (the last token is wrong), k = n and
    ES = 0 (OU returns 1/n there: docs/metrics.md). An empty answer gives 0.
    """
    arr = answer_tokens(
        as_bool_1d(correct, "correct"), "correct", include_eos=include_eos, has_eos=has_eos
    )
    n = arr.shape[0]
    if n == 0:
        return 0.0
    wrong = np.flatnonzero(~arr)
    k = int(wrong[-1]) + 1 if wrong.size else 0  # the suffix after the last miss matches
    return 1.0 - k / n
