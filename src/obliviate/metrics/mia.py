"""Membership-inference attack (MIA) scores, ROC-AUC in OU orientation, and MUSE PrivLeak.

Orientation (docs/metrics.md): every score is **higher = less member-like**, and
:func:`auc` labels forget = 0, holdout = 1, so AUC = P(s_holdout > s_forget):
1 = the forget set still looks like training data (under-unlearned), 0.5 = indistinguishable
(the retain model's level), -> 0 = the forget set looks less member-like than unseen data
(over-unlearned). MUSE's AUC is the complement, 1 - AUC_OU.

Per-token inputs come from the teacher-forced scoring pass over the answer tokens, EOS last when
``has_eos``. Following OU (docs/metrics.md): LOSS, ZLib and Reference use NLL_avg with the EOS
included (compute it with :func:`obliviate.metrics.tofu.nll_avg`); Min-K% and Min-K%++ exclude
it by default.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from obliviate.metrics.base import (
    answer_tokens,
    as_1d,
    check_logprobs,
    check_nll,
    check_nonempty,
)

# docs/metrics.md: Min-K%++ clamps the variance at 1e-6 before the square root
SIGMA2_MIN = 1e-6
# absorbs float error in k * n (0.29 * 100 = 28.999999999999996); exact products unchanged
_K_FLOOR_TOL = 1e-9


def loss_score(nll_avg: float) -> float:
    """LOSS attack (Yeom+ 2018, arXiv 1709.01604): s = NLL_avg, EOS included (docs/metrics.md)."""
    return check_nll(nll_avg, "nll_avg")


def zlib_score(nll_avg: float, text: str) -> float:
    """ZLib attack: s = NLL_avg / len(zlib.compress(text.encode("utf-8"))) (docs/metrics.md).

    From Carlini+ 2021 (arXiv 2012.07805), which calibrates the model's log-perplexity by the
    zlib entropy (compressed length in bytes) of the text. We follow OU: the numerator is the
    per-token NLL_avg (EOS included) and ``text`` is the decoded answer (target) text.
    docs/metrics.md states that the paper uses the total log-perplexity (NLL summed over
    tokens) instead; the two differ by a factor n per item, so AUCs differ when answer lengths
    vary. (Other public implementations, e.g. the Min-K% Prob and mimir code, also divide the
    mean loss; which one the paper means is unverified here.) zlib output is never empty (an
    empty string compresses to 8 bytes).
    """
    if not isinstance(text, str):
        raise ValueError(f"zlib_score: text must be str, got {type(text).__name__}")
    return check_nll(nll_avg, "nll_avg") / len(zlib.compress(text.encode("utf-8")))


def min_k_count(n: int, k: float) -> int:
    """Number of tokens Min-K% averages: max(1, floor(k * n)).

    This is OU's ``max(1, int(n * k))`` (rounding *down*: n = 4, k = 0.4 selects 1 token, not 2;
    n = 2 selects 1, never 0), with a 1e-9 guard so that float error in k * n cannot drop a
    token. Raises if n < 1 or k is not in (0, 1].
    """
    if n < 1:
        raise ValueError("Min-K%: no tokens to score")
    if not 0.0 < k <= 1.0:
        raise ValueError(f"Min-K%: k must be in (0, 1], got {k}")
    return max(1, math.floor(k * n + _K_FLOOR_TOL))


def min_k_score(
    token_logprobs: Any, k: float = 0.4, *, include_eos: bool = False, has_eos: bool = False
) -> float:
    """Min-K% Prob (Shi+ 2023, arXiv 2310.16789, Min-K% Prob definition): s = -mean of the
    :func:`min_k_count` lowest token log-probabilities.

    k = 0.4 is the config value of OU and MUSE ("Min-40%"); OU's class default is 0.2, so pass k
    explicitly (docs/metrics.md). EOS excluded by default. Raises on an empty answer.
    """
    lp = check_logprobs(as_1d(token_logprobs, "token_logprobs"), "token_logprobs")
    lp = answer_tokens(lp, "token_logprobs", include_eos=include_eos, has_eos=has_eos)
    check_nonempty(lp, "token_logprobs", "Min-K% is undefined for an answer with no tokens")
    m = min_k_count(lp.shape[0], k)
    return float(-np.sort(lp)[:m].mean())


def min_k_plus_plus_score(
    token_logprobs: Any,
    mu: Any,
    sigma2: Any,
    k: float = 0.4,
    *,
    include_eos: bool = False,
    has_eos: bool = False,
) -> float:
    """Min-K%++ (Zhang+ 2024, arXiv 2404.02936, the normalised token score; docs/metrics.md).

    Per token: z_t = (log p(y_t) - mu_t) / sqrt(max(sigma2_t, 1e-6)), with
    mu_t = sum_v p_v log p_v and sigma2_t = sum_v p_v (log p_v)^2 - mu_t^2 under the model's
    next-token distribution. Then as Min-K%: s = -mean of the :func:`min_k_count` lowest z_t.
    EOS excluded by default (all three arrays share the same positions).
    """
    lp = check_logprobs(as_1d(token_logprobs, "token_logprobs"), "token_logprobs")
    m = as_1d(mu, "mu", allow_inf=False)
    s2 = as_1d(sigma2, "sigma2", allow_inf=False)
    if not lp.shape == m.shape == s2.shape:
        raise ValueError(
            f"Min-K%++: token_logprobs, mu and sigma2 must have the same length, got "
            f"{lp.shape[0]}, {m.shape[0]}, {s2.shape[0]}"
        )
    lp, m, s2 = (
        answer_tokens(a, name, include_eos=include_eos, has_eos=has_eos)
        for a, name in ((lp, "token_logprobs"), (m, "mu"), (s2, "sigma2"))
    )
    check_nonempty(lp, "token_logprobs", "Min-K%++ is undefined for an answer with no tokens")
    z = (lp - m) / np.sqrt(np.maximum(s2, SIGMA2_MIN))
    return float(-np.sort(z)[: min_k_count(z.shape[0], k)].mean())


def reference_score(nll_target: float, nll_ref: float) -> float:
    """Reference-model attack: s = NLL_avg(target) - NLL_avg(reference) (docs/metrics.md).

    Calibration by a second model as in Carlini+ 2021 (2012.07805). The reference is usually
    the retain model (not pi_ref, the frozen pre-unlearning copy; docs/methods.md).
    """
    return check_nll(nll_target, "nll_target") - check_nll(nll_ref, "nll_ref")


def gradnorm_score(grad_norms: Sequence[float] | np.ndarray) -> float:
    """GradNorm attack score: the mean over parameter tensors of each tensor's gradient L2 norm.

    As in OU (docs/metrics.md): batch size 1, loss = mean token NLL, the *mean of
    per-tensor norms*, not the global norm. Members have smaller gradients, so higher = less
    member-like. Computing the gradients (train mode, zeroing them afterwards, restoring model
    state) is the scoring layer's job; this function only reduces the given norms.
    """
    g = as_1d(grad_norms, "grad_norms", allow_inf=False)
    check_nonempty(g, "grad_norms", "give one gradient norm per parameter tensor")
    if (g < 0).any():
        raise ValueError("grad_norms: a norm must be >= 0")
    return float(g.mean())


def auc(scores_forget: Sequence[float], scores_holdout: Sequence[float]) -> float:
    """ROC-AUC in OU orientation: labels forget = 0, holdout = 1 (docs/metrics.md).

    AUC = P(s_holdout > s_forget) + 0.5 P(s_holdout = s_forget), the Mann-Whitney U statistic
    over n_f * n_h (equal to ``sklearn.metrics.roc_auc_score([0]*n_f + [1]*n_h, scores)``),
    computed from average ranks so that ties count 0.5. +-inf scores are allowed; NaN and empty
    sides raise.
    """
    from scipy.stats import rankdata

    f = as_1d(scores_forget, "scores_forget")
    h = as_1d(scores_holdout, "scores_holdout")
    check_nonempty(f, "scores_forget", "AUC needs at least one forget score")
    check_nonempty(h, "scores_holdout", "AUC needs at least one holdout score")
    ranks = rankdata(np.concatenate([f, h]))  # average ranks: ties share rank
    n_f, n_h = f.shape[0], h.shape[0]
    u_holdout = ranks[n_f:].sum() - n_h * (n_h + 1) / 2.0
    return float(u_holdout / (n_f * n_h))


def privleak(auc_model: float, auc_retain: float) -> float:
    """MUSE PrivLeak in % (Shi+ 2024, arXiv 2407.06460, C3 "no privacy leakage").

    PrivLeak = (AUC_unl - AUC_retrain) / AUC_retrain * 100 in MUSE orientation. From OU-oriented
    AUCs (as :func:`auc` returns): s = 1 - auc_model, r = 1 - auc_retain, (s - r) / r * 100
    (docs/metrics.md). ~0 is the goal; ~-100 = under-unlearned (a target that memorised the
    forget set has auc_model ~1); strongly positive = over-unlearned.

    ``auc_retain`` is required: there is no silent 0.5 fallback (docs/metrics.md). Raises if
    r = 0 (the retain model's AUC_OU is 1: PrivLeak is undefined; OU would divide by 1e-10).
    """
    a = _check_auc(auc_model, "auc_model")
    b = _check_auc(auc_retain, "auc_retain")
    r = 1.0 - b
    if r == 0.0:
        raise ValueError(
            "privleak: the retain model's AUC (OU orientation) is 1, so PrivLeak divides by 0; "
            "check the retain model's forget/holdout scores"
        )
    return ((1.0 - a) - r) / r * 100.0


def _check_auc(value: Any, name: str) -> float:
    if value is None:
        raise ValueError(f"privleak: {name} is missing (None); evaluate that model first")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"privleak: {name} is not a number: {value!r}") from None
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"privleak: {name} must be an AUC in [0, 1], got {x}")
    return x


# ---------------------------------------------------------------------------------------------
# the attacks together: used by the TOFU evaluation, the audit's MIA suite and MUSE

TOKEN_ATTACKS = ("loss", "zlib", "min_k", "min_k_plus_plus")


def token_attack_scores(
    nll_avg: float,
    text: str,
    token_logprobs: Any,
    mu: Any,
    sigma2: Any,
    k: float = 0.4,
    *,
    has_eos: bool = False,
) -> dict[str, float]:
    """The four attacks of one teacher-forced pass over one text, ``{attack: score}``.

    ``nll_avg`` is the text's NLL_avg with the EOS included (LOSS, ZLib); Min-K% and Min-K%++
    exclude the EOS (docs/metrics.md). Keys in :data:`TOKEN_ATTACKS` order; every score is
    oriented higher = less member-like.
    """
    return {
        "loss": loss_score(nll_avg),
        "zlib": zlib_score(nll_avg, text),
        "min_k": min_k_score(token_logprobs, k, has_eos=has_eos),
        "min_k_plus_plus": min_k_plus_plus_score(token_logprobs, mu, sigma2, k, has_eos=has_eos),
    }


def attack_aucs(scores: Mapping[str, Sequence[float]], n_forget: int) -> dict[str, float]:
    """:func:`auc` of each attack whose score list holds the ``n_forget`` forget (member)
    scores first and the holdout (non-member) scores after: ``{attack: AUC_OU}``."""
    if n_forget < 1:
        raise ValueError("attack_aucs: n_forget must be >= 1 (the forget scores come first)")
    return {a: auc(v[:n_forget], v[n_forget:]) for a, v in scores.items()}


def privleak_name(attack: str) -> str:
    """The metric name of an attack's PrivLeak: ``privleak`` for Min-K% (MUSE's C3 attack),
    ``privleak_<attack>`` for the others."""
    return "privleak" if attack == "min_k" else f"privleak_{attack}"


def privleak_by_attack(
    aucs: Mapping[str, float], retain_aucs: Mapping[str, float], *, undefined: str = "raise"
) -> dict[str, float | None]:
    """:func:`privleak` of every attack that has an AUC in both ``aucs`` (the model) and
    ``retain_aucs`` (the retain / retrained model), ``{attack: %}`` in ``aucs`` order.

    Where the retain AUC is 1, PrivLeak is undefined: ``undefined="raise"`` raises (the
    evaluations), ``undefined="none"`` records None (the audit, which reports the other
    attacks anyway).
    """
    if undefined not in ("raise", "none"):
        raise ValueError(f"undefined must be 'raise' or 'none', got {undefined!r}")
    out: dict[str, float | None] = {}
    for attack, value in aucs.items():
        if attack not in retain_aucs:
            continue
        try:
            out[attack] = privleak(value, retain_aucs[attack])
        except ValueError:
            if undefined == "raise" or 1.0 - _check_auc(retain_aucs[attack], "auc_retain") != 0.0:
                raise
            out[attack] = None
    return out
