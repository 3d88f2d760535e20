"""`obliviate sweep`: a hyper-parameter search over one method on one benchmark with Optuna
(Akiba+ 2019, arXiv 1907.10902; docs/sweep.md).

Each trial is an ordinary unlearning run plus its evaluation (:func:`obliviate.api.unlearn`,
:func:`obliviate.api.evaluate`) in its own run folder ``OUT/trials/NNNN``. The study lives in
``OUT/study.db`` (Optuna's SQLite storage): a killed sweep started again continues from its
finished trials, and several processes may run trials of the same study at once. A trial left
RUNNING by a process that died is failed and retried with the same parameters: at once when
the process ran on this machine, otherwise once its heartbeat is stale. A trial whose
configuration equals a finished one's reuses that one's results (``stage.json`` fingerprints,
:mod:`obliviate.recipes.resume`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obliviate.io import atomic_write_text, read_json, write_json
from obliviate.sweep.space import Dimension, grid_size, nest, resolve_space, start_point
from obliviate.sweep.summary import build_summary, summary_table

SAMPLERS = ("tpe", "random", "grid")
HEARTBEAT_S = 30  # a RUNNING trial of another machine is failed after 4 missed heartbeats
FINISHED = ("COMPLETE", "PRUNED")  # states that count towards --trials
REQUEST_KEYS = (
    "benchmark",
    "data",
    "split",
    "forget",
    "retain",
    "holdout",
    "builtin",
    "template",
    "revision",
    "system_prompt",
    "field_map",
    "stride",
)


@dataclass
class SweepResult:
    out: Path
    summary: dict[str, Any]
    table: str


def import_optuna() -> Any:
    """Optuna, or a one-line error naming the extra that installs it."""
    try:
        import optuna
    except ImportError:
        raise ValueError(
            "obliviate sweep needs Optuna: install the extra with pip install 'obliviate[sweep]'"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def model_scale(model_dir: str) -> str:
    """``tiny`` for a tiny Llama trained by obliviate (its run's config.yaml says so), else
    ``real``: which default ranges :meth:`MethodPreset.search_space` gives."""
    cfg = Path(model_dir).parent / "config.yaml"
    if cfg.is_file():
        import yaml

        doc = yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}
        if str(doc.get("model", "")).startswith("tiny-llama"):
            return "tiny"
    return "real"


def sweep(
    model: str,
    method: str = "npo",
    out: str | Path = "runs/sweep",
    retain_model: str | None = None,
    trials: int = 10,
    objectives: Sequence[str] = ("oracle",),
    sampler: str = "tpe",
    space: list[str] | Mapping[str, str] | None = None,
    default_space: bool = True,
    overrides: dict[str, Any] | None = None,
    scale: str | None = None,
    grid_points: int = 3,
    seed: int = 0,
    eval_settings: dict[str, Any] | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = print,
    seeds: int = 1,
    first: Mapping[str, Any] | None = None,
    **request: Any,
) -> SweepResult:
    """Search ``method``'s hyper-parameters on ``model`` until ``trials`` trials of the study
    in ``out`` have finished (counting those of earlier or concurrent processes), then write
    ``out/summary.json`` and ``out/summary.md`` and return them.

    ``space``: ``--space`` items (``["train.lr=1e-5:1e-3:log"]``) or a dict, added to (or
    replacing) the method's default space for ``scale`` ("tiny"/"real"; default: from the
    model) unless not ``default_space``; keys fixed in ``overrides`` are not searched.
    ``objectives``: registered names with optional parameters (``"oracle:utility=0.9"``);
    two or more make a multi-objective study. ``request``: the data arguments of
    :func:`obliviate.api.unlearn` (benchmark, data, split, forget, retain, holdout, builtin...).
    ``seeds`` > 1: every trial runs that many seeds (``OUT/trials/NNNN/seed-<s>/``) and is
    scored on the mean of each metric over them; the per-seed values are kept in the trial.
    ``first``: flat settings (e.g. the method's preset) for the first trial of a new study;
    those outside the space are sampled (:func:`obliviate.sweep.space.start_point`).
    """
    from obliviate.models.loading import model_fingerprint
    from obliviate.recipes.resume import ConfigMismatchError, fingerprint
    from obliviate.registry import METHODS
    from obliviate.runs import resolve_model_dir
    from obliviate.sweep.objectives import parse_objective

    unknown = sorted(set(request) - set(REQUEST_KEYS))
    if unknown:
        raise ValueError(f"sweep(): unknown argument {unknown[0]!r}")
    if trials < 1:
        raise ValueError(f"--trials {trials}: give at least 1 trial")
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    if sampler not in SAMPLERS:
        raise ValueError(f"--sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
    preset = METHODS.get(method)
    objs = [parse_objective(s) for s in objectives]
    if not objs:
        raise ValueError("give at least one objective (obliviate ls objectives)")
    if len({o.name for o, _ in objs}) != len(objs):
        raise ValueError("an objective is listed twice")
    if retain_model is None and any(o.needs_retain_model for o, _ in objs):
        raise ValueError(
            "the oracle objective needs the retain model (--retain-model); without one use "
            "--objective mia, forget_prob_gap or utility_drop"
        )
    fixed = dict(overrides or {})
    if space:  # a bad --space fails before anything is loaded
        _check_space(preset, resolve_space({}, space, fixed, use_default=False), fixed)
    model_dir = resolve_model_dir(model)
    scale = scale or model_scale(model_dir)
    dims = resolve_space(preset.search_space(scale), space, fixed, default_space)
    _check_space(preset, dims, fixed)
    optuna = import_optuna()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    req = {k: v for k, v in request.items() if v is not None}
    study_cfg = {
        "method": method,
        "model": str(model),
        "model_fingerprint": model_fingerprint(model_dir),
        "retain_model": retain_model,
        "request": {k: str(v) if isinstance(v, Path) else v for k, v in req.items()},
        "objectives": [
            {"name": o.name, "direction": o.direction, "params": {**o.params, **p}} for o, p in objs
        ],
        "space": {k: d.spec() for k, d in dims.items()},
        "fixed": fixed,
        "sampler": sampler,
        "grid_points": grid_points if sampler == "grid" else None,
        "eval": eval_settings or {},
    }
    if seeds > 1:  # absent for one seed: studies written before the option keep their key
        study_cfg["seeds"] = seeds
    cfg_path = out / "study.json"
    if cfg_path.exists():
        old = read_json(cfg_path)
        if old.get("fingerprint") != fingerprint(study_cfg):
            keys = sorted(k for k in study_cfg if old.get("config", {}).get(k) != study_cfg[k])
            raise ConfigMismatchError(
                f"{out} holds a study with another configuration (differs in "
                f"{', '.join(keys) or 'its fingerprint'}); choose a new --out"
            )
    else:
        write_json(cfg_path, {"config": study_cfg, "fingerprint": fingerprint(study_cfg)})
    if sampler == "grid":
        trials = min(trials, grid_size(dims, grid_points))
    refs = _references(model, retain_model, out, req, eval_settings, progress, log)
    storage = _storage(optuna, out / "study.db")
    study = optuna.create_study(
        storage=storage,
        study_name="sweep",
        directions=[o.direction for o, _ in objs],
        load_if_exists=True,
    )
    # a resumed study must not replay the samples of its first run: offset the seed by the
    # trials it already has (parallel processes: one --seed each)
    study.sampler = _sampler(optuna, sampler, dims, grid_points, seed + len(study.trials), trials)
    if first and not study.trials:
        study.enqueue_trial(start_point(dims, first))
    _fail_dead_trials(optuna, study, storage)
    from obliviate.sweep.trial import TrialRunner

    runner = TrialRunner(
        preset.name, model, model_dir, retain_model, out, dims, fixed, objs, refs, req,
        eval_settings, progress, log, seeds,
    )  # fmt: skip

    def finished() -> int:
        states = [optuna.trial.TrialState[s] for s in FINISHED]
        return len(study.get_trials(deepcopy=False, states=states))

    def stop_when_done(st: Any, _trial: Any) -> None:
        if finished() >= trials:
            st.stop()

    left = trials - finished()
    if left > 0:
        _say(log, f"[sweep] {finished()} of {trials} trials finished; running {left} more")
        study.optimize(runner, n_trials=left, callbacks=[stop_when_done])
    summary = build_summary(
        {**study_cfg, "data_label": _data_label(req), "out": str(out), "scale": scale},
        [_trial_record(t) for t in study.get_trials(deepcopy=False)],
        [o.direction for o, _ in objs],
    )
    table = summary_table(summary)
    write_json(out / "summary.json", summary)
    atomic_write_text(out / "summary.md", table + "\n")
    return SweepResult(out, summary, table)


def _say(log: Callable[[str], None] | None, msg: str) -> None:
    if log:
        log(msg)


def _data_label(req: Mapping[str, Any]) -> str:
    name = req.get("benchmark") or ("qa" if req.get("forget") else "tofu")
    src = req.get("data") or req.get("forget") or "builtin"
    return f"{name} ({src}{', ' + req['split'] if req.get('split') else ''})"


def _check_space(preset: Any, dims: Mapping[str, Dimension], fixed: dict[str, Any]) -> None:
    """Every dimension must be a setting of the method: build it at the ranges' ends (a
    one-sentence error with a did-you-mean otherwise, before anything runs)."""
    from obliviate.api import _merge

    for pick in (0, -1):
        values = {}
        for k, d in dims.items():
            values[k] = d.choices[pick] if d.kind == "choice" else (d.low, d.high)[pick]
        preset.build(_merge(fixed, nest(values)))


def _sampler(
    optuna: Any, name: str, dims: Mapping[str, Dimension], points: int, seed: int, n: int
) -> Any:
    if name == "grid":
        return optuna.samplers.GridSampler({k: d.grid(points) for k, d in dims.items()}, seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # TPE (Bergstra+ 2011): random start-up trials, a third of a small budget, at most 10
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, min(10, n // 3)))


def _references(
    model: str,
    retain_model: str | None,
    out: Path,
    req: Mapping[str, Any],
    settings: dict[str, Any] | None,
    progress: bool,
    log: Callable[[str], None] | None,
) -> dict[str, dict[str, Any] | None]:
    """The target's (and retain model's) metrics, evaluated once into ``OUT/target`` and
    ``OUT/retain`` and reused afterwards (the evaluation key decides)."""
    from obliviate import api

    eval_kw = {k: v for k, v in req.items() if k != "stride"}
    refs: dict[str, dict[str, Any] | None] = {"retain": None}
    for role, path in (("target", model), ("retain", retain_model)):
        if path is None:
            continue
        _say(log, f"[sweep] evaluating the {role} model")
        res = api.evaluate(
            path,
            retain_model=retain_model,
            out=out / role,
            meta={"role": role, "method": None},
            settings=settings,
            progress=progress,
            stride=req.get("stride"),
            **eval_kw,
        )
        refs[role] = flat_metrics(res.metrics, res.samples)
    return refs


def flat_metrics(metrics: Mapping[str, Any], samples: Sequence[Mapping[str, Any]]) -> dict:
    """``{name: value}`` of ``metrics.json``, plus ``holdout_prob``: the mean probability of
    the holdout answers (the level a never-seen item has), when the samples have them."""
    flat = {k: (v.get("value") if isinstance(v, Mapping) else v) for k, v in metrics.items()}
    probs = [s["prob"] for s in samples if s.get("split") == "holdout" and "prob" in s]
    if probs and "holdout_prob" not in flat:
        flat["holdout_prob"] = sum(probs) / len(probs)
    return flat


def _storage(optuna: Any, path: Path) -> Any:
    """The SQLite storage with heartbeats; a stale trial is failed and retried
    (:func:`retry_trial`). Optuna >= 4.9 names the callback ``heartbeat_stale_trial_callback``."""
    import inspect
    import warnings

    names = inspect.signature(optuna.storages.RDBStorage.__init__).parameters
    key = (
        "heartbeat_stale_trial_callback"
        if "heartbeat_stale_trial_callback" in names
        else "failed_trial_callback"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            f"sqlite:///{path.resolve()}",
            engine_kwargs={"connect_args": {"timeout": 120}},
            heartbeat_interval=HEARTBEAT_S,
            grace_period=4 * HEARTBEAT_S,
            **{key: retry_trial},
        )


MAX_RETRY = 2


def retry_trial(study: Any, trial: Any) -> None:
    """Queue a failed trial again with its parameters (at most :data:`MAX_RETRY` times per
    original trial); ``failed_trial`` names the first one."""
    import optuna

    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > MAX_RETRY:
        return
    attrs = {**trial.system_attrs, "retry_history": history}
    attrs.setdefault("failed_trial", trial.number)
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs=trial.user_attrs,
            system_attrs=attrs,
        )
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fail_dead_trials(optuna: Any, study: Any, storage: Any) -> None:
    """Fail the RUNNING trials of processes of this machine that no longer exist, and retry
    them (same parameters); other machines' are failed by Optuna's heartbeat check."""
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") != host or not isinstance(pid, int):
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        trial_id = t._trial_id  # Optuna's storage key of the trial
        if storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL):
            retry_trial(study, storage.get_trial(trial_id))


def _trial_record(t: Any) -> dict[str, Any]:
    a = t.user_attrs
    return {
        "number": t.number,
        "state": t.state.name,
        "params": dict(t.params),
        "values": list(t.values) if t.values is not None else None,
        "scores": a.get("scores"),
        "feasible": a.get("feasible"),
        "violations": a.get("violations", []),
        "metrics": a.get("metrics", {}),
        "run": a.get("run"),
        "reused": a.get("reused"),
        "stopped": a.get("stopped"),
        "error": a.get("error"),
        "retry_of": t.system_attrs.get("failed_trial"),
        **({"seeds": a["seeds"], "seed_metrics": a.get("seed_metrics")} if "seeds" in a else {}),
    }
