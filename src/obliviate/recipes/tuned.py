"""The tuned comparison (`obliviate benchmark --tuned N`): every method also at the setting
that a sweep of N trials selects, with the same trial budget for every method, so that the table
ranks methods rather than hand-picked presets (docs/sweep.md, "The tuned leaderboard").

Each method's search is an ordinary resumable study in ``OUT/tuned/<method>/``
(:func:`obliviate.sweep.study.sweep`: the method's default search space, the fixed settings of
``method_overrides`` kept fixed). Its first trial is the preset (the values that lie in the
space), so the selected setting scores at least as well as the preset by the objective when the
preset lies in the space; the selected trial's run folder joins the
comparison under its path relative to ``OUT``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from obliviate.io import read_json


def tune_methods(
    out: Path,
    methods: Sequence[str],
    target: str,
    retain: str,
    trials: int,
    objective: str,
    request: Mapping[str, Any],
    overrides: Mapping[str, dict[str, Any]],
    eval_settings: dict[str, Any] | None,
    seeds: int,
    progress: bool,
    log: Callable[[str], None] | None,
) -> dict[str, dict[str, Any]]:
    """Sweep every method with ``trials`` trials scored by ``objective`` (a registered
    objective, e.g. ``"oracle"`` or ``"mia"``) and return, per method with a finished trial,
    ``{"run": folder relative to out, "trial": n, "params": {...}, "feasible": bool,
    "result": the folder's metrics.json}``."""
    from obliviate.recipes.tofu import _config_for
    from obliviate.sweep.space import flatten
    from obliviate.sweep.study import sweep

    if trials < 1:
        raise ValueError(f"--tuned {trials}: give at least 1 trial per method")
    picks: dict[str, dict[str, Any]] = {}
    for method in methods:
        if log:
            log(f"[{method}] tuning: {trials} trials, objective {objective}")
        res = sweep(
            target,
            method=method,
            out=out / "tuned" / method,
            retain_model=retain,
            trials=trials,
            objectives=(objective,),
            overrides=dict(overrides.get(method, {})),
            eval_settings=eval_settings,
            progress=progress,
            log=log,
            seeds=seeds,
            first=flatten(_config_for(method, dict(overrides.get(method, {})))),
            **request,
        )
        selected = res.summary["selected"]
        if not selected:
            if log:
                log(f"[{method}] tuning: no trial finished; left out of the table")
            continue
        trial = next(t for t in res.summary["trials"] if t["number"] == selected[0])
        folder = res.out / (trial.get("reused") or trial["run"])
        picks[method] = {
            "run": folder.relative_to(out).as_posix(),
            "trial": trial["number"],
            "params": trial["params"],
            "feasible": trial["feasible"],
            "result": read_json(folder / "metrics.json"),
        }
    return picks
