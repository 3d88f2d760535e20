"""Fact-level forgetting suite in the editing benchmarks' format: CounterFact (Meng+ 2022, ROME,
arXiv 2202.05262) and zsRE (Levy+ 2017, arXiv 1706.04115; De Cao+ 2021, arXiv 2104.08164);
the ``counterfact``, ``zsre`` and ``builtin-counterfact`` entries (docs/scenarios.md).

The forget set is the rewritten facts: each record's prompt (subject filled in) with its true
target as the answer, the subject in ``meta["subject"]`` for the editing methods (``rome``,
``memit``) and the new target in ``meta["target_new"]``; the retain set is the neighbourhood
prompts with the answers they keep. Items are prompt continuations, so they are unlearnt and
scored without a QA template (``item_template = "raw"``; the answer is ``" " + target``).

Scores: one batched teacher-forced pass over every (prompt, target) pair
(:func:`obliviate.scoring.score_continuations`), then the pure functions of
:mod:`obliviate.metrics.counterfact`. Settings (``--set``): ``batch_size``, ``max_length``,
``max_items``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from obliviate.benchmarks.suites import Suite, _builtin_only
from obliviate.data.types import DataError, QAItem, UnlearningRequest

EDIT_VERSION = 1
_SETTINGS = ("batch_size", "max_length", "max_items")


def loc_prompt(prompt: str) -> str:
    """zsRE's unrelated question as ROME scores it: ending with a question mark."""
    return prompt if prompt.rstrip().endswith("?") else prompt.rstrip() + "?"


@dataclass
class EditSuite(Suite):
    """CounterFact or zsRE scores of a list of :class:`~obliviate.data.counterfact.EditRecord`."""

    records: list[Any] = field(default_factory=list)
    kind: str = "counterfact"
    batch_size: int = 16
    max_length: int = 2048
    item_template: str | None = "raw"

    @property
    def request(self) -> UnlearningRequest:
        forget = [
            QAItem(
                r.prompt,
                f" {r.target_true}",
                meta={"subject": r.subject, "target_new": r.target_new, "case_id": r.case_id},
            )
            for r in self.records
        ]
        retain = [
            QAItem(loc_prompt(p) if self.kind == "zsre" else p, f" {a}")
            for r in self.records
            for p, a in r.neighbours
        ]
        return UnlearningRequest(
            forget, retain, eval={"forget": forget}, name=self.name, split=self.split
        )

    def key(self, fingerprint: str) -> dict[str, Any]:
        from obliviate.metrics.lookups import metric_versions

        h = hashlib.sha256()
        for r in self.records:
            h.update(
                json.dumps(
                    [r.prompt, r.target_true, r.target_new, r.paraphrases, r.neighbours]
                ).encode()
            )
        return {
            "eval_version": EDIT_VERSION,
            "benchmark": self.kind,
            "model": fingerprint,
            "max_length": self.max_length,
            "data": h.hexdigest()[:16],
            "metric_versions": metric_versions(),
        }

    def evaluate(
        self, model: Any, tokenizer: Any, reference: Any, fingerprint: str, progress: bool
    ) -> Any:
        return evaluate_edits(model, tokenizer, self, fingerprint, progress)


def _pairs(r: Any, kind: str) -> dict[str, list[tuple[str, str]]]:
    """The scored (prompt, continuation) pairs of one record, by role."""
    true, new = f" {r.target_true}", f" {r.target_new}"
    if kind == "zsre":
        return {
            "new": [(r.prompt, new)],
            "true": [(r.prompt, true)],
            "para": [(p, new) for p in r.paraphrases],
            "loc": [(loc_prompt(p), f" {a}") for p, a in r.neighbours],
        }
    return {
        "rewrite": [(r.prompt, new), (r.prompt, true)],
        "para": [x for p in r.paraphrases for x in ((p, new), (p, true))],
        "loc": [x for p, a in r.neighbours for x in ((p, new), (p, f" {a}"))],
    }


def _counterfact_metrics(per: list[dict[str, list[Any]]]) -> tuple[dict[str, Any], list[dict]]:
    """ES/EM, PS/PM, NS/NM and P(true) from each record's scores; a role's scores alternate
    (new target, true target) per prompt (:func:`_pairs`)."""
    from obliviate.metrics.base import mean_score
    from obliviate.metrics.counterfact import (
        aggregate,
        neighborhood_hit,
        record_mean,
        rewrite_hit,
        true_probability,
    )

    def hits(scores: list[Any], fn: Any) -> list[tuple[float, float]]:
        lps = [s.token_logprobs for s in scores]
        return [fn(new, true) for new, true in zip(lps[0::2], lps[1::2])]

    rows: dict[str, list[Any]] = {"efficacy": [], "paraphrase": [], "neighborhood": []}
    samples, probs = [], []
    for i, d in enumerate(per):
        rows["efficacy"].append(hits(d["rewrite"], rewrite_hit)[0])
        rows["paraphrase"].append(record_mean(hits(d["para"], rewrite_hit)))
        rows["neighborhood"].append(record_mean(hits(d["loc"], neighborhood_hit)))
        probs.append(true_probability(d["rewrite"][1].token_logprobs))
        samples.append(
            {"split": "counterfact", "index": i, "true_prob": probs[-1]}
            | {k: v[-1] for k, v in rows.items()}
        )
    values: dict[str, tuple[float, int]] = {}
    for name, per_record in rows.items():
        if any(r is not None for r in per_record):
            score, magnitude, n = aggregate(per_record)
            values[f"counterfact_{name}_score"] = (score, n)
            values[f"counterfact_{name}_magnitude"] = (magnitude, n)
    values["counterfact_true_prob"] = (mean_score(probs), len(probs))
    return values, samples


