"""The audit's result rows: one per (section, attack), with its metrics on the three models;
and the shaping of the MIA and jailbreak-template sections of the result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from obliviate.audits.runner import _Ctx
    from obliviate.audits.settings import AuditSettings


def _mean(values: list[float], idx: list[int] | None = None) -> float:
    vals = values if idx is None else [values[i] for i in idx]
    return float(np.mean(vals))


def build_rows(results: dict[str, dict[str, Any]], ctx: _Ctx) -> list[dict[str, Any]]:
    """One row per (attack, metric) from the per-model measurements (see :func:`make_row`)."""
    rows: list[dict[str, Any]] = []
    t, r, u = results["target"], results["retain"], results["unlearned"]
    attacks: list[tuple[str, list[int] | None]] = []
    if "relearn" in ctx.attacks:
        attacks.append(("relearn", ctx.measure_idx))
    if "quantise" in ctx.attacks:
        attacks += [(f"quant{b}", None) for b in ctx.settings.quant_bits]
    if "paraphrase" in ctx.attacks:
        attacks.append(("paraphrase", ctx.para_idx))
    if "jailbreak" in ctx.attacks:
        attacks.append(("jailbreak", None))
    for name, idx in attacks:
        for metric in ("prob", "rouge"):
            base = [_mean(m["base"][metric], idx) for m in (t, r, u)]
            rows.append(
                make_row(
                    name,
                    metric,
                    len(idx) if idx is not None else len(ctx.items),
                    *base,
                    target_attacked=_mean(t[name][metric]) if name in t else None,
                    retain_attacked=_mean(r[name][metric]),
                    unlearned_attacked=_mean(u[name][metric]),
                )
            )
    if "embedding" in ctx.attacks:
        rows += _embedding_rows(t, r, u)
    if "probe" in ctx.attacks:
        rows.append(
            make_row(
                "probe",
                "auc",
                u["probe"]["n_test_items"],
                t["probe"]["output_auc"],
                r["probe"]["output_auc"],
                u["probe"]["output_auc"],
                target_attacked=t["probe"]["probe_auc"],
                retain_attacked=r["probe"]["probe_auc"],
                unlearned_attacked=u["probe"]["probe_auc"],
            )
        )
    return rows


def _embedding_rows(t: dict, r: dict, u: dict) -> list[dict[str, Any]]:
    """Rows ``embedding`` (the held-out items) and ``embedding_in_sample`` (the items the soft
    tokens were optimised on), metric ``prob``; the target is not attacked."""
    rows = []
    for name, idx_key, key in (
        ("embedding", "measured_idx", "prob"),
        ("embedding_in_sample", "optimised_idx", "prob_in_sample"),
    ):
        idx = u["embedding"][idx_key]
        base = [_mean(m["base"]["prob"], idx) for m in (t, r, u)]
        rows.append(
            make_row(
                name,
                "prob",
                len(idx),
                *base,
                target_attacked=None,
                retain_attacked=_mean(r["embedding"][key]),
                unlearned_attacked=_mean(u["embedding"][key]),
            )
        )
    return rows


def make_row(
    attack: str,
    metric: str,
    n: int,
    target: float,
    retain: float,
    unlearned: float,
    *,
    target_attacked: float | None,
    retain_attacked: float,
    unlearned_attacked: float,
) -> dict[str, Any]:
    """A table row with the recoverability R and the retain-model control (None + a note when
    undefined)."""
    from obliviate.audits.scores import recoverability

    row: dict[str, Any] = {
        "attack": attack,
        "metric": metric,
        "n": n,
        "target": target,
        "retain": retain,
        "unlearned": unlearned,
        "target_attacked": target_attacked,
        "retain_attacked": retain_attacked,
        "unlearned_attacked": unlearned_attacked,
        "recoverability": None,
        "control": None,
        "note": "",
    }
    try:
        row["recoverability"] = recoverability(unlearned_attacked, unlearned, target, retain)
        row["control"] = recoverability(retain_attacked, retain, target, retain)
        if target < retain:
            row["note"] = "target below retain: the sign of R is not meaningful"
    except ValueError:
        row["note"] = "target and retain score the same: R undefined"
    return row


def _with_privleak(mia_result: dict[str, Any], retain_aucs: dict[str, float]) -> dict[str, Any]:
    from obliviate.metrics import mia

    return {
        **mia_result,
        "privleak": mia.privleak_by_attack(mia_result["auc"], retain_aucs, undefined="none"),
    }


def _strip_scores(mia_result: dict[str, Any]) -> dict[str, Any]:
    """The MIA result without per-item scores (kept small for metrics.json)."""
    return {k: v for k, v in mia_result.items() if k != "scores"}


def _template_table(results: dict[str, dict[str, Any]], s: AuditSettings) -> dict[str, Any]:
    return {
        "templates": list(s.jailbreak_templates),
        **{role: r["jailbreak"]["per_template"] for role, r in results.items()},
    }
