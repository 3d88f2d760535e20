"""The QA benchmark recipe (TOFU, Maini+ 2024, arXiv 2401.06121): target and retain models,
many methods, one comparison table.

``obliviate demo`` and ``obliviate benchmark`` are thin layers over :func:`run_benchmark`.
Each stage writes a run folder (docs/run-format.md) and is reused on a re-run when it finished
with the same configuration (:mod:`obliviate.recipes.resume`), so an interrupted benchmark
resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from obliviate.io import atomic_write_text, read_json, write_json
from obliviate.reporting.render import COLUMNS, comparison_markdown


def _say(log: Callable[[str], None] | None, msg: str) -> None:
    if log:
        log(msg)


def run_benchmark(
    out: str | Path,
    methods: Sequence[str] = ("graddiff", "npo"),
    data: str | None = None,
    split: str | None = None,
    target: str | None = None,
    retain: str | None = None,
    size: str = "s",
    builtin: dict[str, Any] | None = None,
    finetune_train: dict[str, Any] | None = None,
    method_overrides: dict[str, dict[str, Any]] | None = None,
    eval_settings: dict[str, Any] | None = None,
    template: str = "qa",
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    benchmark: str | None = None,
    forget: Any = None,
    retain_data: Any = None,
    holdout: Any = None,
    revision: str | None = None,
    overwrite: bool = False,
    seeds: int = 1,
    tuned: int = 0,
    tune_objective: str = "oracle",
    tune_compare: str | None = "mia",
) -> dict[str, Any]:
    """Run the whole comparison and return the comparison document (also written to
    ``out/comparison.json`` and ``out/comparison.md``).

    Without ``target``/``retain`` the tiny default is trained from scratch: a tokenizer on the
    benchmark text, the target on ``full`` and the retain model on ``retainNN`` (the split's
    complement), both from the same initialisation and with the training variants of
    :data:`~obliviate.data.training_data.TINY_TRAINING_VARIANTS` unless ``builtin`` sets them (TOFU
    only). ``benchmark`` names any other registered entry (``obliviate ls benchmarks``)
    evaluated through :mod:`obliviate.api`, with
    the user's ``forget`` / ``retain_data`` / ``holdout`` files for ``qa`` and ``documents``;
    those need ``target`` and ``retain`` models. A finished stage with another configuration
    in ``out`` is an error unless ``overwrite``. ``seeds`` > 1 runs every method with that many
    seeds (:mod:`obliviate.recipes.seeds`, ``out/<method>/seed-<s>/``; target and retain are
    trained once) and ranks the methods by their mean (:func:`rank_by_mean`). ``tuned`` > 0 adds
    each method at the setting a sweep of that many trials selects by ``tune_objective``, and
    lists the trial ``tune_compare`` would select among the same trials
    (:mod:`obliviate.recipes.tuned`).
    """
    from obliviate import api
    from obliviate.data.tofu import normalize_split
    from obliviate.recipes import resume
    from obliviate.recipes.seeds import is_seeds_run

    out = Path(out)
    is_tofu = benchmark in (None, "tofu")
    columns = columns_for(benchmark)
    if is_tofu:
        data = data or "builtin"
        if data == "builtin" and (target is None or retain is None):
            from obliviate.data.training_data import TINY_TRAINING_VARIANTS

            builtin = {**TINY_TRAINING_VARIANTS, **(builtin or {})}
        resume.claim_comparison(out, data, overwrite)
        split = normalize_split(split or "forget10")
        retain_split = f"retain{100 - int(split[-2:])}"
    elif target is None or retain is None:
        raise ValueError(
            f"benchmark {benchmark!r} has no training set to train the tiny models "
            "on; give the target and retain models (--target, --retain)"
        )
    else:
        from obliviate.benchmarks import get_benchmark

        split = split or get_benchmark(cast(str, benchmark)).split
    times: dict[str, float] = {}
    ft = finetune_train or {}

    def finetune_stage(name: str, cfg_split: str, tokenizer: str | None) -> str:
        run = out / name
        t0 = time.perf_counter()
        config = {
            "command": "finetune",
            "data": data,
            "split": cfg_split,
            "train": ft,
            "builtin": builtin or {},
            "model": f"tiny-llama-{size}",
            "template": template,
        }
        done = resume.stage(run, config, ("model/config.json",), overwrite)
        if done is not None:
            _say(log, f"[{name}] reusing the trained model in {run / 'model'}")
            times[name] = done.get("train_s", 0.0)
            return str(run / "model")
        _say(log, f"[{name}] fine-tuning a tiny Llama ({size}) on {data}:{cfg_split}")
        res = api.finetune(
            data=cast(str, data),  # only the TOFU path fine-tunes, with data set
            split=cfg_split,
            out=run,
            size=size,
            tokenizer=tokenizer,
            train=ft,
            builtin=builtin,
            progress=progress,
            template=template,
            overwrite=True,  # resume.stage above decided to (re)run this stage
        )
        times[name] = round(time.perf_counter() - t0, 2)
        write_json(run / "timing.json", {"train_s": times[name]})
        resume.finish(run, config, train_s=times[name])
        return str(res.path)

    if target is None:
        target = finetune_stage("target", "full", None)
    else:
        times["target"] = 0.0
    if retain is None:
        retain = finetune_stage("retain", retain_split, target)
    else:
        times["retain"] = 0.0

    common: dict[str, Any] = {
        "data": data,
        "split": split,
        "template": template,
        "settings": eval_settings,
        "builtin": builtin,
        "progress": progress,
    }
    if not is_tofu:
        common.update(
            benchmark=benchmark,
            forget=forget,
            retain=retain_data,
            holdout=holdout,
            revision=revision,
        )
    request_kw: dict[str, Any] = {
        k: common[k]
        for k in (
            "data",
            "split",
            "template",
            "builtin",
            "benchmark",
            "forget",
            "retain",
            "holdout",
            "revision",
        )
        if k in common
    }
    _say(log, "[retain] evaluating the retain model (the gold standard)")
    results: dict[str, Any] = {}
    roles: dict[str, str] = {}
    params: dict[str, int] = {}
    results["retain"] = api.evaluate(
        retain,
        retain_model=retain,
        out=out / "retain",
        overwrite=overwrite,
        meta={"role": "retain", "method": None, "timing": {"train_s": times["retain"]}},
        **common,
    )
    roles["retain"] = "retain"
    _say(log, "[target] evaluating the target model")
    results["target"] = api.evaluate(
        target,
        retain_model=retain,
        out=out / "target",
        overwrite=overwrite,
        meta={"role": "target", "method": None, "timing": {"train_s": times["target"]}},
        **common,
    )
    roles["target"] = "target"
    for method in methods:
        run = out / method
        overrides = (method_overrides or {}).get(method, {})
        if seeds > 1:
            from obliviate.recipes.seeds import unlearn_seeds

            _say(log, f"[{method}] unlearning {split} with {seeds} seeds")
            agg = unlearn_seeds(
                target,
                method,
                run,
                seeds,
                retain_model=retain,
                overrides=overrides,
                eval_settings=eval_settings,
                progress=progress,
                overwrite=overwrite,
                log=log,
                **request_kw,
            )
            results[method], roles[method] = agg, "unlearned"
            times[method] = agg.get("timing", {}).get("train_s", 0.0)
            params[method] = agg.get("trainable_params") or 0
            continue
        config = {
            "method_config": _config_for(method, overrides),
            "target": str(target),
            "request": {k: str(v) if isinstance(v, Path) else v for k, v in request_kw.items()},
            "eval": eval_settings or {},
        }
        if not overwrite and is_seeds_run(run):
            raise ValueError(
                f"{run} holds a run over several seeds; pass the same --seeds, or --overwrite "
                "to replace it with a single run"
            )
        if resume.stage(run, config, ("metrics.json", "model"), overwrite) is not None:
            done = read_json(run / "metrics.json")
            _say(log, f"[{method}] reusing finished run {run}")
            results[method] = done
            roles[method] = "unlearned"
            times[method] = done.get("timing", {}).get("train_s", 0.0)
            params[method] = done.get("trainable_params", 0)
            continue
        _say(log, f"[{method}] unlearning {split}")
        t0 = time.perf_counter()
        res = api.unlearn(
            target,
            method=method,
            out=run,
            overrides=overrides,
            progress=progress,
            overwrite=True,  # resume.stage above decided to (re)run this stage
            **request_kw,
        )
        times[method] = round(time.perf_counter() - t0, 2)
        params[method] = res.trainable_params
        if res.stopped:
            _say(log, f"[{method}] stopped early: {res.stopped}")
        _say(log, f"[{method}] evaluating")
        results[method] = api.evaluate(
            res.model,
            tokenizer=res.tokenizer,
            retain_model=retain,
            out=run,
            reuse=False,
            meta={
                "role": "unlearned",
                "method": method,
                "timing": {"train_s": times[method]},
                "trainable_params": res.trainable_params,
                "method_config": _config_for(method, overrides),
                "model": {"path": str(res.path)},
            },
            **common,
        )
        roles[method] = "unlearned"
        resume.finish(run, config)
    picks: dict[str, dict[str, Any]] = {}
    if tuned:
        from obliviate.recipes.tuned import tune_methods

        picks = tune_methods(
            out, methods, str(target), str(retain), tuned, tune_objective, request_kw,
            method_overrides or {}, eval_settings, seeds, progress, log, tune_compare,
        )  # fmt: skip
        for pick in picks.values():
            results[pick["run"]], roles[pick["run"]] = pick["result"], "unlearned"
            times[pick["run"]] = pick["result"].get("timing", {}).get("train_s", 0.0)
            params[pick["run"]] = pick["result"].get("trainable_params") or 0
    label = cast(str, data) if is_tofu else f"{benchmark}" + (f" ({data})" if data else "")
    doc = comparison_doc(results, roles, times, params, label, split, columns)
    if tuned:
        methods_doc = {m: {k: v for k, v in p.items() if k != "result"} for m, p in picks.items()}
        doc["tuned"] = {"trials": tuned, "objective": tune_objective, "methods": methods_doc}
        if any("compare" in p for p in picks.values()):
            doc["tuned"]["compare"] = tune_compare
    if seeds > 1:
        doc = rank_by_mean(doc, columns)
    write_json(out / "comparison.json", doc)
    atomic_write_text(out / "comparison.md", comparison_markdown(doc))
    return doc


def _config_for(method: str, overrides: dict[str, Any]) -> dict[str, Any]:
    from obliviate.api import _merge
    from obliviate.registry import METHODS

    return _merge(METHODS.get(method).defaults(), overrides)


def _seed_stats(result: Any) -> dict[str, Any] | None:
    """Per metric, the statistics over seeds of an aggregate ``metrics.json`` (else None)."""
    if not isinstance(result, dict) or "seeds" not in result:
        return None
    keep = ("sd", "ci_low", "ci_high", "n")
    return {k: {s: m.get(s) for s in keep} for k, m in (result.get("metrics") or {}).items()}


def rank_by_mean(doc: dict[str, Any], columns: list[tuple[str, str, str]]) -> dict[str, Any]:
    """Order the unlearned rows by the mean of the first column (best first, rows without a
    value last; target and retain stay first) and mark in ``within_noise`` each row whose
    interval overlaps the best row's (:func:`obliviate.seed_stats.within_noise`)."""
    from obliviate.seed_stats import rank_key, stats_from_dict, within_noise

    key, _, direction = columns[0]
    refs = [r for r in doc["rows"] if r["role"] != "unlearned"]
    ranked = sorted(
        (r for r in doc["rows"] if r["role"] == "unlearned"),
        key=lambda r: rank_key(r.get(key), direction),
    )
    if ranked and ranked[0].get(key) is not None:
        best = stats_from_dict((ranked[0].get("stats") or {}).get(key), ranked[0].get(key))
        for r in ranked:
            mine = stats_from_dict((r.get("stats") or {}).get(key), r.get(key))
            r["within_noise"] = True if r is ranked[0] else within_noise(mine, best)
        ranked[0]["best"] = True
    rows = refs + ranked
    return {**doc, "rows": rows, "runs": [r["name"] for r in rows], "rank_by": key}


