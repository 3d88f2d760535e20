"""Continual unlearning: a sequence of deletion requests (forget A, then B, then C), each a
normal run folder chained on the previous step's model, with the forget metrics of every
request so far and the model's utility after each step in one table (docs/continual.md).

MUSE (Shi+ 2024, arXiv 2407.06460) calls this criterion *sustainability*: the model's forget and
utility metrics as successive unlearning requests arrive. Each step here starts from the
previous step's weights, as successive deletion requests would reach a deployed model. Any
registered method and any benchmark whose requests are named by a split (``forget10:1/3`` for
the disjoint author groups of TOFU, :mod:`obliviate.data.parts`) or, for ``qa`` / ``documents``,
by forget files.

Layout under ``out``: ``00-start/requests/<request>/`` (the input model evaluated on every
request); ``NN-<request>/`` for step NN (``model/``, ``config.yaml``, ``stage.json`` and
``requests/<request>/``, its model evaluated on requests 1..NN); ``continual.json`` and
``continual.md`` (the table). A step is finished once its ``stage.json`` is written (:mod:`obliviate.recipes.resume`): a re-run
reuses finished steps and their evaluations and redoes an interrupted one, and a finished step
run with another configuration is an error unless ``overwrite``. Test hook:
``OBLIVIATE_KILL_AT=continual:K`` kills the process right after step K has finished.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from obliviate.io import atomic_write_text, write_json

DOC_FILES = ("continual.json", "continual.md")


def _say(log: Callable[[str], None] | None, msg: str) -> None:
    if log:
        log(msg)


def step_folder(k: int, request: str) -> str:
    """``"02-forget10-2of3"`` for step 2 of request ``forget10:2/3`` (file-name safe)."""
    text = re.sub(r":(\d+)/(\d+)$", r"-\1of\2", request)  # a part of a split
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(text).name).strip("-")
    return f"{k:02d}-{name or 'request'}"


def request_kwargs(benchmark: str | None, request: str) -> dict[str, Any]:
    """What names one request: a forget file for ``qa`` / ``documents``, else a split."""
    if benchmark in ("qa", "documents"):
        return {"forget": request}
    return {"split": request}


def run_continual(
    model: str,
    method: str,
    sequence: Sequence[str],
    out: str | Path,
    retain_model: str | None = None,
    overrides: dict[str, Any] | None = None,
    benchmark: str | None = None,
    data: str | None = None,
    retain: Any = None,
    holdout: Any = None,
    builtin: dict[str, Any] | None = None,
    template: str = "qa",
    eval_settings: dict[str, Any] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    overwrite: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Unlearn the requests of ``sequence`` one after the other with ``method``, starting from
    ``model``; evaluate after each step; return the table document (also written to
    ``out/continual.json`` and ``out/continual.md``).

    ``retain_model``: the gold-standard model (never trained on any request) for forget
    quality and privleak. ``options``: more :func:`obliviate.api.unlearn` data options
    (``revision``, ``system_prompt``, ``field_map``, ``stride``).
    """
    from obliviate import api
    from obliviate.checkpoints import kill_point
    from obliviate.models.loading import model_fingerprint
    from obliviate.recipes import resume
    from obliviate.recipes.tofu import _config_for, columns_for
    from obliviate.runs import resolve_model_dir

    names = [str(s).strip() for s in sequence]
    if not names or any(not n for n in names):
        raise ValueError("the sequence needs at least one request, e.g. forget10:1/2,forget10:2/2")
    if len(set(names)) != len(names):
        raise ValueError(f"the sequence names a request twice: {', '.join(names)}")
    out = Path(out)
    common: dict[str, Any] = {
        "benchmark": benchmark,
        "data": data,
        "retain": retain,
        "holdout": holdout,
        "builtin": builtin,
        "template": template,
        **options,
    }
    # every request is loaded (and a bad one reported) before any model is trained
    requests = {n: api.load_request(**_load_kw(common, benchmark, n)) for n in names}
    _warn_overlaps(requests, log)
    columns = columns_for(benchmark)
    rows: list[dict[str, Any]] = []

    def evaluate(model_dir: str, step: int, folder: Path, upto: Sequence[str]) -> None:
        for j, name in enumerate(upto, start=1):
            res = api.evaluate(
                model_dir,
                retain_model=retain_model,
                out=folder / "requests" / step_folder(j, name),
                settings=eval_settings,
                progress=progress,
                **common,
                **request_kwargs(benchmark, name),
            )
            row: dict[str, Any] = {"step": step, "request": name, "request_index": j}
            metrics = res.metrics
            row.update({key: (metrics.get(key) or {}).get("value") for key, _, _ in columns})
            rows.append(row)

    start = resolve_model_dir(model)
    _say(log, f"[continual] step 0: the input model on {len(names)} request(s)")
    evaluate(start, 0, out / "00-start", names)
    previous, steps = start, []
    for k, name in enumerate(names, start=1):
        run = out / step_folder(k, name)
        config = {
            "method_config": _config_for(method, overrides or {}),
            "method": method,
            "input_model": str(previous),
            "input_fingerprint": model_fingerprint(previous),
            "request": name,
            "data": {k2: str(v) if isinstance(v, Path) else v for k2, v in common.items()},
            "eval": eval_settings or {},
        }
        reused = resume.stage(run, config, ("model",), overwrite) is not None
        if reused:
            _say(log, f"[continual] step {k} ({name}): reusing the finished step in {run}")
        else:
            _say(log, f"[continual] step {k}: unlearning {name} with {method}")
            api.unlearn(
                previous,
                method=method,
                out=run,
                overrides=overrides,
                progress=progress,
                overwrite=True,  # resume.stage above decided to (re)run this step
                **common,
                **request_kwargs(benchmark, name),
            )
        model_dir = str(run / "model")
        evaluate(model_dir, k, run, names[:k])
        if not reused:
            resume.finish(run, config, output_fingerprint=model_fingerprint(model_dir))
        steps.append({"step": k, "request": name, "run": run.name, "model": model_dir})
        kill_point("continual", k)
        previous = model_dir
    doc = {
        "schema": 1,
        "method": method,
        "benchmark": benchmark or "tofu",
        "sequence": names,
        "steps": steps,
        "columns": [c[0] for c in columns],
        "labels": {key: [label, d] for key, label, d in columns},
        "rows": rows,
    }
    write_json(out / "continual.json", doc)
    atomic_write_text(out / "continual.md", continual_markdown(doc))
    return doc


