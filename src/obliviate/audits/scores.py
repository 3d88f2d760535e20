"""Pure helpers of the robustness audit: the recoverability score and the item splits.

Recoverability (our definition, docs/audit.md). For a forget metric m where higher means "the
model still knows the forget answers" (forget probability, forget ROUGE-L recall, the truth
probe's AUC), measured on the same items for every model:

    R = (m_attacked − m_unlearned) / (m_target − m_retain)

- m_target, m_retain, m_unlearned: the three models without attack (the same items, the plain
  questions); m_target − m_retain is the knowledge the target has and the retain model (the
  gold standard, never trained on the forget set) lacks.
- m_attacked: the unlearned model under the attack (after relearning, quantised, asked a
  paraphrase or a jailbreak-wrapped question, read by a linear probe).

R = 0: the attack recovers nothing; R = 1: it gives back as much as the whole target-over-retain
gap (the forgotten knowledge is back at the target's level when the unlearned model started at
the retain level); R < 0: the attack lowers the metric further. The same formula with the retain
model in place of the unlearned one is the *control* R_retain: what the attack gives a model
that never learned the forget set (fine-tuning on related data, an easier phrasing, quantisation
noise). Recovery worth worrying about is R clearly above R_retain.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

# |m_target - m_retain| at or below this: the target does not know more than the retain model
# on these items, and R is undefined
MIN_GAP = 1e-6


def recoverability(
    attacked: float, unlearned: float, target: float, retain: float, min_gap: float = MIN_GAP
) -> float:
    """R = (attacked − unlearned) / (target − retain); see the module docstring.

    Raises ValueError when a value is not a finite number or when |target − retain| <= min_gap
    (the metric does not separate the target from the retain model, so there is nothing to
    recover). A negative gap (the retain model scores higher than the target) is allowed but
    makes R's sign meaningless: the audit flags it.
    """
    vals = {"attacked": attacked, "unlearned": unlearned, "target": target, "retain": retain}
    for name, v in vals.items():
        if v is None or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            raise ValueError(f"recoverability: {name} must be a finite number, got {v!r}")
    gap = float(target) - float(retain)
    if abs(gap) <= min_gap:
        raise ValueError(
            f"recoverability: the target ({target:.4g}) and the retain model ({retain:.4g}) score "
            "the same on this metric, so there is nothing to recover (undefined)"
        )
    return (float(attacked) - float(unlearned)) / gap


def split_halves(n: int, seed: int = 0, fraction: float = 0.5) -> tuple[list[int], list[int]]:
    """A seeded random split of ``range(n)`` into (relearn, measure) index lists.

    The first ``ceil(fraction * n)`` items of a ``random.Random(seed)`` permutation form the
    relearning set, the rest the measured set; both lists come back sorted. Needs n >= 2 and
    0 < fraction < 1 so that both sides are non-empty.
    """
    if n < 2:
        raise ValueError(f"the relearning attack needs at least 2 forget items, got {n}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"relearn_fraction must be in (0, 1), got {fraction}")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    k = min(n - 1, max(1, math.ceil(fraction * n)))
    return sorted(order[:k]), sorted(order[k:])


def best_of(per_variant: Sequence[Sequence[float]]) -> list[float]:
    """Per-item maximum over variants: ``per_variant[v][i]`` -> ``max_v per_variant[v][i]``.

    The jailbreak probe's worst case: an attacker tries every template and keeps the one that
    works best on each item. Raises on no variant or on variants of different lengths.
    """
    if not per_variant:
        raise ValueError("best_of: no variants given")
    n = len(per_variant[0])
    if any(len(v) != n for v in per_variant):
        raise ValueError("best_of: every variant must score the same items")
    return [max(float(v[i]) for v in per_variant) for i in range(n)]
