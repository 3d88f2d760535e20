"""What a benchmark entry loads and how it evaluates: one *suite* per family.

A :class:`Suite` holds a benchmark's loaded data and evaluation settings and knows the three
things :func:`obliviate.api.evaluate` and :func:`obliviate.api.unlearn` need, whatever the
benchmark:

- ``request``: the :class:`~obliviate.data.types.UnlearningRequest` a method unlearns
  (forget / retain / holdout sets);
- ``key(fingerprint)``: everything a number depends on (cached results with another key are
  stale) and ``evaluate(...)``: the metric suite's :class:`~obliviate.evaluation.EvalResult`;
- ``add_reference(result, reference)``: the metrics computed against the retain (gold-standard)
  model's result (forget quality, privleak).

Families: :class:`QASuite` (TOFU, Maini+ 2024, arXiv 2401.06121, and the user's QA files),
:class:`MuseSuite` (MUSE, Shi+ 2024, arXiv 2407.06460, and the user's plain documents, evaluated
with MUSE's VerbMem, Min-K% PrivLeak and perplexity) and
:class:`~obliviate.benchmarks.mcq.MCQSuite` (WMDP multiple choice, Li+ 2024, arXiv 2403.03218,
in its own module). Each ``build_*`` function is the ``suite`` target of the entries in
:mod:`obliviate.benchmarks`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from obliviate.data.types import DataError, QAItem, UnlearningRequest


@dataclass
class Suite:
    """Base class: a loaded benchmark (see the module docstring)."""

    name: str  # the request's name, e.g. "builtin-tofu", "builtin-muse", "wmdp"
    split: str
    documents: bool = False  # unlearning cuts items into token windows (long documents)
    item_template: str | None = None  # the template the request's items need (None: the caller's)
    model_kind: str = "text"  # what it evaluates (obliviate.model_kinds; set from the entry)

    @property
    def request(self) -> UnlearningRequest:
        raise NotImplementedError

    def key(self, fingerprint: str) -> dict[str, Any]:
        raise NotImplementedError

    def evaluate(
        self, model: Any, tokenizer: Any, reference: Any, fingerprint: str, progress: bool
    ) -> Any:
        raise NotImplementedError

    def add_reference(self, result: Any, reference: Any) -> None:
        """Add the metrics computed against the retain model's result (none by default)."""

    def for_model(self, model: Any) -> Suite:
        """This suite for the model ``model`` (its folder, run folder or hub name; ``None``:
        unknown): a model of another kind is refused (:func:`obliviate.model_kinds.
        check_model`); a generated benchmark may regenerate the data the model was trained on."""
        from obliviate.model_kinds import check_model

        if isinstance(model, (str, os.PathLike)):
            check_model(model, self.model_kind, self.name)
        return self

    def run_record(self) -> dict[str, Any]:
        """What an unlearning run's config.yaml records about the data besides its name (none
        by default)."""
        return {}


def _need(value: Any, what: str, benchmark: str) -> Any:
    if value is None:
        raise DataError(f"benchmark {benchmark!r} needs {what}")
    return value


def _builtin_only(data: str, benchmark: str, builtin: dict[str, Any] | None) -> None:
    if builtin and data != "builtin":
        raise ValueError(
            f"benchmark {benchmark!r}: built-in options {sorted(builtin)} apply only "
            "to the built-in generator (--data builtin)"
        )


# ----------------------------------------------------------------------------- QA (TOFU, files)


@dataclass
class QASuite(Suite):
    """TOFU's metric suite (:func:`obliviate.evaluation.evaluate_model`) on a QA request."""

    req: UnlearningRequest | None = None
    template: Any = None
    settings: Any = None

    @property
    def request(self) -> UnlearningRequest:
        assert self.req is not None
        return self.req

    def key(self, fingerprint: str) -> dict[str, Any]:
        from obliviate.evaluation import eval_key

        return eval_key(self.request, self.template, self.settings, fingerprint)

    def evaluate(
        self, model: Any, tokenizer: Any, reference: Any, fingerprint: str, progress: bool
    ) -> Any:
        from obliviate.evaluation import evaluate_model

        return evaluate_model(
            model,
            tokenizer,
            self.request,
            self.template,
            self.settings,
            reference,
            fingerprint,
            progress,
        )

    def add_reference(self, result: Any, reference: Any) -> None:
        from obliviate.evaluation import add_reference_metrics

        add_reference_metrics(result, reference)


