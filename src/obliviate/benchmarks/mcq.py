"""Multiple-choice suite (WMDP, Li+ 2024, arXiv 2403.03218; docs/muse-wmdp.md): the
:class:`MCQSuite` of the ``wmdp`` and ``builtin-wmdp`` entries. Accuracy comes from
:func:`obliviate.benchmarks.wmdp.evaluate_mcq`, which cuts inputs to the model's context."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from obliviate.benchmarks.suites import Suite, _builtin_only, _documents
from obliviate.benchmarks.wmdp import MCQ_VERSION, mcq_hash
from obliviate.data.types import DataError, UnlearningRequest


@dataclass
class MCQSuite(Suite):
    """WMDP-style multiple-choice accuracy (:func:`obliviate.benchmarks.wmdp.evaluate_mcq`)."""

    sets: dict[str, list[Any]] = field(default_factory=dict)
    mode: str = "letters"
    batch_size: int = 16
    max_length: int = 2048
    forget_docs: Any = None  # a callable giving the unlearning request

    @property
    def request(self) -> UnlearningRequest:
        return self.forget_docs()

    def key(self, fingerprint: str) -> dict[str, Any]:
        from obliviate.metrics.lookups import metric_versions

        return {
            "eval_version": MCQ_VERSION,
            "benchmark": "mcq",
            "model": fingerprint,
            "mode": self.mode,
            "max_length": self.max_length,
            "data": "mcq:" + mcq_hash(self.sets),
            "metric_versions": metric_versions(),
        }

    def evaluate(
        self, model: Any, tokenizer: Any, reference: Any, fingerprint: str, progress: bool
    ) -> Any:
        from obliviate.benchmarks.wmdp import evaluate_mcq

        result = evaluate_mcq(
            model,
            tokenizer,
            self.sets,
            self.mode,
            self.batch_size,
            self.max_length,
            fingerprint,
            progress,
        )
        result.key = self.key(fingerprint)
        return result


_MCQ_SETTINGS = ("mode", "batch_size", "max_length", "subsets")


def build_mcq(
    spec: Any,
    data: str,
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
) -> MCQSuite:
    """WMDP (Li+ 2024, arXiv 2403.03218) or the built-in WMDP-style questions, or an MCQ file or
    folder (``question``/``choices``/``answer`` rows). Settings: ``mode`` (letters | cloze;
    built-in default cloze), ``batch_size``, ``max_length``, ``subsets`` (comma-separated).
    Unlearning reads ``--forget``/``--retain`` documents; the built-in set unlearns the
    built-in MUSE forget documents (the same people); ``field_map`` renames the columns of those
    documents' files (the template and its system prompt do not apply: choices are scored raw)."""
    from obliviate.data.wmdp import load_wmdp

    opts = dict(settings or {})
    bad = sorted(set(opts) - set(_MCQ_SETTINGS))
    if bad:
        raise ValueError(
            f"benchmark {spec.name!r}: unknown setting(s) {bad}; known: {', '.join(_MCQ_SETTINGS)}"
        )
    _builtin_only(data, spec.name, builtin)
    subsets = opts.get("subsets")
    if isinstance(subsets, str):
        subsets = [s for s in subsets.split(",") if s]
    hub_split = split if split not in ("forget", "", None) else "test"
    sets = load_wmdp(data, subsets, hub_split, revision=revision, **(builtin or {}))
    is_builtin = data == "builtin"

    def request() -> UnlearningRequest:
        if forget is not None:
            docs = _documents(forget, "forget", field_map)
            keep = _documents(retain, "retain", field_map) if retain is not None else []
            return UnlearningRequest(
                docs, keep, eval={"forget": docs}, name=spec.name, split="forget"
            )
        if is_builtin:
            from obliviate.data.muse import load_muse

            return load_muse("builtin", ["raw", "privleak"], **(builtin or {})).request()
        raise DataError(
            f"benchmark {spec.name!r}: unlearning needs the forget corpus as "
            "--forget FILE (e.g. a local copy of cais/wmdp-corpora cyber-forget-corpus)"
        )

    mode = opts.get("mode", "cloze" if is_builtin else "letters")
    return MCQSuite(
        spec.name,
        "forget" if is_builtin else hub_split,
        documents=True,
        sets=sets,
        mode=mode,
        batch_size=int(opts.get("batch_size", 16)),
        max_length=int(opts.get("max_length", 2048)),
        forget_docs=request,
    )
