"""All six membership-inference attacks of docs/metrics.md on one model, with AUC and PrivLeak.

LOSS, ZLib, Min-K% and Min-K%++ come from one teacher-forced pass
(:func:`obliviate.scoring.score_pairs`), GradNorm from per-sample gradients
(:mod:`obliviate.audits.gradients`) and Reference from a second pass through the reference
model (usually the retain model, as in OU; *not* pi_ref, docs/methods.md). Members are the
forget items (``request.eval["forget"]``, else ``request.forget``), non-members the holdout items
(``request.eval["holdout"]``, else ``request.holdout``). Scores are oriented higher = less
member-like and AUCs use OU's orientation (1 = the forget set still looks trained on, 0.5 =
indistinguishable), as ``obliviate.metrics.mia`` defines. PrivLeak (MUSE, in %) of each attack
is taken against the retain model's AUC of the same attack.
"""

from __future__ import annotations

from typing import Any

from obliviate.data.templates import PromptTemplate
from obliviate.data.types import QAItem, UnlearningRequest
from obliviate.metrics import mia

ATTACKS = ("loss", "zlib", "min_k", "min_k_plus_plus", "gradnorm", "reference")


def mia_members(request: UnlearningRequest) -> tuple[list[QAItem], list[QAItem]]:
    """(members, non-members) of the attacks: the forget and holdout items."""
    forget = request.eval.get("forget") or request.forget
    holdout = request.eval.get("holdout") or request.holdout
    if not holdout:
        raise ValueError(
            "membership inference needs holdout items (never-trained non-members): give a "
            "holdout split/file (TOFU holdoutNN, --holdout-file)"
        )
    return list(forget), list(holdout)


def mia_suite(
    model: Any,
    tok: Any,
    request: UnlearningRequest,
    template: PromptTemplate,
    reference_model: Any = None,
    retain_aucs: dict[str, float] | None = None,
    *,
    reference_tokenizer: Any = None,
    k: float = 0.4,
    batch_size: int = 32,
    max_length: int = 512,
    gradnorm_train_mode: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the six attacks on ``model``; returns a JSON-ready dict.

    ``{"auc": {attack: AUC}, "privleak": {attack: % or None}, "scores": {attack: {"forget": [...],
    "holdout": [...]}}, "skipped": {attack: reason}, "n_forget", "n_holdout", "settings"}``.
    Without ``reference_model`` the Reference attack is skipped (never silently replaced);
    GradNorm is skipped for a model without parameters (an inference wrapper). PrivLeak needs
    ``retain_aucs`` (the retain model's ``"auc"`` from this function); without them it is absent,
    and it is ``None`` where the retain AUC makes it undefined (AUC 1).
    """
    from obliviate.audits.gradients import per_sample_grad_norms
    from obliviate.scoring import score_pairs

    members, non_members = mia_members(request)
    items = members + non_members
    n_f = len(members)
    pairs = [(it.question, it.answer) for it in items]
    ts = score_pairs(
        model,
        tok,
        pairs,
        template,
        batch_size=batch_size,
        max_length=max_length,
        progress=progress,
        desc="MIA scoring",
    )
    nll = [s.nll_avg(include_eos=True) for s in ts]
    per_item = [
        mia.token_attack_scores(
            x, it.answer, s.token_logprobs, s.mu, s.sigma2, k, has_eos=s.has_eos
        )
        for x, it, s in zip(nll, items, ts)
    ]
    scores: dict[str, list[float]] = {a: [row[a] for row in per_item] for a in mia.TOKEN_ATTACKS}
    skipped: dict[str, str] = {}
    try:
        norms = per_sample_grad_norms(
            model,
            tok,
            pairs,
            template,
            max_length=max_length,
            train_mode=gradnorm_train_mode,
            progress=progress,
        )
        scores["gradnorm"] = [mia.gradnorm_score(g) for g in norms]
    except ValueError as exc:
        if hasattr(model, "named_parameters"):
            raise
        skipped["gradnorm"] = str(exc)
    if reference_model is not None:
        rts = score_pairs(
            reference_model,
            reference_tokenizer or tok,
            pairs,
            template,
            batch_size=batch_size,
            max_length=max_length,
            progress=progress,
            desc="MIA reference",
        )
        scores["reference"] = [
            mia.reference_score(x, r.nll_avg(include_eos=True)) for x, r in zip(nll, rts)
        ]
    else:
        skipped["reference"] = "no reference model given (the retain model is the usual choice)"
    aucs = mia.attack_aucs(scores, n_f)
    out: dict[str, Any] = {
        "auc": aucs,
        "scores": {a: {"forget": v[:n_f], "holdout": v[n_f:]} for a, v in scores.items()},
        "skipped": skipped,
        "n_forget": n_f,
        "n_holdout": len(non_members),
        "settings": {
            "k": k,
            "orientation": "OU (1 = forget looks trained on)",
            "gradnorm_train_mode": gradnorm_train_mode,
        },
    }
    if retain_aucs is not None:
        # None where the retain model's AUC is 1: PrivLeak divides by 0
        out["privleak"] = mia.privleak_by_attack(aucs, retain_aucs, undefined="none")
    return out
