"""The audit report as Markdown (``audit.md``): attacks with recoverability, membership
inference, fluency and jailbreak templates (docs/audit.md). Pure formatting over the
:class:`~obliviate.audits.settings.AuditResult`; tables through :func:`markdown_table`."""

from __future__ import annotations

from typing import Any

from obliviate.reporting.render import markdown_table

MIA_ORDER = ("loss", "zlib", "min_k", "min_k_plus_plus", "gradnorm", "reference")
MIA_LABELS = {
    "loss": "LOSS",
    "zlib": "ZLib",
    "min_k": "Min-K% (k=0.4)",
    "min_k_plus_plus": "Min-K%++ (k=0.4)",
    "gradnorm": "GradNorm",
    "reference": "Reference (retain model)",
}
ATTACK_LABELS = {
    "relearn": "relearning",
    "paraphrase": "paraphrased question",
    "jailbreak": "jailbreak templates (best)",
    "probe": "linear truth probe",
    "embedding": "embedding attack (held out)",
    "embedding_in_sample": "embedding attack (optimised items)",
}
METRIC_LABELS = {"prob": "forget prob", "rouge": "forget ROUGE-L", "auc": "true-vs-wrong AUC"}


def attack_label(attack: str) -> str:
    """Human label of an attack row name (``quant4`` -> ``4-bit quantisation``)."""
    if attack.startswith("quant") and attack[5:].isdigit():
        return f"{attack[5:]}-bit quantisation"
    return ATTACK_LABELS.get(attack, attack)


def _f(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, (int,)) and not isinstance(v, bool):
        return str(v)
    v = float(v)
    if v != 0 and abs(v) < 10**-digits:
        return f"{v:.1e}"
    return f"{v:.{digits}f}" if abs(v) < 100 else f"{v:.1f}"


_QUANTISER_TEXT = {
    "torchao": "torchao integer weights",
    "quanto": "optimum-quanto integer weights (its own groups)",
    "bnb": "bitsandbytes (LLM.int8 / NF4)",
    "rtn": "simulated symmetric round-to-nearest",
}


def _quantiser_text(quantiser: str, group_size: int | None) -> str:
    """How the quantisation attack quantised (docs/audit.md "Quantisation")."""
    text = _QUANTISER_TEXT.get(quantiser, quantiser)
    if quantiser in ("torchao", "rtn"):
        text += f", per {'group of ' + str(group_size) if group_size else 'output channel'}"
    return text


def audit_markdown(result: Any) -> str:
    """The audit as Markdown: attacks with recoverability, MIA, fluency, jailbreak templates."""
    info = result.info
    models = info.get("models", {})
    lines = [f"# Robustness audit ({info.get('benchmark')}, {info.get('split')})", ""]
    for role in ("unlearned", "target", "retain"):
        m = models.get(role, {})
        lines.append(f"- {role}: `{m.get('path') or 'in memory'}` ({m.get('fingerprint')})")
    s = result.settings
    lines += [
        "",
        (
            f"Recoverability R = (unlearned+attack − unlearned) / (target − retain), on the same "
            f"items; control = the same for the retain model. relearning: {s['relearn_steps']} "
            f"steps at lr {s['relearn_lr']} on {info.get('relearn_items')} forget items, measured "
            f"on the other {info.get('measured_items')}; quantisation: "
            f"{_quantiser_text(info.get('quantiser') or 'rtn', s.get('quant_group_size'))}. "
            "See docs/audit.md."
        ),
        "",
    ]
    if result.rows:
        heads = [
            "attack",
            "metric",
            "n",
            "target",
            "retain",
            "unlearned",
            "unlearned+attack",
            "retain+attack",
            "R",
            "control",
        ]
        body = []
        for r in result.rows:
            body.append(
                [
                    attack_label(r["attack"]),
                    METRIC_LABELS.get(r["metric"], r["metric"]),
                    str(r["n"]),
                    _f(r["target"]),
                    _f(r["retain"]),
                    _f(r["unlearned"]),
                    _f(r["unlearned_attacked"]),
                    _f(r["retain_attacked"]),
                    _f(r["recoverability"], 2),
                    _f(r["control"], 2) + (f" ({r['note']})" if r["note"] else ""),
                ]
            )
        lines += ["## Attacks", "", *markdown_table(heads, body), ""]
    if result.mia:
        roles = [r for r in ("target", "retain", "unlearned") if r in result.mia]
        heads = (
            ["attack"]
            + [f"{r} AUC" for r in roles]
            + [f"{r} privleak %" for r in roles if r != "retain"]
        )
        body = []
        for a in MIA_ORDER:
            if not any(a in result.mia[r]["auc"] for r in roles):
                continue
            row = [MIA_LABELS[a]] + [_f(result.mia[r]["auc"].get(a)) for r in roles]
            row += [
                _f((result.mia[r].get("privleak") or {}).get(a), 1) for r in roles if r != "retain"
            ]
            body.append(row)
        lines += [
            (
                "## Membership inference (AUC in OU orientation: 1 = forget set looks trained "
                "on, 0.5 = retain level)"
            ),
            "",
            *markdown_table(heads, body),
            "",
        ]
        skipped = {a: why for r in roles for a, why in result.mia[r].get("skipped", {}).items()}
        lines += [f"- {a} skipped: {why}" for a, why in skipped.items()]
        if skipped:
            lines.append("")
    if result.fluency:
        heads = [
            "model",
            "questions",
            "perplexity (retain judge)",
            "repetition rate",
            "unique-token ratio",
            "empty",
        ]
        body = []
        for role in ("target", "retain", "unlearned"):
            for split, f in (result.fluency.get(role) or {}).items():
                body.append(
                    [
                        role,
                        split,
                        _f(f["perplexity"], 2),
                        _f(f["repetition_rate"]),
                        _f(f["unique_token_ratio"]),
                        f"{f['n_empty']}/{f['n_texts']}",
                    ]
                )
        n = next(iter(next(iter(result.fluency.values())).values()))["ngram"]
        lines += [
            f"## Fluency of greedy answers (repetition rate = seq-rep-{n})",
            "",
            *markdown_table(heads, body),
            "",
        ]
    jt = result.jailbreak_templates
    if jt:
        roles = [r for r in ("target", "retain", "unlearned") if r in jt]
        heads = ["template"] + [f"{r} prob / ROUGE" for r in roles]
        body = [
            [f"`{t}`"] + [f"{_f(jt[r][i]['prob'])} / {_f(jt[r][i]['rouge'])}" for r in roles]
            for i, t in enumerate(jt["templates"])
        ]
        lines += [
            "## Jailbreak templates (mean over forget items)",
            "",
            *markdown_table(heads, body),
            "",
        ]
    if result.skipped:
        lines += ["## Skipped", ""] + [f"- {a}: {why}" for a, why in result.skipped.items()] + [""]
    return "\n".join(lines)
