"""The HTML page of a sweep's study folder (``obliviate report runs/sweep-X``; docs/sweep.md,
"The report page"): every finished trial as a point on the forget/utility plane with the
Pareto front of that plane highlighted, the parameters' importance and the trials' table.

It reads ``summary.json`` (and ``OUT/target``, ``OUT/retain`` as reference points) and, for
the importance, ``study.db`` through Optuna when it is installed; no model is loaded.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from obliviate.io import atomic_write_text, read_json
from obliviate.reporting import html as H
from obliviate.reporting import plots
from obliviate.reporting.tables import direction_of, format_value, label

# (forget axis, utility axis, log scale on x): the first pair the trials have
SWEEP_AXES = (
    ("forget_quality", "model_utility", True),
    ("forget_prob", "model_utility", False),
    ("forget_prob", "retain_prob", False),
    ("forget_rouge", "retain_rouge", False),
)
FRONT_COLOUR, OTHER_COLOUR = "#ff7f0e", "#9aa5b1"


def is_sweep_dir(path: str | os.PathLike[str]) -> bool:
    """``path`` is the study folder of ``obliviate sweep`` (it holds study.json and
    summary.json)."""
    p = Path(path)
    return (p / "study.json").is_file() and (p / "summary.json").is_file()


def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def plane(trials: Sequence[Mapping[str, Any]]) -> tuple[str, str, bool, list[Mapping[str, Any]]]:
    """The axes (x, y, log x) of the first pair in :data:`SWEEP_AXES` that some complete trial
    has, and those trials; ValueError when none has a pair."""
    done = [t for t in trials if t.get("state") == "COMPLETE"]
    for x, y, log_x in SWEEP_AXES:
        have = [
            t
            for t in done
            if _finite((t.get("metrics") or {}).get(x)) is not None
            and _finite((t.get("metrics") or {}).get(y)) is not None
        ]
        if have:
            return x, y, log_x, have
    raise ValueError(
        "no finished trial of this sweep has a forget and a utility metric to plot; "
        "run more trials (obliviate sweep ... --trials N)"
    )


def front_of(points: Sequence[tuple[float, float]], x_dir: str, y_dir: str) -> list[int]:
    """Indices of the points on the Pareto front of the plane (each axis by its direction)."""
    from obliviate.sweep.summary import pareto_front

    sense = {"higher": "maximize", "lower": "minimize"}
    return pareto_front(points, [sense.get(x_dir, "maximize"), sense.get(y_dir, "maximize")])


def eta_squared(trials: Sequence[Mapping[str, Any]], param: str, bins: int = 3) -> float | None:
    """The share of the first objective's variance over complete trials explained by grouping
    them by ``param`` alone (docs/sweep.md, "The report page"): values as groups when there are
    at most ``bins`` + 2 distinct ones, otherwise ``bins`` rank groups of equal size."""
    pairs = [
        (t["params"][param], float(t["values"][0]))
        for t in trials
        if t.get("state") == "COMPLETE"
        and param in (t.get("params") or {})
        and t.get("values")
        and _finite(t["values"][0]) is not None
    ]
    if len(pairs) < 2:
        return None
    ys = [y for _, y in pairs]
    mean = sum(ys) / len(ys)
    total = sum((y - mean) ** 2 for y in ys)
    if total == 0:
        return 0.0
    distinct = sorted({p for p, _ in pairs}, key=str)
    if len(distinct) <= bins + 2 or not all(isinstance(p, (int, float)) for p in distinct):
        keys = [distinct.index(p) for p, _ in pairs]
    else:
        order = sorted(range(len(pairs)), key=lambda i: pairs[i][0])
        keys = [0] * len(pairs)
        for rank, i in enumerate(order):
            keys[i] = rank * bins // len(pairs)
    groups: dict[int, list[float]] = {}
    for k, y in zip(keys, ys):
        groups.setdefault(k, []).append(y)
    between = sum(len(g) * (sum(g) / len(g) - mean) ** 2 for g in groups.values())
    return between / total


def importances(out: Path, summary: Mapping[str, Any]) -> tuple[dict[str, float], str]:
    """Parameter importance for the first objective: Optuna's ``get_param_importances`` with
    the fANOVA evaluator (Hutter+ 2014, "An Efficient Approach for Assessing Hyperparameter
    Importance", ICML; seeded) on ``study.db`` when Optuna and scikit-learn are installed and
    can compute it, else eta squared per parameter (:func:`eta_squared`). Returns the values
    and a sentence saying which."""
    params = list(summary.get("space") or {})
    objective = ((summary.get("objectives") or [{}])[0]).get("name", "the objective")
    db = out / "study.db"
    if db.is_file() and params:
        try:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            study = optuna.load_study(study_name="sweep", storage=f"sqlite:///{db.resolve()}")
            imp = optuna.importance.get_param_importances(
                study,
                evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
                target=lambda t: t.values[0],
            )
            return (
                {k: float(v) for k, v in imp.items()},
                f"fANOVA importance (Optuna's get_param_importances) for {objective}, over "
                "the complete trials (infeasible ones with their penalised value); the values "
                "sum to 1.",
            )
        except (ImportError, RuntimeError, ValueError, KeyError):
            pass
    trials = summary.get("trials") or []
    eta = {p: eta_squared(trials, p) for p in params}
    return (
        {p: v for p, v in eta.items() if v is not None},
        f"Eta squared for {objective}: the share of its variance over the complete trials "
        "explained by the parameter alone (trials grouped by its value, or in three equal "
        "rank groups); a rough screen, not additive across parameters (docs/sweep.md).",
    )


def _reference_points(out: Path, x: str, y: str) -> list[plots.Point]:
    from obliviate.runs import load_run

    pts = []
    for role in ("target", "retain"):
        if not (out / role / "metrics.json").is_file():
            continue
        run = load_run(out / role)
        vx, vy = run.value(x), run.value(y)
        if vx is not None and vy is not None:
            pts.append(plots.Point(role, role, vx, vy, plots.ROLE_COLOURS[role]))
    return pts


def plane_section(out: Path, trials: Sequence[Mapping[str, Any]]) -> tuple[str, set[int]]:
    """The scatter of the trials and the numbers of the trials on its Pareto front."""
    x, y, log_x, have = plane(trials)
    x_dir, y_dir = direction_of([], x) or "higher", direction_of([], y) or "higher"
    coords = [(float(t["metrics"][x]), float(t["metrics"][y])) for t in have]
    front = {have[i]["number"] for i in front_of(coords, x_dir, y_dir)}
    pts = _reference_points(out, x, y) + [
        plots.Point(
            f"#{t['number']}",
            "unlearned",
            cx,
            cy,
            FRONT_COLOUR if t["number"] in front else OTHER_COLOUR,
        )
        for t, (cx, cy) in zip(have, coords)
    ]
    uri = plots.tradeoff_scatter(pts, label(x), label(y), x_dir, y_dir, log_x=log_x)
    caption = (
        f"Each point is a finished trial (#number). Orange: the Pareto front of this plane "
        f"({len(front)} trials no other trial beats on both {label(x)} and {label(y)}); "
        "grey: the others. ✕ = the target, ★ = the retain model, when evaluated."
    )
    return H.figure(uri, f"{label(x)} against {label(y)} per trial", caption), front  # type: ignore[arg-type]


def importance_section(values: Mapping[str, float], how: str) -> str:
    if not values:
        return ""
    head = [H.th("Parameter"), H.th("Importance", num=True)]
    rows = [
        H.tr([H.td(H.esc(k)), H.td(H.esc(format_value(v)), v=v)])
        for k, v in sorted(values.items(), key=lambda kv: -kv[1])
    ]
    return H.table(head, rows, id_="sweep-importance") + f'<p class="note">{H.esc(how)}</p>'


def trials_section(summary: Mapping[str, Any], front: set[int]) -> str:
    params = list(summary.get("space") or {})
    objectives = [o["name"] for o in summary.get("objectives") or []]
    trials = summary.get("trials") or []
    metrics = [m for m in SWEEP_AXES_METRICS if any(m in (t.get("metrics") or {}) for t in trials)]
    head = [H.th("Trial"), H.th("State"), H.th("Selected"), H.th("Front")]
    head += [H.th(p, num=True) for p in params]
    head += [H.th(o, title="objective value (unpenalised)", num=True) for o in objectives]
    head += [H.th(label(m), title=m, num=True) for m in metrics]
    chosen = set(summary.get("selected") or [])
    rows = []
    for t in trials:
        scores = t.get("scores") or [None] * len(objectives)
        cells = [
            H.td(H.esc(t["number"]), v=t["number"]),
            H.td(H.esc(str(t.get("state", "")).lower())),
            H.td("yes" if t["number"] in chosen else ""),
            H.td("yes" if t["number"] in front else ""),
        ]
        cells += [
            H.td(H.esc(format_value(t["params"].get(p))), v=t["params"].get(p)) for p in params
        ]
        cells += [H.td(H.esc(format_value(s)), v=s) for s in scores]
        tm = t.get("metrics") or {}
        cells += [H.td(H.esc(format_value(tm.get(m))), v=tm.get(m)) for m in metrics]
        rows.append(H.tr(cells))
    return '<div class="wide">' + H.table(head, rows, id_="sweep-trials") + "</div>"


SWEEP_AXES_METRICS = (
    "forget_quality",
    "model_utility",
    "forget_prob",
    "holdout_prob",
    "retain_prob",
    "forget_rouge",
    "retain_rouge",
    "mia_loss_auc",
    "privleak",
)


def write_sweep_report(
    path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None
) -> Path:
    """Write the page of the sweep study folder ``path`` (default: ``path/report.html``, or
    ``out``: a file, or a folder to write ``report.html`` into) and return its path."""
    from obliviate.reporting.report import now_utc

    folder = Path(path)
    summary = read_json(folder / "summary.json")
    if not isinstance(summary, dict) or not isinstance(summary.get("trials"), list):
        raise ValueError(f"{folder / 'summary.json'}: expected the summary of obliviate sweep")
    target = Path(out) if out is not None else folder / "report.html"
    if target.is_dir():
        target = target / "report.html"
    plane_html, front = plane_section(folder, summary["trials"])
    values, how = importances(folder, summary)
    sections = [
        ("plane", "Trials on the forget/utility plane", plane_html),
        ("importance", "Parameter importance", importance_section(values, how)),
        ("trials", "Trials", trials_section(summary, front)),
    ]
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted((summary.get("counts") or {}).items()))
    title = f"Sweep: {summary.get('method', '?')} on {summary.get('data_label', '?')}"
    page = H.page(title, counts, [s for s in sections if s[2]], created=now_utc())
    return atomic_write_text(target, page)