def _qa_settings(
    settings: dict[str, Any] | None, template: str, system_prompt: str | None = None
) -> tuple[Any, Any]:
    from obliviate.config import from_dict
    from obliviate.data.templates import PromptTemplate
    from obliviate.evaluation import EvalSettings

    tmpl = PromptTemplate(template, system_prompt=system_prompt)
    return tmpl, from_dict(EvalSettings, settings or {}, "evaluation")


def build_tofu(
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
) -> QASuite:
    """TOFU (Maini+ 2024, arXiv 2401.06121): ``data`` = "builtin" (generated), a folder of
    ``<config>.jsonl`` files or a hub name (locuslab/TOFU); ``split`` = forget01/05/10.
    ``field_map`` ({file column: field}) renames the columns of a folder's or hub's files."""
    from obliviate.data.tofu import load_tofu

    if forget is not None:
        raise ValueError(
            f"benchmark {spec.name!r} reads its own splits; for your own files use "
            "--benchmark qa (QA pairs) or --benchmark documents (plain text)"
        )
    _builtin_only(data, spec.name, builtin)
    request = load_tofu(data, split, field_map=field_map, **(builtin or {}))
    tmpl, es = _qa_settings(settings, template, system_prompt)
    return QASuite(request.name, request.split, req=request, template=tmpl, settings=es)


def build_qa(
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
) -> QASuite:
    """The user's QA files (:func:`obliviate.data.files.make_request`): JSON, JSONL, CSV or .txt,
    a file or a folder per set, columns renamed by ``field_map`` ({file column: field});
    evaluated with TOFU's metric suite."""
    from obliviate.data.files import make_request

    request = make_request(
        _need(forget, "--forget FILE (the forget set)", spec.name),
        retain,
        holdout,
        field_map=field_map,
    )
    tmpl, es = _qa_settings(settings, template, system_prompt)
    return QASuite(request.name, split, req=request, template=tmpl, settings=es)


# ----------------------------------------------------------------------------- documents (MUSE)


@dataclass
class MuseSuite(Suite):
    """MUSE's C1-C4 (:func:`obliviate.benchmarks.muse.evaluate_muse`) on a document corpus;
    with ``perplexity`` also the forget/retain perplexity of the documents."""

    data: Any = None  # MuseData
    settings: Any = None  # MuseSettings
    mcq: dict[str, list[Any]] | None = None  # built-in MUSE: the WMDP-style questions too
    perplexity: bool = False

    @property
    def request(self) -> UnlearningRequest:
        return self.data.request()

    def key(self, fingerprint: str) -> dict[str, Any]:
        from obliviate.benchmarks.muse import muse_key

        key = muse_key(self.data, self.settings, fingerprint)
        if self.perplexity:
            key["perplexity"] = True
        if self.mcq is not None:
            from obliviate.benchmarks.wmdp import mcq_hash

            key["mcq"] = mcq_hash(self.mcq)
        return json.loads(json.dumps(key))  # the form it has once stored (tuples -> lists)

    def evaluate(
        self, model: Any, tokenizer: Any, reference: Any, fingerprint: str, progress: bool
    ) -> Any:
        """C1-C4 (privleak against ``reference``), then the built-in WMDP-style accuracy in
        cloze mode (``wmdp_forget_accuracy``, ``wmdp_retain_accuracy``) or the perplexities."""
        from obliviate.benchmarks.muse import evaluate_muse

        result = evaluate_muse(
            model, tokenizer, self.data, self.settings, None, fingerprint, progress
        )
        result.key = self.key(fingerprint)
        if reference is not None:
            self.add_reference(result, reference)
        if self.mcq is not None:
            from obliviate.benchmarks.muse import _set
            from obliviate.benchmarks.wmdp import evaluate_mcq

            acc = evaluate_mcq(model, tokenizer, self.mcq, mode="cloze", progress=progress)
            _set(
                result,
                {f"wmdp_{n}_accuracy": acc.metrics[f"{n}_accuracy"]["value"] for n in self.mcq},
            )
            result.samples += acc.samples
        if self.perplexity:
            _add_perplexity(result, model, tokenizer, self.data, self.settings, progress)
        return result

    def add_reference(self, result: Any, reference: Any) -> None:
        from obliviate.benchmarks.muse import add_privleak

        add_privleak(result, reference)


