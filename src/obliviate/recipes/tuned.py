"""The tuned comparison (`obliviate benchmark --tuned N`): every method also at the setting
that a sweep of N trials selects, with the same trial budget for every method, so that the table
ranks methods rather than hand-picked presets (docs/sweep.md, "The tuned leaderboard").

Each method's search is an ordinary resumable study in ``OUT/tuned/<method>/``
(:func:`obliviate.sweep.study.sweep`: the method's default search space, the fixed settings of
``method_overrides`` kept fixed). Its first trial is the preset (the values that lie in the
space), so the selected setting scores at least as well as the preset by the objective when the
preset lies in the space; the selected trial's run folder joins the
comparison under its path relative to ``OUT``.

``compare`` names a second objective (default ``mia``, which needs no retain model) that
selects among the same finished trials (:func:`obliviate.sweep.summary.select_by`): one run
shows what a practitioner without the retain model would have picked next to the oracle's pick.
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
    compare: str | None = "mia",
) -> dict[str, dict[str, Any]]:
    """Sweep every method with ``trials`` trials scored by ``objective`` (a registered
    objective, e.g. ``"oracle"`` or ``"mia"``) and return, per method with a finished trial,
    ``{"run": folder relative to out, "trial": n, "params": {...}, "feasible": bool,
    "metrics": the trial's kept metrics, "result": the folder's metrics.json}``, plus
    ``"compare"``: the same keys (without ``result``) and ``objective`` for the trial that
    ``compare`` selects, when given and not the tuning objective itself."""
    from obliviate.recipes.tofu import _config_for
    from obliviate.sweep.objectives import parse_objective
    from obliviate.sweep.space import flatten
    from obliviate.sweep.study import sweep

    if trials < 1:
        raise ValueError(f"--tuned {trials}: give at least 1 trial per method")
    if compare and parse_objective(compare)[0].name == parse_objective(objective)[0].name:
        compare = None  # the same objective selects the same trial
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
            seed=sampler_seed(method),
            **request,
        )
        selected = res.summary["selected"]
        if not selected:
            if log:
                log(f"[{method}] tuning: no trial finished; left out of the table")
            continue
        trial = next(t for t in res.summary["trials"] if t["number"] == selected[0])
        pick = _pick(out, res.out, trial)
        picks[method] = {**pick, "result": read_json(out / pick["run"] / "metrics.json")}
        if compare:
            other = _compared(out, res.out, res.summary["trials"], compare, log, method)
            if other is not None:
                picks[method]["compare"] = other
    return picks


def sampler_seed(method: str) -> int:
    """The sampler seed of a method's sweep: fixed per method (a rerun draws the same trials)
    but different between methods, so that methods sharing a search space do not all try the
    same settings."""
    import zlib

    return zlib.crc32(method.encode()) % (2**31)


def _pick(out: Path, study: Path, trial: Mapping[str, Any]) -> dict[str, Any]:
    """A selected trial as the comparison lists it; ``run`` is relative to ``out``."""
    folder = study / (trial.get("reused") or trial["run"])
    return {
        "run": folder.relative_to(out).as_posix(),
        "trial": trial["number"],
        "params": trial["params"],
        "feasible": trial["feasible"],
        "metrics": dict(trial.get("metrics") or {}),
    }


def _compared(
    out: Path,
    study: Path,
    trials: Sequence[Mapping[str, Any]],
    spec: str,
    log: Callable[[str], None] | None,
    method: str,
) -> dict[str, Any] | None:
    """The trial objective ``spec`` selects among the study's finished ``trials``, scored
    against the study's reference evaluations (``study/target``, ``study/retain``); None (and
    a log line) when a metric it needs was not evaluated."""
    from obliviate.sweep.summary import select_by

    refs = {role: _reference(study / role) for role in ("target", "retain")}
    try:
        chosen = select_by([dict(t) for t in trials], spec, refs)
    except ValueError as exc:
        if log:
            log(f"[{method}] no {spec} selection to compare: {exc}")
        return None
    if chosen is None:
        return None
    trial = next(t for t in trials if t["number"] == chosen["number"])
    return {"objective": spec, **_pick(out, study, trial), "feasible": chosen["feasible"]}


def _reference(folder: Path) -> dict[str, Any] | None:
    """The flat metrics of a study's reference evaluation, None when it has none."""
    from obliviate.io import read_jsonl
    from obliviate.sweep.study import flat_metrics

    if not (folder / "metrics.json").is_file():
        return None
    samples = read_jsonl(folder / "samples.jsonl") if (folder / "samples.jsonl").is_file() else []
    return flat_metrics(read_json(folder / "metrics.json")["metrics"], samples)
