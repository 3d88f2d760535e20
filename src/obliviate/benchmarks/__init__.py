"""Benchmarks: importing this package registers each one in :data:`obliviate.registry.BENCHMARKS`.

An entry is a :class:`BenchmarkSpec`: what to load (``loader``, a lazy ``"module:function"``
plus its keyword arguments), how to evaluate a model on it (``evaluator``), the metric names it
reports with their directions, and the command that runs it. Nothing heavy is imported here:
the loaders and evaluators are resolved on use (:meth:`BenchmarkSpec.load`,
:meth:`BenchmarkSpec.evaluator_fn`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from obliviate.registry import BENCHMARKS


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    description: str
    paper: str
    loader: str  # "module:function"
    loader_kwargs: dict[str, Any] = field(default_factory=dict)
    evaluator: str = ""  # "module:function"
    metrics: dict[str, str] = field(default_factory=dict)  # name -> direction
    command: str = ""
    needs_network: bool = False

    def load(self, **kwargs: Any) -> Any:
        """The benchmark's data (``loader(**loader_kwargs, **kwargs)``)."""
        return _resolve(self.loader)(**{**self.loader_kwargs, **kwargs})

    def evaluator_fn(self) -> Callable[..., Any]:
        return _resolve(self.evaluator)


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


_MUSE_PAPER = "Shi+ 2024, arXiv 2407.06460 (MUSE)"
_WMDP_PAPER = "Li+ 2024, arXiv 2403.03218 (WMDP)"
_MUSE_METRICS = {"forget_verbmem": "lower", "forget_knowmem": "lower", "privleak": "zero",
                 "retain_knowmem": "higher", "mia_min_k_auc": "zero"}


def _register(spec: BenchmarkSpec) -> None:
    BENCHMARKS.register(spec.name, spec, description=spec.description, paper=spec.paper,
                        metrics=dict(spec.metrics), needs_network=spec.needs_network)


for _name, _source, _what in (
    ("builtin-muse", "builtin", "MUSE-shaped corpus about the built-in fictitious people (offline)"),
    ("muse-news", "news", "MUSE-News (BBC news articles): six-way evaluation"),
    ("muse-books", "books", "MUSE-Books (Harry Potter): C1-C4 (the hub has no scal/sust folds)"),
):
    _register(BenchmarkSpec(
        _name, _what, _MUSE_PAPER, "obliviate.data.muse:load_muse", {"source": _source},
        "obliviate.benchmarks.muse:evaluate_muse", _MUSE_METRICS,
        f"obliviate muse run --data {_source}", needs_network=_source != "builtin"))

_register(BenchmarkSpec(
    "builtin-wmdp", "WMDP-style multiple choice about the built-in people (forget / retain)",
    _WMDP_PAPER, "obliviate.data.wmdp:load_wmdp", {"source": "builtin"},
    "obliviate.benchmarks.wmdp:evaluate_mcq",
    {"forget_accuracy": "lower", "retain_accuracy": "higher"},
    "obliviate wmdp --data builtin --mode cloze --model RUN"))
_register(BenchmarkSpec(
    "wmdp", "WMDP hazardous-knowledge multiple choice (bio, cyber, chem); chance is 0.25",
    _WMDP_PAPER, "obliviate.data.wmdp:load_wmdp", {"source": "cais/wmdp"},
    "obliviate.benchmarks.wmdp:evaluate_mcq",
    {"wmdp_bio_accuracy": "lower", "wmdp_cyber_accuracy": "lower", "wmdp_chem_accuracy": "lower"},
    "obliviate wmdp --data cais/wmdp --model MODEL", needs_network=True))