def _add_perplexity(
    result: Any, model: Any, tokenizer: Any, data: Any, settings: Any, progress: bool
) -> None:
    """``forget_perplexity`` (higher is better after unlearning) and ``retain_perplexity``
    (lower): pooled perplexity of the documents (:func:`obliviate.metrics.fluency.perplexity`)
    over every token, long documents scored in windows of the model's context
    (:func:`obliviate.scoring.score_documents`); ``n_tokens`` records how many were scored."""
    from obliviate.metrics import metric_result
    from obliviate.metrics.fluency import perplexity
    from obliviate.scoring import context_length, score_documents

    window = context_length(model, settings.max_length)
    for side, items in (("forget", data.forget), ("retain", data.retain)):
        items = items if settings.max_items is None else items[: settings.max_items]
        if not items:
            continue
        scored = score_documents(
            model,
            tokenizer,
            [it.answer for it in items],
            window,
            settings.stride,
            batch_size=settings.score_batch_size,
            progress=progress,
            desc=f"perplexity {side}",
        )
        value = perplexity(scored)
        n_tokens = int(sum(len(s) for s in scored))
        result.metrics[f"{side}_perplexity"] = metric_result(
            f"{side}_perplexity", float(value), n=len(items), n_tokens=n_tokens
        ).to_dict()


def _muse_settings(settings: dict[str, Any] | None) -> Any:
    from obliviate.benchmarks.muse import MuseSettings
    from obliviate.config import from_dict

    return from_dict(MuseSettings, settings or {}, "MUSE evaluation")


def _check_forget_split(spec: Any, split: str) -> None:
    if split not in ("forget", None, ""):
        raise DataError(f"benchmark {spec.name!r} has one forget split, 'forget' (got {split!r})")


def build_muse(
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
) -> MuseSuite:
    """MUSE (Shi+ 2024, arXiv 2407.06460): the built-in corpus, muse-bench/MUSE-News or -Books
    from the hub, or a folder in the hub layout; unlearn ``raw/forget`` keeping ``raw/retain1``."""
    from obliviate.data.muse import load_muse

    if forget is not None or field_map:
        raise ValueError(
            f"benchmark {spec.name!r} reads its own splits in MUSE's layout; for your own "
            "documents (and --map) use --benchmark documents"
        )
    _check_forget_split(spec, split)
    muse = load_muse(data, revision=revision, **(builtin or {}))
    mcq = None
    if data == "builtin":
        from obliviate.data.wmdp import load_wmdp

        mcq = load_wmdp(
            "builtin", **{k: v for k, v in (builtin or {}).items() if k in ("n_people", "seed")}
        )
    return MuseSuite(
        muse.name, "forget", documents=True, data=muse, settings=_muse_settings(settings), mcq=mcq
    )


def _document_text(it: QAItem) -> str:
    return it.answer if it.is_document else f"{it.question} {it.answer}"


def _documents(source: Any, role: str, field_map: dict[str, str] | None = None) -> list[QAItem]:
    from obliviate.data.files import load_qa_file

    path = source
    is_path = isinstance(path, str) or hasattr(path, "__fspath__")
    items = load_qa_file(path, field_map=field_map) if is_path else list(path)
    if not items:
        raise DataError(f"{role}: {path} holds no document")
    return [QAItem("", _document_text(it), meta=dict(it.meta)) for it in items]


def verbmem_split(doc: QAItem) -> QAItem:
    """A document as a VerbMem item: the first half of its words is the prompt, the rest the
    expected continuation (MUSE C1, 2407.06460 §3, on the user's own text)."""
    words = doc.answer.split(" ")
    cut = max(1, len(words) // 2)
    return QAItem(" ".join(words[:cut]), " ".join(words[cut:]) or doc.answer, meta=dict(doc.meta))


def build_documents(
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
) -> MuseSuite:
    """The user's plain documents: ``--forget`` / ``--retain`` / ``--holdout`` each a .txt file,
    a folder of .txt files or a .jsonl/.json/.csv with a ``text`` field. Evaluated with MUSE's
    VerbMem on the forget documents, Min-K% PrivLeak (forget vs holdout, when a holdout set is
    given) and the forget/retain perplexity. ``field_map`` renames columns (e.g.
    ``{"body": "text"}``)."""
    from obliviate.data.muse import MuseData

    fdocs = _documents(
        _need(forget, "--forget FILE (the documents to forget)", spec.name), "forget", field_map
    )
    rdocs = _documents(retain, "retain", field_map) if retain is not None else []
    hdocs = _documents(holdout, "holdout", field_map) if holdout is not None else []
    muse = MuseData(
        name="documents",
        source=str(forget),
        raw={"forget": fdocs, "retain1": rdocs},
        verbmem=[verbmem_split(d) for d in fdocs if len(d.answer.split(" ")) > 1],
    )
    if hdocs:
        muse.privleak = {"forget": fdocs, "holdout": hdocs}
    return MuseSuite(
        "documents",
        "forget",
        documents=True,
        data=muse,
        settings=_muse_settings(settings),
        perplexity=True,
    )
