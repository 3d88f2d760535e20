"""The retain (gold-standard) model's evaluation that forget quality and privleak compare
against, cached inside the retain model's run tree (docs/run-format.md)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def short_hash(obj: Any) -> str:
    """10 hex digits of the sha256 of ``obj``'s canonical JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:10]


def retain_reference(retain_model: Any, suite: Any, progress: bool, reuse: bool) -> Any:
    """The retain model's evaluation on the same data and settings (an
    :class:`~obliviate.evaluation.EvalResult` is used as given). Cached under
    :func:`obliviate.run_output.retain_cache_dir`, keyed by the full evaluation key (the retain
    model's fingerprint over every weight byte included): an edited retain model is
    re-evaluated. In a data-parallel evaluation rank 0 reads and writes the cache
    (:func:`obliviate.parallel_eval.on_rank0`)."""
    from obliviate import model_kinds
    from obliviate.evaluation import EvalResult
    from obliviate.models.loading import model_fingerprint
    from obliviate.parallel_eval import on_rank0
    from obliviate.run_output import retain_cache_dir
    from obliviate.runs import load_eval, resolve_model_dir, write_eval

    if isinstance(retain_model, EvalResult):
        return retain_model
    path = resolve_model_dir(retain_model)
    model_kinds.check_model(path, suite.model_kind, suite.name)
    fp = model_fingerprint(path)
    key = suite.key(fp)
    tag = key["data"].split(":")[-1][:8] + "-" + short_hash(key)
    cache = retain_cache_dir(path) / f"{suite.name}-{suite.split}-{tag}"
    if reuse:
        cached = on_rank0(lambda: load_eval(cache))
        if cached is not None and cached.key == key:
            return cached
    net, tok = model_kinds.load(path, suite.model_kind)
    result = suite.evaluate(net, tok, None, fp, progress)
    suite.add_reference(result, result)
    info = {
        "name": "retain",
        "role": "retain",
        "benchmark": suite.name,
        "split": suite.split,
        "model": {"path": path, "fingerprint": fp},
    }
    on_rank0(lambda: write_eval(cache, result, info))  # rank 0 of a data-parallel evaluation
    return result


def load_retain_results(path: Any) -> Any:
    """The retain model's results read from disk instead of computed: an obliviate run folder
    holding its evaluation (``metrics.json`` + ``samples.jsonl``), or an open-unlearning
    evaluation log (``TOFU_EVAL.json``, or the folder holding it;
    :func:`obliviate.interop.open_unlearning.read_log`). Either becomes the reference of forget
    quality and privleak (docs/run-format.md)."""
    from pathlib import Path

    from obliviate.interop.open_unlearning import read_log
    from obliviate.runs import load_eval

    p = Path(path)
    if p.is_dir() and (p / "metrics.json").is_file():
        result = load_eval(p)
        if result is None:
            raise ValueError(f"{p} holds no finished evaluation (metrics.json and samples.jsonl)")
        return result
    return read_log(p)