def _zsre_metrics(per: list[dict[str, list[Any]]]) -> tuple[dict[str, Any], list[dict]]:
    import numpy as np

    from obliviate.metrics.counterfact import token_accuracy

    acc: dict[str, list[float]] = {
        "efficacy": [],
        "true_accuracy": [],
        "paraphrase": [],
        "specificity": [],
    }
    samples = []
    for i, d in enumerate(per):
        row = {}
        for role, name in (
            ("new", "efficacy"),
            ("true", "true_accuracy"),
            ("para", "paraphrase"),
            ("loc", "specificity"),
        ):
            if d[role]:
                row[name] = float(np.mean([token_accuracy(s.correct) for s in d[role]]))
                acc[name].append(row[name])
        samples.append({"split": "zsre", "index": i, **row})
    values = {f"zsre_{k}": (float(np.mean(v)), len(v)) for k, v in acc.items() if v}
    return values, samples


def evaluate_edits(
    model: Any, tokenizer: Any, suite: EditSuite, fingerprint: str, progress: bool = False
) -> Any:
    """The suite's scores (module docstring) with one sample row per record; a score whose
    prompts no record has (no paraphrase, no neighbourhood) is listed as unavailable."""
    from obliviate.evaluation import EvalResult
    from obliviate.metrics import metric_result
    from obliviate.scoring import score_continuations

    t0 = time.perf_counter()
    per_pairs = [_pairs(r, suite.kind) for r in suite.records]
    flat = [p for d in per_pairs for pairs in d.values() for p in pairs]
    scores = score_continuations(
        model, tokenizer, flat, suite.batch_size, suite.max_length, progress, suite.kind
    )
    per, i = [], 0
    for d in per_pairs:
        out = {}
        for role, pairs in d.items():
            out[role] = scores[i : i + len(pairs)]
            i += len(pairs)
        per.append(out)
    metrics_fn = _zsre_metrics if suite.kind == "zsre" else _counterfact_metrics
    values, samples = metrics_fn(per)
    cut = sum(bool(s.cut) for s in scores)
    extra = {"truncated_inputs": cut, "context": suite.max_length} if cut else {}
    metrics = {k: metric_result(k, v, n=n).to_dict() | extra for k, (v, n) in values.items()}
    result = EvalResult(
        metrics,
        samples,
        suite.key(fingerprint),
        {f"{suite.kind}_s": round(time.perf_counter() - t0, 3)},
    )
    from obliviate.metrics.scenario_defs import COUNTERFACT_METRICS, ZSRE_METRICS

    expected = ZSRE_METRICS if suite.kind == "zsre" else COUNTERFACT_METRICS
    result.set_unavailable(
        {m: "no record has prompts of this kind" for m in expected if m not in metrics}
    )
    return result


def build_edits(
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
) -> EditSuite:
    """CounterFact (hub ``azhx/counterfact``, a local file of its rows, or the built-in
    records; ``split``: the hub split, or forget01/05/10 for the built-in people) or zsRE (a
    local file given with ``--data``); the family is the entry's ``loader_kwargs["kind"]``."""
    from obliviate.data.counterfact import load_edit_records

    kind = spec.loader_kwargs.get("kind", "counterfact")
    if forget is not None or field_map:
        raise ValueError(
            f"benchmark {spec.name!r} reads {kind} records from --data; it takes no "
            "--forget/--retain files or --map"
        )
    if data is None:
        raise DataError(
            f"benchmark {spec.name!r} needs its records: --data FILE (a {kind} .json/.jsonl file)"
        )
    opts = dict(settings or {})
    bad = sorted(set(opts) - set(_SETTINGS))
    if bad:
        raise ValueError(
            f"benchmark {spec.name!r}: unknown setting(s) {bad}; known: {', '.join(_SETTINGS)}"
        )
    _builtin_only(data, spec.name, builtin)
    records = load_edit_records(data, kind, split, revision=revision, **(builtin or {}))
    if opts.get("max_items") is not None:
        records = records[: int(opts["max_items"])]
    if not records:
        raise DataError(f"benchmark {spec.name!r}: max_items leaves no record")
    return EditSuite(
        spec.name,
        split,
        records=records,
        kind=kind,
        batch_size=int(opts.get("batch_size", 16)),
        max_length=int(opts.get("max_length", 2048)),
    )
