"""The benchmark entries ``builtin-mllmu`` (the built-in people) and ``mllmu`` (MLLMU-Bench,
Liu+ 2024, arXiv 2410.22108, from the hub, a local parquet copy or the authors' folder release):
:class:`MLLMUSuite` loads the request and evaluates a
:class:`~obliviate.multimodal.lm.VisionLM` on its four sets in both modes
(:func:`obliviate.multimodal.evaluate.score_sets`), recorded as the catalogue's
``<set>_<mode>_<task>`` metrics (:mod:`obliviate.metrics.catalogue_multimodal`).

The built-in people depend on their options (``n_people``, ``n_real``, ``seed``): a model must
be evaluated on the people it was trained on. :meth:`MLLMUSuite.for_model` reads them from the
model's records (:func:`recorded_people`): an unlearning run's ``config.yaml`` (``builtin``,
written from :meth:`MLLMUSuite.run_record`) or the demo's ``models.json`` next to its
``target/`` and ``retain/`` folders.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obliviate.benchmarks.suites import Suite, _builtin_only
from obliviate.data.types import UnlearningRequest

BUILTIN_OPTIONS = {"n_people": 20, "n_real": 5, "seed": 0}  # generate_people's defaults
EVAL_VERSION = 1
BUILTIN_NAME = "builtin-mllmu"


@dataclass
class MLLMUSuite(Suite):
    """MLLMU-Bench's three tasks in both modes on the four sets. The request is loaded on
    first use, after :meth:`for_model` had the chance to choose the built-in people."""

    source: str = "builtin"
    percent: int = 10
    builtin: dict[str, Any] = field(default_factory=dict)  # the built-in people's options
    given: tuple[str, ...] = ()  # the options the caller gave (the rest: defaults or records)
    revision: str | None = None
    req: UnlearningRequest | None = None

    @property
    def request(self) -> UnlearningRequest:
        if self.req is None:
            if self.source == "builtin":
                from obliviate.multimodal.people import generate_people, unlearning_request

                people = generate_people(forget_percent=self.percent, **self.builtin)
                self.req = unlearning_request(people)
            else:
                from obliviate.multimodal.mllmu import load_mllmu

                self.req = load_mllmu(self.source, self.percent, self.revision)
        return self.req

    def for_model(self, model: Any) -> MLLMUSuite:
        """Refuse a text model; for the built-in people, use the options the model was trained
        on (:func:`recorded_people`). An option the caller gave that differs from the record
        is an error."""
        super().for_model(model)
        if self.source != "builtin" or not isinstance(model, (str, os.PathLike)):
            return self
        found = recorded_people(model)
        if found is None:
            return self
        record, options = found
        clash = {k: self.builtin[k] for k in self.given if options.get(k) != self.builtin[k]}
        if clash:
            k, v = next(iter(clash.items()))
            raise ValueError(
                f"{model} was trained on the built-in people with {k}={options.get(k)} "
                f"({record}), not {k}={v}; leave the option out or give the same value"
            )
        merged = {**self.builtin, **options}
        if merged == self.builtin:
            return self
        return dataclasses.replace(self, builtin=merged, req=None)

    def run_record(self) -> dict[str, Any]:
        return {"builtin": dict(self.builtin)} if self.source == "builtin" else {}

    def key(self, fingerprint: str) -> dict[str, Any]:
        from obliviate.metrics.lookups import metric_versions

        return {
            "eval_version": EVAL_VERSION,
            "benchmark": self.name,
            "split": self.split,
            "model": fingerprint,
            "data": "mllmu:" + items_hash(self.request.eval),
            "builtin": dict(self.builtin) if self.source == "builtin" else None,
            "metric_versions": metric_versions(),
        }

    def evaluate(
        self, model: Any, tokenizer: Any, reference: Any, fingerprint: str, progress: bool
    ) -> Any:
        from obliviate.evaluation import EvalResult
        from obliviate.metrics.lookups import metric_result
        from obliviate.multimodal.evaluate import score_sets
        from obliviate.multimodal.lm import VisionLM

        if not isinstance(model, VisionLM):
            raise ValueError(
                f"benchmark {self.name!r} evaluates vision-language models; load one with "
                "obliviate.multimodal.loading.load_vision_lm"
            )
        scores = score_sets(model, tokenizer, self.request.eval)
        result = EvalResult({}, scores.samples, self.key(fingerprint))
        reasons = {}
        for group, values in scores.values.items():
            prefix = group.replace("/", "_")
            for task, value in values.items():
                name, n = f"{prefix}_{task}", scores.counts[group][task]
                if math.isnan(value):
                    reasons[name] = f"the {group.split('/')[0]} set has no such {task} item"
                else:
                    result.metrics[name] = metric_result(name, value, n=n).to_dict()
        result.set_unavailable(reasons)
        if reference is not None:
            self.add_reference(result, reference)
        return result

    def add_reference(self, result: Any, reference: Any) -> None:
        """``<forget|test>_<mode>_<task>_retain_gap``: :func:`retain_gap` to the retain
        model's value of the same metric."""
        from obliviate.metrics.lookups import metric_result

        for name, m in list(result.metrics.items()):
            if not name.startswith(("forget_", "test_")) or name.endswith("_retain_gap"):
                continue
            ref = reference.metrics.get(name)
            if ref is not None and ref.get("value") is not None:
                gap = retain_gap(m["value"], ref["value"])
                result.metrics[f"{name}_retain_gap"] = metric_result(
                    f"{name}_retain_gap", gap
                ).to_dict()


