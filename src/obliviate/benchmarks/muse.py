"""MUSE six-way evaluation (Shi+ 2024, arXiv 2407.06460; docs/muse-wmdp.md).

The six criteria and how they are computed here:

- **C1 VerbMem** (``forget_verbmem``, lower is better): greedy decoding of 128 new tokens from
  each ``verbmem/forget`` prompt; ROUGE-L F1 against ``gt`` truncated to its first 128 tokens;
  mean over prompts.
- **C2 KnowMem on D_f** (``forget_knowmem``, lower): each ``forget_qa`` question is put after
  the few-shot ``forget_qa_icl`` examples (:func:`knowmem_prompt`); greedy decoding of 32 new
  tokens, cut at "\\n\\n", "\\nQuestion" or "Question:"; ROUGE-L F1 against the answer; mean.
- **C3 PrivLeak** (``privleak``, closest to 0): Min-K% (k = 0.4) scores of the ``privleak``
  forget and holdout texts (empty prefix, their first ``max_length`` tokens as MUSE does, capped
  at the model's context; ``tokens_dropped`` on ``mia_min_k_auc`` counts the rest); AUC in OU orientation
  (``mia_min_k_auc``, :func:`obliviate.metrics.mia.auc`); PrivLeak against the retrained
  model's AUC (:func:`obliviate.metrics.mia.privleak`). Needs the retrained model's result.
- **C4 utility** (``retain_knowmem``, higher): C2 on ``retain_qa`` with ``retain_qa_icl``.
- **C5 scalability**: unlearn the ``scal`` folds (growing forget sets), each from the target,
  and evaluate C1-C4 after each (:mod:`obliviate.benchmarks.muse_folds`).
- **C6 sustainability**: unlearn the ``sust`` folds one after another, the model after fold k
  being the input of fold k + 1, evaluating after each (same module).

Scales: VerbMem and KnowMem are reported on 0-1 (OU's scale; MUSE's paper multiplies by 100).
ROUGE uses no stemming (MUSE's original code); set ``use_stemmer=True`` for OU's numbers.
The model is run only through :mod:`obliviate.scoring` (``generate``, ``score_pairs``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from obliviate.data.types import QAItem

# Bump when a computation below changes meaning; cached results of another version are stale.
MUSE_EVAL_VERSION = 1

_NO_HOLDOUT = "no holdout documents given (--holdout: the non-members of Min-K% PrivLeak)"
UNAVAILABLE = {  # why a MUSE metric is missing (recorded only for metrics not computed)
    "forget_verbmem": "the forget documents give no VerbMem prompt (one word or none)",
    "forget_knowmem": "the data has no KnowMem questions on the forget set (forget_qa)",
    "retain_knowmem": "the data has no KnowMem questions on the retain set (retain_qa)",
    "mia_min_k_auc": _NO_HOLDOUT,
    "privleak": _NO_HOLDOUT,
}
KNOWMEM_STOPS = ("\n\n", "\nQuestion", "Question:")


@dataclass(frozen=True)
class MuseSettings:
    """Every setting a MUSE number depends on (recorded with the results; docs/metrics.md)."""

    verbmem_max_new_tokens: int = 128
    verbmem_gt_tokens: int = 128
    verbmem_batch_size: int = 8
    knowmem_max_new_tokens: int = 32
    knowmem_batch_size: int = 16
    knowmem_stop: tuple[str, ...] = KNOWMEM_STOPS
    n_icl: int | None = None  # None = every ICL example (as MUSE's eval.py)
    min_k: float = 0.4
    score_batch_size: int = 8
    max_length: int = 2048  # privleak texts are cut to this many tokens (MUSE: 2048)
    use_stemmer: bool = False  # MUSE's original ROUGE; OU stems
    max_items: int | None = None  # cap per evaluated split (None = all; MUSE files hold 100)
    stride: int | None = (
        None  # document perplexity: a window every `stride` tokens (None: no overlap)
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "knowmem_stop", tuple(self.knowmem_stop))
        if not 0 < self.min_k <= 1:
            raise ValueError(f"min_k must be in (0, 1], got {self.min_k}")
        for name in (
            "verbmem_max_new_tokens",
            "verbmem_gt_tokens",
            "knowmem_max_new_tokens",
            "max_length",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.stride is not None and self.stride < 1:
            raise ValueError(f"stride must be >= 1 token, got {self.stride}")


# ----------------------------------------------------------------------------- pure metrics


def knowmem_prompt(icl: Sequence[tuple[str, str]], question: str) -> str:
    """MUSE's few-shot KnowMem prompt (2407.06460, §3 C2; ``swj0419/muse_bench`` knowmem):
    every ICL example as ``"Question: {q}\\nAnswer: {a}"``, separated by blank lines, then
    ``"Question: {question}\\nAnswer:"``. No ICL examples gives the bare question."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError("knowmem_prompt: the question is empty")
    shots = [f"Question: {q}\nAnswer: {a}" for q, a in icl]
    return "\n\n".join([*shots, f"Question: {question}\nAnswer:"])


