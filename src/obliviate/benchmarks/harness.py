"""The lm-evaluation-harness bridge (Gao+ 2024, "The Language Model Evaluation Harness",
arXiv 2405.14782; extra ``obliviate[lm-eval]``; docs/scenarios.md): general utility beside WMDP
and MUSE, e.g. MMLU (Hendrycks+ 2021, arXiv 2009.03300).

One bridge, :func:`run_lm_eval`, used by ``obliviate wmdp --lm-eval-tasks`` (a saved model folder)
and by the evaluation-only ``lm-eval`` benchmark (``obliviate eval --benchmark lm-eval --set
tasks=mmlu,...``), which hands lm-eval the model already loaded in memory: lm-eval's ``HFLM``
wraps that model and its tokenizer, so unlearned weights, adapters or a model loaded by the
caller are what is scored. Settings (``--set``): ``tasks`` (comma-separated lm-eval task names),
``include_path`` (a folder of task YAML files, lm-eval's ``TaskManager(include_path=...)``),
``limit`` (documents per task), ``num_fewshot``, ``batch_size``, ``max_length``.

Results are recorded as ``lm_eval_<task>_<metric>`` (task names with characters other than
letters, digits and ``_`` turned into ``_``; a filter other than ``none`` appended), for the
metrics the catalogue knows (:data:`HIGHER`, :data:`LOWER`); every value lm-eval returned,
standard errors included, is kept in one sample row per task.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obliviate.benchmarks.suites import Suite
from obliviate.data.types import UnlearningRequest
from obliviate.metrics.scenario_defs import LM_EVAL_HIGHER, LM_EVAL_LOWER

LM_EVAL_VERSION = 1
HIGHER = LM_EVAL_HIGHER
LOWER = LM_EVAL_LOWER
_SETTINGS = ("tasks", "include_path", "limit", "num_fewshot", "batch_size", "max_length")


def lm_eval_available() -> bool:
    """Whether lm-evaluation-harness (``pip install 'obliviate[lm-eval]'``) can be imported."""
    import importlib.util

    return importlib.util.find_spec("lm_eval") is not None


def _import_lm_eval() -> Any:
    try:
        import lm_eval
    except ImportError as exc:
        raise ImportError(
            "lm-evaluation-harness is not installed; `pip install lm-eval` (or "
            "`pip install 'obliviate[lm-eval]'`) to run its tasks (optional: obliviate's own "
            "WMDP-style scoring needs nothing extra)"
        ) from exc
    return lm_eval


def run_lm_eval(
    model: Any,
    tasks: Sequence[str],
    batch_size: int = 8,
    limit: int | None = None,
    device: str = "cpu",
    num_fewshot: int | None = None,
    dtype: str = "float32",
    tokenizer: Any = None,
    include_path: str | None = None,
    max_length: int | None = None,
) -> dict[str, dict[str, float]]:
    """Run lm-evaluation-harness tasks (e.g. ``["mmlu", "wmdp_bio"]``) through
    ``lm_eval.simple_evaluate``.

    ``model``: a saved model folder or run folder (lm-eval's ``hf`` model type loads it), or a
    model already in memory with its ``tokenizer`` (wrapped in lm-eval's ``HFLM``; ``device``
    and ``dtype`` are then the model's own). ``include_path``: a folder of extra task YAML files.
    Returns ``{task: {metric: value}}`` with lm-eval's own metric names (``"acc,none"``...).
    Raises :class:`ImportError` with the install hint when lm-eval is not installed."""
    if not tasks:
        raise ValueError("name at least one lm-evaluation-harness task, e.g. mmlu")
    lm_eval = _import_lm_eval()
    kwargs: dict[str, Any] = {
        "tasks": list(tasks),
        "num_fewshot": num_fewshot,
        "batch_size": batch_size,
        "limit": limit,
    }
    if include_path is not None:
        if not Path(include_path).expanduser().is_dir():
            raise ValueError(f"include_path={include_path!r}: not a folder of task YAML files")
        from lm_eval.tasks import TaskManager

        kwargs["task_manager"] = TaskManager(include_path=str(Path(include_path).expanduser()))
    if isinstance(model, (str, Path)):
        from obliviate.runs import resolve_model_dir

        path = resolve_model_dir(str(model))
        kwargs.update(model="hf", model_args=f"pretrained={path},dtype={dtype}", device=device)
    else:
        from lm_eval.models.huggingface import HFLM

        if tokenizer is None:
            raise ValueError("a model in memory needs its tokenizer for lm-eval")
        extra = {"max_length": max_length} if max_length else {}
        kwargs["model"] = HFLM(
            pretrained=model, tokenizer=tokenizer, batch_size=batch_size, **extra
        )
    try:
        results = lm_eval.simple_evaluate(**kwargs)
    except KeyError as exc:  # lm-eval names an unknown task this way
        raise ValueError(f"lm-eval: {exc.args[0] if exc.args else exc}") from exc
    out: dict[str, dict[str, float]] = {}
    for task, res in (results or {}).get("results", {}).items():
        out[task] = {
            k: float(v)
            for k, v in res.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
    return out


def metric_name(task: str, key: str) -> str | None:
    """``lm_eval_<task>_<metric>[_<filter>]`` for a catalogued lm-eval metric key
    (``"acc,none"``), None for standard errors and metrics the catalogue does not know."""
    metric, _, filt = key.partition(",")
    if metric.endswith("_stderr") or metric not in HIGHER + LOWER:
        return None
    clean = lambda s: re.sub(r"[^A-Za-z0-9_]", "_", s)
    suffix = "" if filt in ("", "none") else f"_{clean(filt)}"
    return f"lm_eval_{clean(task)}_{metric}{suffix}"


@dataclass
class LmEvalSuite(Suite):
    """lm-eval tasks run on the model in memory (evaluation only)."""

    tasks: list[str] = field(default_factory=list)
    include_path: str | None = None
    limit: int | None = None
    num_fewshot: int | None = None
    batch_size: int = 8
    max_length: int | None = None

    @property
    def request(self) -> UnlearningRequest:
        raise ValueError(
            "benchmark 'lm-eval' is evaluation-only (general utility): unlearn with another "
            "benchmark, then run `obliviate eval --benchmark lm-eval` on the result"
        )

    def key(self, fingerprint: str) -> dict[str, Any]:
        from obliviate.metrics.lookups import metric_versions

        tasks_hash = None
        if self.include_path is not None:
            h = hashlib.sha256()
            for f in sorted(Path(self.include_path).expanduser().rglob("*")):
                if f.is_file():
                    h.update(f.name.encode() + b"\0" + f.read_bytes())
            tasks_hash = h.hexdigest()[:16]
        return {
            "eval_version": LM_EVAL_VERSION,
            "benchmark": "lm-eval",
            "model": fingerprint,
            "tasks": self.tasks,
            "include_path": tasks_hash,
            "limit": self.limit,
            "num_fewshot": self.num_fewshot,
            "max_length": self.max_length,
            "lm_eval": _lm_eval_version(),
            "metric_versions": metric_versions(),
        }

    def evaluate(
        self, model: Any, tokenizer: Any, reference: Any, fingerprint: str, progress: bool
    ) -> Any:
        from obliviate.evaluation import EvalResult
        from obliviate.metrics import metric_result

        t0 = time.perf_counter()
        raw = run_lm_eval(
            model,
            self.tasks,
            self.batch_size,
            self.limit,
            num_fewshot=self.num_fewshot,
            tokenizer=tokenizer,
            include_path=self.include_path,
            max_length=self.max_length,
        )
        metrics = {}
        for task, values in raw.items():
            for key, value in values.items():
                name = metric_name(task, key)
                if name is not None:
                    metrics[name] = metric_result(name, value, n=None).to_dict()
        samples = [
            {"split": "lm_eval", "index": i, "task": t, **v} for i, (t, v) in enumerate(raw.items())
        ]
        timing = {"lm_eval_s": round(time.perf_counter() - t0, 3)}
        return EvalResult(metrics, samples, self.key(fingerprint), timing)


def _lm_eval_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lm_eval")
    except PackageNotFoundError:
        return None


def build_lm_eval(
    spec: Any,
    data: str | None,
    split: str,
    forget: Any = None,
    retain: Any = None,
    holdout: Any = None,
    builtin: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    template: str = "qa",
    revision: str | None = None,
    system_prompt: str | None = None,
    field_map: dict[str, str] | None = None,
) -> LmEvalSuite:
    """The ``lm-eval`` entry: the tasks named by ``--set tasks=...`` (module docstring)."""
    if forget is not None or field_map or builtin or data is not None:
        raise ValueError(
            "benchmark 'lm-eval' takes its tasks from --set tasks=NAME,... (and task files "
            "from --set include_path=FOLDER), not --data, --forget, --people or --map"
        )
    opts = dict(settings or {})
    bad = sorted(set(opts) - set(_SETTINGS))
    if bad:
        raise ValueError(
            f"benchmark 'lm-eval': unknown setting(s) {bad}; known: {', '.join(_SETTINGS)}"
        )
    value = opts.get("tasks")
    tasks = value if isinstance(value, list) else str(value or "").split(",")
    tasks = [str(t).strip() for t in tasks if str(t).strip()]
    if not tasks:
        raise ValueError("benchmark 'lm-eval' needs --set tasks=NAME[,NAME...] (e.g. mmlu)")
    if not lm_eval_available():
        _import_lm_eval()  # the ImportError with the install hint
    include = opts.get("include_path")
    if include is not None and not Path(str(include)).expanduser().is_dir():
        raise ValueError(f"include_path={include!r}: not a folder of task YAML files")
    as_int = lambda k: None if opts.get(k) is None else int(opts[k])
    return LmEvalSuite(
        spec.name,
        split,
        tasks=tasks,
        include_path=None if include is None else str(include),
        limit=as_int("limit"),
        num_fewshot=as_int("num_fewshot"),
        batch_size=int(opts.get("batch_size", 8)),
        max_length=as_int("max_length"),
    )