def retain_gap(value: float, retain_value: float) -> float:
    """``|value - retain_value|``: how far the model is from the retain model (never trained on
    the forget people) on a forget or test metric; 0 is the goal."""
    return abs(float(value) - float(retain_value))


def items_hash(sets: dict[str, list[Any]]) -> str:
    """A content hash of the evaluated items (set, question, answer, options, mode, task and
    the image's identity)."""
    h = hashlib.sha256()
    for name in sorted(sets):
        for it in sets[name]:
            meta = [it.meta.get(k) for k in ("mode", "task", "image_id")]
            h.update(json.dumps([name, it.question, it.answer, list(it.options), meta]).encode())
    return h.hexdigest()[:16]


def recorded_people(model: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]] | None:
    """The built-in people's options a model was trained on, and the file that records them:
    ``config.yaml`` of its unlearning run (``benchmark: builtin-mllmu``, ``builtin: {...}``),
    for a run folder or its ``model/``, or the demo's ``models.json`` beside the model folder
    (``obliviate demo --multimodal``: ``target/``, ``retain/``, one folder per method)."""
    p = Path(model)
    run = p if (p / "model").is_dir() else p.parent if p.name == "model" else None
    if run is not None and (run / "config.yaml").is_file():
        import yaml

        config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}
        if isinstance(config, dict) and config.get("benchmark") == BUILTIN_NAME:
            options = config.get("builtin") or {}
            return run / "config.yaml", {k: options[k] for k in BUILTIN_OPTIONS if k in options}
    demo = p.parent / "models.json"
    if demo.is_file():
        doc = json.loads(demo.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and "n_people" in doc:
            return demo, {k: doc[k] for k in BUILTIN_OPTIONS if k in doc}
    return None


def _percent(split: str, name: str) -> int:
    digits = split.removeprefix("forget")
    if not digits.isdigit():
        raise ValueError(f"benchmark {name!r}: split {split!r} is not forgetNN (e.g. forget10)")
    return int(digits)


def build_mllmu(
    spec: Any,
    data: str,
    split: str,
    builtin: dict[str, Any] | None = None,
    revision: str | None = None,
    **_unused: Any,
) -> MLLMUSuite:
    """The built-in people (``data="builtin"``; options ``n_people``, ``n_real``, ``seed``)
    or MLLMU-Bench from ``data`` (the hub name, a parquet copy or the folder release)."""
    _builtin_only(data, spec.name, builtin)
    percent = _percent(split, spec.name)
    opts = dict(builtin or {})
    bad = sorted(set(opts) - set(BUILTIN_OPTIONS))
    if bad:
        raise ValueError(
            f"benchmark {spec.name!r}: unknown built-in option(s) {bad}; known: "
            + ", ".join(BUILTIN_OPTIONS)
        )
    if data != "builtin":
        from obliviate.multimodal.mllmu import check_percent

        check_percent(percent)
        return MLLMUSuite(spec.name, split, source=data, percent=percent, revision=revision)
    return MLLMUSuite(
        spec.name,
        split,
        source="builtin",
        percent=percent,
        builtin={**BUILTIN_OPTIONS, **opts},
        given=tuple(opts),
    )