def _load_kw(common: dict[str, Any], benchmark: str | None, name: str) -> dict[str, Any]:
    keys = ("benchmark", "data", "retain", "holdout", "builtin", "revision", "field_map")
    return {k: common.get(k) for k in keys} | request_kwargs(benchmark, name)


def _warn_overlaps(requests: dict[str, Any], log: Callable[[str], None] | None) -> None:
    """A notice for each pair of requests that share forget items (allowed, but then a later
    request re-forgets what an earlier one already asked for)."""
    names = list(requests)
    keys = {n: {(it.question, it.answer) for it in requests[n].forget} for n in names}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = len(keys[a] & keys[b])
            if shared:
                _say(log, f"[continual] note: {a} and {b} share {shared} forget item(s)")


def continual_markdown(doc: dict[str, Any]) -> str:
    """The table: one row per (step, request evaluated after that step)."""
    from obliviate.reporting.render import fmt_number, markdown_table

    labels = doc["labels"]
    heads = ["step", "unlearned so far", "request"] + [labels[c][0] for c in doc["columns"]]
    seq = doc["sequence"]
    body = []
    for r in doc["rows"]:
        so_far = ", ".join(seq[: r["step"]]) or "(input model)"
        body.append(
            [str(r["step"]), so_far, r["request"]] + [fmt_number(r.get(c)) for c in doc["columns"]]
        )
    lines = [
        f"continual unlearning: {doc['method']} on {doc['benchmark']}, requests {' -> '.join(seq)}",
        "",
        *markdown_table(heads, body),
    ]
    return "\n".join(lines) + "\n"