def rouge_l_f1(
    generations: Sequence[str], references: Sequence[str], use_stemmer: bool = False
) -> list[float]:
    """Per-item ROUGE-L F1 = 2PR/(P + R) of the longest common subsequence (Lin 2004), via
    :func:`obliviate.metrics.rouge.rouge_scores`; an empty text scores 0."""
    from obliviate.metrics.rouge import rouge_scores

    return [s["rouge_l_f1"] for s in rouge_scores(generations, references, use_stemmer=use_stemmer)]


def verbmem_score(
    generations: Sequence[str], gts: Sequence[str], use_stemmer: bool = False
) -> float:
    """MUSE C1 VerbMem (2407.06460, §3, "no verbatim memorisation"): mean ROUGE-L F1 of the
    continuations against the (128-token truncated) ground truths, on 0-1. Raises if empty."""
    if len(generations) == 0:
        raise ValueError("VerbMem needs at least one prompt")
    return float(np.mean(rouge_l_f1(generations, gts, use_stemmer)))


def knowmem_score(
    generations: Sequence[str], answers: Sequence[str], use_stemmer: bool = False
) -> float:
    """MUSE C2/C4 KnowMem (2407.06460, §3): mean ROUGE-L F1 of the (stop-cut) answers to the
    few-shot questions against the gold answers, on 0-1. Raises if empty."""
    if len(generations) == 0:
        raise ValueError("KnowMem needs at least one question")
    return float(np.mean(rouge_l_f1(generations, answers, use_stemmer)))


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    """The text before the first occurrence of any stop string, stripped (docs/metrics.md)."""
    for s in stops:
        text = text.split(s)[0]
    return text.strip()


def truncate_to_tokens(tokenizer: Any, text: str, n: int) -> str:
    """``text`` cut to its first ``n`` tokens (MUSE truncates ``gt`` to 128 tokens before ROUGE).

    Unchanged when it is not longer; otherwise the kept ids are decoded (this text is only a
    ROUGE reference, never trained on)."""
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    if len(ids) <= n:
        return text
    return tokenizer.decode(ids[:n], skip_special_tokens=True)


# ----------------------------------------------------------------------------- evaluation


def muse_data_hash(data: Any) -> str:
    """Content hash of everything the evaluation reads (keys cached results)."""
    h = hashlib.sha256()
    parts = (
        [("verbmem", data.verbmem)]
        + sorted(data.knowmem.items())
        + sorted((f"privleak/{k}", v) for k, v in data.privleak.items())
    )
    for name, items in parts:
        for it in items:
            h.update(json.dumps([name, it.question, it.answer]).encode())
    return "sha256:" + h.hexdigest()[:16]


def muse_key(data: Any, settings: MuseSettings, fingerprint: str) -> dict[str, Any]:
    from obliviate.metrics.lookups import metric_versions

    return {
        "eval_version": MUSE_EVAL_VERSION,
        "benchmark": "muse",
        "model": fingerprint,
        "data": muse_data_hash(data),
        "settings": asdict(settings),
        "metric_versions": metric_versions(),
    }


def _cap(items: list[QAItem], settings: MuseSettings) -> list[QAItem]:
    return items if settings.max_items is None else items[: settings.max_items]


def _set(result: Any, values: dict[str, float]) -> None:
    """Record values with their catalogue direction, version and ideal
    (:mod:`obliviate.metrics.catalogue`; ``mia_min_k_auc`` and ``privleak`` are TOFU's)."""
    from obliviate.metrics import metric_result

    for k, v in values.items():
        result.metrics[k] = metric_result(k, v).to_dict()


