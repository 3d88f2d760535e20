"""Writing an audit to a run folder: an ``"audit"`` section in ``metrics.json`` and ``audit.md``.

``metrics.json`` (docs/run-format.md) keeps whatever an evaluation wrote there; the audit adds
``"audit"`` (the full :class:`~obliviate.audits.runner.AuditResult`) and a few headline values
under ``"metrics"`` (:func:`summary_metrics`), so reports and leaderboards pick them up.
No torch here; the Markdown is rendered by :mod:`obliviate.reporting.audit_tables`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from obliviate.io import atomic_write_text, read_json, write_json
from obliviate.metrics import metric_result
from obliviate.metrics.mia import privleak_name
from obliviate.reporting.audit_tables import (  # noqa: F401  (re-exported)
    ATTACK_LABELS,
    METRIC_LABELS,
    MIA_LABELS,
    MIA_ORDER,
    attack_label,
    audit_markdown,
)


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
