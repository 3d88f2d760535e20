"""One trial of `obliviate sweep`: an unlearning run and its evaluation in ``OUT/trials/NNNN``,
scored by the study's objectives (docs/sweep.md)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from obliviate.sweep.space import Dimension, nest, suggest

# metrics kept in the study (user attributes) for the summary and later reports
KEPT = (
    "forget_quality",
    "model_utility",
    "forget_prob",
    "holdout_prob",
    "retain_prob",
    "forget_rouge",
    "retain_rouge",
    "forget_truth_ratio",
    "retain_truth_ratio",
    "mia_loss_auc",
    "mia_zlib_auc",
    "mia_min_k_auc",
    "mia_min_k_plus_plus_auc",
    "privleak",
)


class TrialRunner:
    """The objective function Optuna calls: ``runner(trial) -> value(s)``."""

    def __init__(
        self,
        method: str,
        model: str,
        model_dir: str,
        retain_model: str | None,
        out: Path,
        dims: Mapping[str, Dimension],
        fixed: dict[str, Any],
        objectives: Sequence[tuple[Any, dict[str, Any]]],
        refs: Mapping[str, Any],
        request: Mapping[str, Any],
        eval_settings: dict[str, Any] | None,
        progress: bool,
        log: Callable[[str], None] | None,
        seeds: int = 1,
    ) -> None:
        self.method, self.model, self.model_dir = method, model, model_dir
        self.retain_model, self.out, self.dims, self.fixed = retain_model, out, dims, fixed
        self.objectives, self.refs, self.request = objectives, refs, dict(request)
        self.eval_settings, self.progress, self.log = eval_settings, progress, log
        self.seeds = seeds

    def __call__(self, trial: Any) -> Any:
        import optuna

        from obliviate import checkpoints
        from obliviate.api import _merge
        from obliviate.collapse import TrainingDiverged

        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("host", socket.gethostname())
        params = suggest(trial, self.dims)
        overrides = _merge(self.fixed, nest(params))
        run = self.out / "trials" / f"{trial.number:04d}"
        trial.set_user_attr("run", str(run.relative_to(self.out)))
        if self.log:
            shown = ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
            )
            self.log(f"[trial {trial.number}] {shown}")
        try:
            metrics, info = self.run(run, overrides, trial.number, checkpoints.kill_point)
        except TrainingDiverged as exc:
            trial.set_user_attr("error", str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        scores = [obj.score(metrics, self.refs, p) for obj, p in self.objectives]
        trial.set_user_attr("scores", [s.value for s in scores])
        trial.set_user_attr("feasible", all(s.feasible for s in scores))
        trial.set_user_attr("violations", sorted({v for s in scores for v in s.violations}))
        trial.set_user_attr("metrics", _kept(metrics))
        for k, v in info.items():
            trial.set_user_attr(k, v)
        values = [obj.penalised(s) for (obj, _), s in zip(self.objectives, scores)]
        return values[0] if len(values) == 1 else values

    def run(
        self, run: Path, overrides: dict[str, Any], number: int, kill: Callable[[str, int], None]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Unlearn and evaluate into ``run`` (or reuse a finished trial with the same
        configuration); the flat metrics and what the trial record adds."""
        from obliviate import api
        from obliviate.io import read_json, read_jsonl
        from obliviate.recipes import resume
        from obliviate.recipes.tofu import _config_for
        from obliviate.sweep.study import flat_metrics

        config: dict[str, Any] = {
            "method_config": _config_for(self.method, overrides),
            "target": str(self.model),
            "request": {k: str(v) if isinstance(v, Path) else v for k, v in self.request.items()},
            "retain_model": self.retain_model,
            "eval": self.eval_settings or {},
        }
        if self.seeds > 1:
            config["seeds"] = self.seeds
        done = _finished_with(self.out / "trials", resume.fingerprint(config))
        if done is not None:
            record = read_json(done / resume.STAGE_FILE)
            info = {"reused": str(done.relative_to(self.out)), "stopped": record.get("stopped")}
            if self.seeds > 1:
                return _seed_means(done, info)
            doc = read_json(done / "metrics.json")
            samples = read_jsonl(done / "samples.jsonl")
            return flat_metrics(doc["metrics"], samples), info
        if self.seeds > 1:
            from obliviate.recipes.seeds import unlearn_seeds

            unlearn_seeds(
                self.model, self.method, run, self.seeds, retain_model=self.retain_model,
                overrides=overrides, eval_settings=self.eval_settings, progress=self.progress,
                log=None, **self.request,
            )  # fmt: skip
            resume.finish(run, config)
            return _seed_means(run, {})
        res = api.unlearn(
            self.model, method=self.method, out=run, overrides=overrides,
            progress=self.progress, **self.request,
        )  # fmt: skip
        kill("trial", number)  # the test hook of docs/run-format.md: mid-trial
        eval_kw = {k: v for k, v in self.request.items() if k != "stride"}
        result = api.evaluate(
            res.model,
            tokenizer=res.tokenizer,
            retain_model=self.retain_model,
            out=run,
            reuse=False,
            settings=self.eval_settings,
            progress=self.progress,
            stride=self.request.get("stride"),
            meta={
                "role": "unlearned",
                "method": self.method,
                "method_config": config["method_config"],
                "trainable_params": res.trainable_params,
                "timing": {"train_s": round(res.wall_s, 2)},
                "stopped": res.stopped,
                "model": {"path": str(res.path)},
            },
            **eval_kw,
        )
        resume.finish(run, config, stopped=res.stopped)
        return flat_metrics(result.metrics, result.samples), {"stopped": res.stopped}


def _kept(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in KEPT if metrics.get(k) is not None}


def _seed_means(run: Path, info: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The flat metrics of a trial run with several seeds (``run/seed-<s>/``): each one's mean
    over the seeds (:mod:`obliviate.seed_stats`); ``info`` gains the seeds and their values."""
    from obliviate.io import read_json, read_jsonl
    from obliviate.seed_stats import summarise_metrics
    from obliviate.sweep.study import flat_metrics

    agg = read_json(run / "metrics.json")
    per_seed = [
        flat_metrics(
            read_json(run / d / "metrics.json")["metrics"], read_jsonl(run / d / "samples.jsonl")
        )
        for d in agg["runs"]
    ]
    means = {k: st.mean for k, st in summarise_metrics(per_seed).items()}
    return means, {**info, "seeds": agg["seeds"], "seed_metrics": [_kept(m) for m in per_seed]}


def _finished_with(trials_dir: Path, fp: str) -> Path | None:
    """A finished trial folder whose ``stage.json`` has this configuration fingerprint."""
    from obliviate.io import read_json
    from obliviate.recipes.resume import STAGE_FILE

    if not trials_dir.is_dir():
        return None
    for d in sorted(trials_dir.iterdir()):
        stage = d / STAGE_FILE
        # a trial with several seeds keeps its samples in its seed folders
        results = "metrics.json" if any(d.glob("seed-*")) else "samples.jsonl"
        complete = all((d / f).is_file() for f in (STAGE_FILE, "metrics.json", results))
        if complete and read_json(stage).get("fingerprint") == fp:
            return d
    return None