def _metric(result: Any, name: str) -> float | None:
    metrics = result.metrics if hasattr(result, "metrics") else result.get("metrics", {})
    m = metrics.get(name)
    return None if m is None else m["value"]


def columns_for(benchmark: str | None) -> list[tuple[str, str, str]]:
    """The comparison columns (key, label, direction): TOFU's, or a benchmark entry's metrics."""
    if benchmark in (None, "tofu"):
        return list(COLUMNS)
    from obliviate.benchmarks import get_benchmark
    from obliviate.metrics.catalogue import direction_of

    return [(k, k, direction_of(k)) for k in get_benchmark(benchmark).metrics]


def comparison_doc(
    results: dict[str, Any],
    roles: dict[str, str],
    times: dict[str, float],
    params: dict[str, int],
    data: str,
    split: str,
    columns: list[tuple[str, str, str]] | None = None,
) -> dict[str, Any]:
    columns = columns or list(COLUMNS)
    rows = []
    for name, res in results.items():
        row: dict[str, Any] = {"name": name, "role": roles[name]}
        for key, _, _ in columns:
            row[key] = _metric(res, key)
        row["train_s"] = times.get(name)
        row["trainable_params"] = params.get(name)
        stats = _seed_stats(res)
        if stats is not None:
            row["seeds"] = res["seeds"]
            row["stats"] = {k: stats[k] for k, _, _ in columns if k in stats}
        why = (
            res.get("unavailable") if isinstance(res, dict) else getattr(res, "unavailable", {})
        ) or {}
        shown = {k: why[k] for k, _, _ in columns if k in why and row[k] is None}
        if shown:
            row["unavailable"] = shown
        rows.append(row)
    doc = {
        "schema": 1,
        "benchmark": data,
        "split": split,
        "runs": list(results),
        "columns": [c[0] for c in columns] + ["train_s", "trainable_params"],
        "rows": rows,
    }
    if columns != COLUMNS:
        doc["labels"] = {k: [label, d] for k, label, d in columns}
    return doc