def evaluate_muse(
    model: Any,
    tokenizer: Any,
    data: Any,
    settings: MuseSettings | None = None,
    reference: Any = None,
    fingerprint: str = "unknown",
    progress: bool = False,
) -> Any:
    """C1-C4 of one model on a :class:`~obliviate.data.muse.MuseData`, as an
    :class:`obliviate.evaluation.EvalResult` (metrics ``forget_verbmem``, ``forget_knowmem``,
    ``retain_knowmem``, ``mia_min_k_auc``, and ``privleak`` when the retrained model's result is
    given as ``reference``; per-sample rows with the generations and MIA scores).

    Parts whose data is absent are skipped (e.g. no ``verbmem`` config loaded).
    """
    from obliviate.data.templates import PromptTemplate
    from obliviate.evaluation import EvalResult
    from obliviate.metrics import mia
    from obliviate.scoring import context_length, generate, score_pairs

    settings = settings or MuseSettings()
    raw = PromptTemplate("raw")
    limit = context_length(model, settings.max_length)
    samples: list[dict[str, Any]] = []
    values: dict[str, float] = {}
    timing: dict[str, float] = {}

    t0 = time.perf_counter()
    verb = _cap(data.verbmem, settings)
    if verb:
        room = max(1, limit - settings.verbmem_max_new_tokens)
        gens = generate(
            model,
            tokenizer,
            [it.question for it in verb],
            raw,
            max_new_tokens=settings.verbmem_max_new_tokens,
            batch_size=settings.verbmem_batch_size,
            max_length=room,
            progress=progress,
            desc="verbmem",
        )
        gts = [truncate_to_tokens(tokenizer, it.answer, settings.verbmem_gt_tokens) for it in verb]
        scores = rouge_l_f1(gens, gts, settings.use_stemmer)
        values["forget_verbmem"] = float(np.mean(scores))
        samples += [
            {
                "split": "verbmem",
                "index": i,
                "prompt": it.question,
                "answer": gt,
                "generation": g,
                "rouge_l_f1": s,
            }
            for i, (it, gt, g, s) in enumerate(zip(verb, gts, gens, scores))
        ]
    timing["verbmem_s"] = round(time.perf_counter() - t0, 3)

    t0 = time.perf_counter()
    for side in ("forget", "retain"):
        qa = _cap(data.knowmem.get(f"{side}_qa", []), settings)
        if not qa:
            continue
        icl = [(x.question, x.answer) for x in data.knowmem.get(f"{side}_qa_icl", [])]
        icl = icl if settings.n_icl is None else icl[: settings.n_icl]
        prompts = [knowmem_prompt(icl, it.question) for it in qa]
        room = max(1, limit - settings.knowmem_max_new_tokens)
        gens = generate(
            model,
            tokenizer,
            prompts,
            raw,
            max_new_tokens=settings.knowmem_max_new_tokens,
            batch_size=settings.knowmem_batch_size,
            max_length=room,
            progress=progress,
            desc=f"knowmem {side}",
            stop_strings=settings.knowmem_stop,
        )
        gens = [cut_at_stops(g, settings.knowmem_stop) for g in gens]
        scores = rouge_l_f1(gens, [it.answer for it in qa], settings.use_stemmer)
        values[f"{side}_knowmem"] = float(np.mean(scores))
        samples += [
            {
                "split": f"{side}_qa",
                "index": i,
                "question": it.question,
                "answer": it.answer,
                "generation": g,
                "rouge_l_f1": s,
            }
            for i, (it, g, s) in enumerate(zip(qa, gens, scores))
        ]
    timing["knowmem_s"] = round(time.perf_counter() - t0, 3)

    t0 = time.perf_counter()
    dropped = 0  # privleak tokens beyond the context (MUSE scores each text's first tokens)
    if data.privleak.get("forget") and data.privleak.get("holdout"):
        mk: dict[str, list[float]] = {}
        for side in ("forget", "holdout"):
            items = _cap(data.privleak[side], settings)
            scored = score_pairs(
                model,
                tokenizer,
                [("", it.answer) for it in items],
                raw,
                batch_size=settings.score_batch_size,
                max_length=limit,
                progress=progress,
                desc=f"privleak {side}",
            )
            mk[side] = [
                mia.min_k_score(s.token_logprobs, settings.min_k, has_eos=s.has_eos) for s in scored
            ]
            dropped += sum(getattr(s, "cut", 0) for s in scored)
            samples += [
                {
                    "split": f"privleak_{side}",
                    "index": i,
                    "n_tokens": s.n,
                    "nll": s.nll_avg(include_eos=False),
                    "mia_min_k": m,
                }
                for i, (s, m) in enumerate(zip(scored, mk[side]))
            ]
        values["mia_min_k_auc"] = mia.auc(mk["forget"], mk["holdout"])
    timing["privleak_s"] = round(time.perf_counter() - t0, 3)

    result = EvalResult({}, samples, muse_key(data, settings, fingerprint), timing)
    _set(result, values)
    if dropped and "mia_min_k_auc" in result.metrics:
        result.metrics["mia_min_k_auc"]["tokens_dropped"] = dropped
    reasons = dict(UNAVAILABLE)
    if "mia_min_k_auc" in result.metrics:
        del reasons["privleak"]  # the holdout is there: privleak lacks only the reference
    result.set_unavailable(reasons)
    if reference is not None:
        add_privleak(result, reference)
    else:
        from obliviate.evaluation import NO_RETAIN_MODEL

        result.set_unavailable({"privleak": NO_RETAIN_MODEL})
    return result


