"""One method, several seeds: ``obliviate unlearn --seeds N`` (:func:`unlearn_seeds`).

Seeds ``seed, seed + 1, ...`` (``seed`` = the method's ``train.seed``) each give a normal run
folder ``OUT/seed-<s>/`` (unlearned model, config, evaluation), a stage of
:mod:`obliviate.recipes.resume`: a rerun reuses every finished seed with the same
configuration. ``OUT/metrics.json`` is then the aggregate: each metric's ``value`` is the mean
over seeds, with ``sd``, ``ci_low``/``ci_high``, ``n`` and ``per_seed`` beside it
(:mod:`obliviate.seed_stats`), so reports read it like any run. docs/run-format.md ("Several
seeds") describes the layout.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from obliviate.io import read_json, write_json
from obliviate.seed_stats import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    DEFAULT_RNG_SEED,
    format_mean_sd,
    summarise_metrics,
)

SEED_DIR = "seed-{}"


def seed_list(method_config: dict[str, Any], seeds: int) -> list[int]:
    """``seeds`` consecutive seeds from the configuration's ``train.seed`` (0 by default)."""
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    first = int((method_config.get("train") or {}).get("seed", 0))
    return [first + i for i in range(seeds)]


def with_seed(config: dict[str, Any], seed: int) -> dict[str, Any]:
    """A copy of a method configuration (or overrides) with ``train.seed`` set."""
    out = copy.deepcopy(config)
    out["train"] = {**(out.get("train") or {}), "seed": seed}
    return out


