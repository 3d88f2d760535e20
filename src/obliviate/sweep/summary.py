"""The study summary of `obliviate sweep`: each trial's parameters, metrics and scores, the best
trial (one objective) or the Pareto front (several), as ``summary.json`` and a table
(docs/sweep.md, "The study folder"). Pure functions over plain dicts: no Optuna here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# metrics every table shows (when evaluated), after the objectives
TABLE_METRICS = (
    ("forget_quality", "FQ"),
    ("model_utility", "MU"),
    ("forget_prob", "forget prob"),
    ("holdout_prob", "holdout prob"),
    ("retain_prob", "retain prob"),
    ("mia_loss_auc", "MIA AUC"),
)


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """``a`` is at least as good as ``b`` on every objective and better on one."""
    better = False
    for x, y, d in zip(a, b, directions):
        if d == "maximize":
            x, y = -x, -y
        if x > y:
            return False
        if x < y:
            better = True
    return better


def pareto_front(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Indices of the points no other point dominates (ties all kept), in input order."""
    return [
        i
        for i, p in enumerate(points)
        if not any(dominates(q, p, directions) for j, q in enumerate(points) if j != i)
    ]


def best_trials(trials: Sequence[dict[str, Any]], directions: Sequence[str]) -> list[int]:
    """The numbers of the selected trials: among finished feasible trials, the best one (one
    objective; the lowest number on a tie) or the Pareto front (several). Without any feasible
    trial, the same over every finished trial by penalised value (the summary says so)."""
    done = [t for t in trials if t["state"] == "COMPLETE" and t.get("scores")]
    feasible = [t for t in done if t.get("feasible")]
    pool, key = (feasible, "scores") if feasible else (done, "values")
    if not pool:
        return []
    points = [t[key] for t in pool]
    if len(directions) == 1:
        sign = -1.0 if directions[0] == "maximize" else 1.0
        best = min(range(len(pool)), key=lambda i: (sign * points[i][0], pool[i]["number"]))
        return [pool[best]["number"]]
    return [pool[i]["number"] for i in pareto_front(points, directions)]


def select_by(
    trials: Sequence[dict[str, Any]], spec: str, refs: dict[str, Any]
) -> dict[str, Any] | None:
    """The trial that objective ``spec`` (``"mia"``, ``"oracle:utility=0.9"``) would select
    among the finished ``trials`` of a study, scored on their kept metrics against the
    reference models' ``refs`` (``{"target": ..., "retain": ...}``) by the same rule as
    :func:`best_trials`: ``{"number", "value", "feasible"}``, or None without a finished trial.
    A metric the objective needs and a trial lacks is a ValueError."""
    from obliviate.sweep.objectives import parse_objective

    obj, params = parse_objective(spec)
    scored = []
    for t in trials:
        if t["state"] != "COMPLETE" or not t.get("metrics"):
            continue
        s = obj.score(t["metrics"], refs, params)
        scored.append(
            {
                "number": t["number"],
                "state": "COMPLETE",
                "scores": [s.value],
                "values": [obj.penalised(s)],
                "feasible": s.feasible,
            }
        )
    chosen = best_trials(scored, [obj.direction])
    if not chosen:
        return None
    pick = next(t for t in scored if t["number"] == chosen[0])
    return {"number": pick["number"], "value": pick["scores"][0], "feasible": pick["feasible"]}


def build_summary(
    study: dict[str, Any], trials: list[dict[str, Any]], directions: Sequence[str]
) -> dict[str, Any]:
    chosen = best_trials(trials, directions)
    feasible = any(t.get("feasible") for t in trials if t["state"] == "COMPLETE")
    counts: dict[str, int] = {}
    for t in trials:
        counts[t["state"]] = counts.get(t["state"], 0) + 1
    return {
        "schema": 1,
        **study,
        "directions": list(directions),
        "counts": counts,
        "selected": chosen,
        "selection": ("best" if len(directions) == 1 else "pareto_front")
        + ("" if feasible or not chosen else "_of_infeasible"),
        "trials": trials,
    }


def summary_table(summary: dict[str, Any]) -> str:
    """The trials as a markdown table; selected trials marked ``*``, infeasible ones ``!``."""
    from obliviate.reporting.render import fmt_number, markdown_table

    keys = list(summary.get("space", {}))
    objectives = [o["name"] for o in summary.get("objectives", [])]
    trials = summary["trials"]
    metric_cols = [
        (k, label)
        for k, label in TABLE_METRICS
        if any((t.get("metrics") or {}).get(k) is not None for t in trials)
    ]
    head = ["trial", "state", *keys, *objectives, *[label for _, label in metric_cols]]
    rows = []
    chosen = set(summary.get("selected", []))
    for t in trials:
        mark = "*" if t["number"] in chosen else ("!" if t.get("feasible") is False else "")
        scores = t.get("scores") or [None] * len(objectives)
        metrics = t.get("metrics") or {}
        rows.append(
            [
                f"{t['number']}{mark}",
                t["state"].lower(),
                *[fmt_number(t["params"].get(k)) for k in keys],
                *[fmt_number(s) for s in scores],
                *[fmt_number(metrics.get(k)) for k, _ in metric_cols],
            ]
        )
    what = {
        "best": "* best trial",
        "pareto_front": "* Pareto front",
        "best_of_infeasible": "* best trial; no trial met the constraints",
        "pareto_front_of_infeasible": "* Pareto front; no trial met the constraints",
    }[summary["selection"]]
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(summary["counts"].items()))
    lines = [
        f"sweep: {summary['method']} on {summary['data_label']}  ({counts})",
        f"objectives: {', '.join(summary_objective(o) for o in summary.get('objectives', []))}",
        "",
        *markdown_table(head, rows),
        "",
        f"{what}; ! misses a constraint",
    ]
    return "\n".join(lines)


def summary_objective(o: dict[str, Any]) -> str:
    params = ",".join(f"{k}={v}" for k, v in o.get("params", {}).items())
    return f"{o['name']} ({o['direction']}{', ' + params if params else ''})"
