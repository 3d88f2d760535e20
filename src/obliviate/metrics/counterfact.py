"""Fact-editing scores of CounterFact and zsRE (Meng+ 2022, ROME, arXiv 2202.05262; zsRE:
Levy+ 2017, arXiv 1706.04115, as used by De Cao+ 2021, arXiv 2104.08164): pure functions over
the per-token log-probabilities of a target after a prompt.

CounterFact (ROME's CounterFact metrics ES/EM, PS/PM, NS/NM, defined in its evaluation
section; the paper has no numbered equation for them): a record
rewrites the fact (subject, relation, o^c) into (subject, relation, o*). With P(o | p) the
probability of target o after prompt p:

- efficacy score ES = E[1[P(o* | p) > P(o^c | p)]] on the rewrite prompt, magnitude
  EM = E[P(o* | p) - P(o^c | p)];
- paraphrase score PS / magnitude PM: the same on the record's paraphrase prompts (averaged
  within a record, then over records);
- neighborhood score NS = E[1[P(o^c | n) > P(o* | n)]] on prompts n about *other* subjects that
  share the true object (specificity: they must keep it), magnitude NM = E[P(o^c) - P(o*)].

As in ROME's evaluation code, a target's log-probability is the *mean* over its tokens
(:func:`mean_logprob`, so that targets of different lengths compare) and P = exp of it.
For unlearning (forget = the rewritten facts, no new fact to teach), ES/PS rise as the true
object loses to the counterfactual one; :func:`true_probability` is the plain drop-in-P(o^c)
view.

zsRE (ROME's zsRE table, following De Cao+ 2021): top-1 token accuracy (:func:`token_accuracy`,
the share of target tokens that are the argmax under teacher forcing) of the new answer after
the question (efficacy) and after its rephrasing (paraphrase), and of the unrelated question's
answer (specificity).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def mean_logprob(token_logprobs: Sequence[float] | np.ndarray) -> float:
    """(1/T) Σ_t log p(target token t | prompt, earlier tokens); no token is an error."""
    lp = np.asarray(token_logprobs, dtype=np.float64)
    if lp.ndim != 1 or lp.size == 0:
        raise ValueError("a target needs at least one scored token")
    return float(lp.mean())


def rewrite_hit(new: Sequence[float], true: Sequence[float]) -> tuple[float, float]:
    """(1[P(o*) > P(o^c)], P(o*) - P(o^c)) for one prompt, from the targets' token log-probs."""
    a, b = mean_logprob(new), mean_logprob(true)
    return float(a > b), float(np.exp(a) - np.exp(b))


def neighborhood_hit(new: Sequence[float], true: Sequence[float]) -> tuple[float, float]:
    """(1[P(o^c) > P(o*)], P(o^c) - P(o*)) on a neighbourhood prompt."""
    a, b = mean_logprob(true), mean_logprob(new)
    return float(a > b), float(np.exp(a) - np.exp(b))


def record_mean(pairs: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """Mean (score, magnitude) over a record's prompts; None for a record without any."""
    if not pairs:
        return None
    arr = np.asarray(pairs, dtype=np.float64)
    return float(arr[:, 0].mean()), float(arr[:, 1].mean())


def aggregate(per_record: Sequence[tuple[float, float] | None]) -> tuple[float, float, int]:
    """(mean score, mean magnitude, records) over the records that have such prompts."""
    kept = [r for r in per_record if r is not None]
    if not kept:
        raise ValueError("no record has prompts of this kind")
    arr = np.asarray(kept, dtype=np.float64)
    return float(arr[:, 0].mean()), float(arr[:, 1].mean()), len(kept)


def true_probability(true: Sequence[float]) -> float:
    """P(o^c | p) = exp(mean token log p): lower after unlearning the fact."""
    return float(np.exp(mean_logprob(true)))


def token_accuracy(correct: Sequence[bool] | np.ndarray) -> float:
    """Share of the target's tokens that the teacher-forced argmax predicts (zsRE accuracy)."""
    c = np.asarray(correct, dtype=bool)
    if c.ndim != 1 or c.size == 0:
        raise ValueError("a target needs at least one scored token")
    return float(c.mean())
