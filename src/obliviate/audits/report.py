"""Writing an audit to a run folder: an ``"audit"`` section in ``metrics.json`` and ``audit.md``.

``metrics.json`` (docs/run-format.md) keeps whatever an evaluation wrote there; the audit adds
``"audit"`` (the full :class:`~obliviate.audits.runner.AuditResult`) and a few headline values
under ``"metrics"`` (:func:`summary_metrics`), so reports and leaderboards pick them up.
No torch here: this module only formats numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from obliviate.io import atomic_write_text, read_json, write_json
from obliviate.metrics import metric_result
from obliviate.metrics.mia import privleak_name

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
}
METRIC_LABELS = {"prob": "forget prob", "rouge": "forget ROUGE-L", "auc": "true-vs-wrong AUC"}


def attack_label(attack: str) -> str:
    """Human label of an attack row name (``quant4`` -> ``4-bit quantisation``)."""
    if attack.startswith("quant") and attack[5:].isdigit():
        return f"{attack[5:]}-bit quantisation"
    return ATTACK_LABELS.get(attack, attack)


def summary_metrics(result: Any, existing: dict[str, Any] | None = None) -> dict[str, Any]:
    """Headline values for ``metrics.json["metrics"]`` (name -> {value, direction, version}),
    each with the direction, version and ideal of its entry in the metric catalogue
    (:mod:`obliviate.metrics.catalogue`):

    - ``audit_<attack>_<metric>_recoverability`` (lower is better: 0 = nothing recovered);
    - ``mia_gradnorm_auc`` / ``mia_reference_auc`` and ``privleak_gradnorm`` /
      ``privleak_reference`` of the unlearned model; the other four MIA AUCs (and ``privleak``,
      the Min-K% one) only when an evaluation has not already stored them;
    - ``fluency_<split>_perplexity`` / ``_repetition_rate`` (lower) / ``_unique_token_ratio``.
    """
    existing = existing or {}
    out: dict[str, Any] = {}
    for row in result.rows:
        if row["recoverability"] is not None:
            name = f"audit_{row['attack']}_{row['metric']}_recoverability"
            out[name] = metric_result(name, row["recoverability"], control=row["control"]).to_dict()
    unl = result.mia.get("unlearned")
    if unl:
        for attack, auc in unl["auc"].items():
            name = f"mia_{attack}_auc"
            if attack in ("gradnorm", "reference") or name not in existing:
                out[name] = metric_result(name, auc).to_dict()
        for attack, pl in (unl.get("privleak") or {}).items():
            name = privleak_name(attack)
            if pl is not None and (attack in ("gradnorm", "reference") or name not in existing):
                out[name] = metric_result(name, pl).to_dict()
    for split, f in (result.fluency.get("unlearned") or {}).items():
        for key in ("perplexity", "repetition_rate", "unique_token_ratio"):
            if f.get(key) is not None:
                name = f"fluency_{split}_{key}"
                out[name] = metric_result(name, f[key]).to_dict()
    return out


def write_audit(out: str | Path, result: Any) -> Path:
    """Add the audit to ``out/metrics.json`` (created when absent) and write ``out/audit.md``."""
    from obliviate.runs import SCHEMA, library_versions, now

    out = Path(out)
    path = out / "metrics.json"
    if path.exists():
        try:
            doc = read_json(path)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{path}: not valid JSON ({exc}); move it away or pick another --out"
            ) from None
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: expected a JSON object")
    else:
        doc = {
            "schema": SCHEMA,
            "name": out.name,
            "role": "unlearned",
            "method": _method_of(out),
            "benchmark": result.info.get("benchmark"),
            "split": result.info.get("split"),
            "model": result.info.get("models", {}).get("unlearned", {}),
            "metrics": {},
            "versions": library_versions(),
            "created": now(),
        }
    metrics = doc.setdefault("metrics", {})
    metrics.update(summary_metrics(result, metrics))
    doc["audit"] = result.to_dict()
    doc["audit"]["created"] = now()
    atomic_write_text(out / "audit.md", audit_markdown(result))
    return write_json(path, doc)


def _method_of(run_dir: Path) -> str | None:
    cfg = run_dir / "config.yaml"
    if not cfg.exists():
        return None
    import yaml

    data = yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}
    return data.get("method") if isinstance(data, dict) else None


def _f(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, (int,)) and not isinstance(v, bool):
        return str(v)
    v = float(v)
    if v != 0 and abs(v) < 10**-digits:
        return f"{v:.1e}"
    return f"{v:.{digits}f}" if abs(v) < 100 else f"{v:.1f}"


def _table(heads: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(heads) + " |",
        "|" + "---|" * len(heads),
        *["| " + " | ".join(r) + " |" for r in rows],
    ]


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
            f"on the other {info.get('measured_items')}; quantisation: simulated symmetric "
            f"round-to-nearest, per {'group of ' + str(s['quant_group_size']) if s['quant_group_size'] else 'output channel'}. "
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
        lines += ["## Attacks", "", *_table(heads, body), ""]
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
            *_table(heads, body),
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
            *_table(heads, body),
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
        lines += ["## Jailbreak templates (mean over forget items)", "", *_table(heads, body), ""]
    if result.skipped:
        lines += ["## Skipped", ""] + [f"- {a}: {why}" for a, why in result.skipped.items()] + [""]
    return "\n".join(lines)