def add_privleak(result: Any, reference: Any) -> None:
    """Add ``privleak`` of ``result`` against the retrained model's ``reference`` result
    (which may be ``result`` itself: PrivLeak = 0 for the retrained model). The two must come
    from the same data and settings; a mismatch is an error (docs/metrics.md)."""
    from obliviate.interop.open_unlearning import check_reference, is_imported
    from obliviate.metrics import mia

    fields = () if is_imported(reference) else ("eval_version", "benchmark", "data", "settings")
    diff = [k for k in fields if result.key.get(k) != reference.key.get(k)]
    if is_imported(reference):
        check_reference(result, reference)
    if diff:
        raise ValueError(
            "the retrained model's MUSE results are not comparable with this "
            f"evaluation (they differ in {', '.join(diff)}); evaluate it with the "
            "same data and settings"
        )
    if "mia_min_k_auc" not in result.metrics or "mia_min_k_auc" not in reference.metrics:
        return
    pl = mia.privleak(
        result.metrics["mia_min_k_auc"]["value"], reference.metrics["mia_min_k_auc"]["value"]
    )
    _set(result, {"privleak": pl})
    result.unavailable.pop("privleak", None)


# ----------------------------------------------------------------------------- unlearning


def _document_job_class() -> type:
    from obliviate.methods.base import UnlearnJob

    class DocumentJob(UnlearnJob):
        """An :class:`~obliviate.methods.base.UnlearnJob` whose items are encoded with
        :func:`obliviate.data.muse.encode_documents`: documents longer than the training
        ``max_length`` are cut into windows instead of being truncated."""

        def encode_items(self, items: list[QAItem], max_length: int = 512) -> list[Any]:
            from obliviate.data.muse import encode_documents

            return encode_documents(self.tokenizer, items, max_length, self.template, self.stride)

    return DocumentJob


def __getattr__(name: str) -> Any:
    # DocumentJob subclasses UnlearnJob (torch); built on first use so importing stays light
    if name == "DocumentJob":
        cls = _document_job_class()
        globals()["DocumentJob"] = cls
        return cls
    raise AttributeError(name)


def document_job(
    model: Any,
    tokenizer: Any,
    request: Any,
    run_dir: Path | None = None,
    progress: bool = False,
    accelerator: Any = None,
) -> Any:
    """A :class:`DocumentJob` (documents cut into windows) with the ``qa`` template."""
    from obliviate.data.templates import PromptTemplate

    job_class = globals().get("DocumentJob") or __getattr__("DocumentJob")
    return job_class(
        model, tokenizer, request, PromptTemplate("qa"), run_dir, accelerator, progress
    )


def unlearn_documents(
    model: Any,
    tokenizer: Any,
    method: str,
    request: Any,
    overrides: dict[str, Any] | None = None,
    run_dir: Path | None = None,
    progress: bool = False,
) -> Any:
    """Run a registered method on a document request; returns its ``UnlearnOutput``."""
    from obliviate.methods.base import build_method

    job = document_job(model, tokenizer, request, run_dir, progress)
    return build_method(method, overrides).unlearn(job)


# the six-way table is rendered by obliviate.reporting.render (one renderer for every recipe)