def is_seeds_run(run_dir: str | Path) -> bool:
    """``run_dir`` holds a multi-seed aggregate (its ``metrics.json`` lists ``seeds``)."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        return False
    try:
        return "seeds" in read_json(path)
    except (OSError, ValueError):
        return False


def _values(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: (m or {}).get("value") for k, m in (doc.get("metrics") or {}).items()}


def aggregate_doc(
    per_seed: Sequence[dict[str, Any]],
    seeds: Sequence[int],
    meta: dict[str, Any],
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
) -> dict[str, Any]:
    """The aggregate ``metrics.json`` of per-seed ``metrics.json`` documents (seed order)."""
    from obliviate.runs import SCHEMA, library_versions, now

    stats = summarise_metrics([_values(d) for d in per_seed], resamples, level)
    metrics: dict[str, Any] = {}
    for name, st in stats.items():
        first = next(d["metrics"][name] for d in per_seed if name in (d.get("metrics") or {}))
        entry = {k: v for k, v in first.items() if k not in ("value",)}
        spread = {k: v for k, v in st.to_dict().items() if k != "mean"}  # the mean is "value"
        metrics[name] = {"value": st.mean, **entry, **spread}
    unavailable: dict[str, str] = {}
    for d in per_seed:
        for k, why in (d.get("unavailable") or {}).items():
            if k not in metrics:
                unavailable.setdefault(k, why)
    times = [(d.get("timing") or {}).get("train_s") for d in per_seed]
    train = [float(t) for t in times if isinstance(t, (int, float))]
    first_doc = per_seed[0]
    return {
        "schema": SCHEMA,
        **{k: first_doc.get(k) for k in ("benchmark", "split", "data") if k in first_doc},
        **meta,
        "seeds": list(seeds),
        "runs": [SEED_DIR.format(s) for s in seeds],
        "aggregate": {
            "value": "mean over seeds",
            "sd": "sample standard deviation (n - 1); null with one seed",
            "ci": f"percentile bootstrap of the mean, {resamples} resamples, "
            f"rng seed {DEFAULT_RNG_SEED}",
            "ci_level": level,
        },
        "metrics": metrics,
        "unavailable": unavailable,
        "timing": {"train_s": round(sum(train) / len(train), 3)} if train else {},
        "trainable_params": first_doc.get("trainable_params"),
        "versions": library_versions(),
        "created": now(),
    }


def seeds_markdown(doc: dict[str, Any]) -> str:
    """The aggregate as a table: metric, mean ± sd, the interval, n."""
    from obliviate.reporting.render import markdown_table

    level = round(100 * float((doc.get("aggregate") or {}).get("ci_level", DEFAULT_LEVEL)))
    rows = []
    for name, m in doc["metrics"].items():
        ci = "—" if m.get("ci_low") is None else f"[{m['ci_low']:.4g}, {m['ci_high']:.4g}]"
        rows.append([name, format_mean_sd(m), ci, str(m.get("n", 0))])
    header = ["metric", "mean ± sd", f"{level}% CI", "n"]
    seeds = ", ".join(str(s) for s in doc.get("seeds", []))
    return f"seeds {seeds}\n\n" + "\n".join(markdown_table(header, rows)) + "\n"


def unlearn_seeds(
    model: str,
    method: str,
    out: str | Path,
    seeds: int = 2,
    retain_model: str | None = None,
    overrides: dict[str, Any] | None = None,
    eval_settings: dict[str, Any] | None = None,
    progress: bool = True,
    trust_remote_code: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = print,
    **data: Any,
) -> dict[str, Any]:
    """Unlearn and evaluate ``method`` once per seed into ``out/seed-<s>/`` and write the
    aggregate ``out/metrics.json``; returns it. ``data``: the request and evaluation arguments
    shared by :func:`obliviate.api.unlearn` and :func:`obliviate.api.evaluate`;
    ``eval_settings``: the evaluation's ``settings`` (e.g. ``{"generate": False}``).

    ``out`` holding a single run is refused unless ``overwrite`` (which removes it first); a
    finished seed with the same configuration is reused, one with another configuration is an
    error unless ``overwrite`` (:mod:`obliviate.recipes.resume`).
    """
    from obliviate import api
    from obliviate.models.loading import model_fingerprint
    from obliviate.recipes import resume
    from obliviate.recipes.tofu import _config_for
    from obliviate.run_output import check_not_input, prepare_run_dir
    from obliviate.runs import resolve_model_dir

    out = Path(out)
    overrides = dict(overrides or {})
    seed_values = seed_list(_config_for(method, overrides), seeds)
    path = resolve_model_dir(model)
    check_not_input(out, (path,))
    if not is_seeds_run(out) or overwrite:
        prepare_run_dir(out, (path,), overwrite)  # a single run here: refused or cleared
    fp = model_fingerprint(path)
    request = {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}
    docs = []
    for s in seed_values:
        run = out / SEED_DIR.format(s)
        seed_over = with_seed(overrides, s)
        config = {
            "method": method,
            "method_config": _config_for(method, seed_over),
            "model": str(model),
            "model_fingerprint": fp,
            "retain_model": None if retain_model is None else str(retain_model),
            "request": request,
            "eval": eval_settings or {},
        }
        if resume.stage(run, config, ("metrics.json", "model"), overwrite) is not None:
            if log:
                log(f"[seed {s}] reusing finished run {run}")
            docs.append(read_json(run / "metrics.json"))
            continue
        if log:
            log(f"[seed {s}] unlearning with {method}")
        res = api.unlearn(
            model,
            method=method,
            out=run,
            overrides=seed_over,
            progress=progress,
            trust_remote_code=trust_remote_code,
            overwrite=True,  # resume.stage above decided to (re)run this seed
            **data,
        )
        if res.stopped and log:
            log(f"[seed {s}] stopped early: {res.stopped}")
        if log:
            log(f"[seed {s}] evaluating")
        api.evaluate(
            res.model,
            tokenizer=res.tokenizer,
            retain_model=retain_model,
            out=run,
            settings=eval_settings,
            reuse=False,
            meta={
                "role": "unlearned",
                "method": method,
                "seed": s,
                "timing": {"train_s": round(res.wall_s, 3)},
                "trainable_params": res.trainable_params,
                "model": {"path": str(res.path)},
            },
            progress=progress,
            **data,
        )
        resume.finish(run, config)
        docs.append(read_json(run / "metrics.json"))
    meta = {
        "name": out.name,
        "role": "unlearned",
        "method": method,
        "model": {"path": str(model), "fingerprint": fp},
    }
    doc = aggregate_doc(docs, seed_values, meta)
    write_json(out / "metrics.json", doc)
    return doc
