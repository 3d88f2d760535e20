"""The evaluation engine for QA unlearning benchmarks (the TOFU suite, docs/metrics.md).

All teacher-forced metrics come from ONE scoring pass over every (question, answer-variant)
pair the suite needs (answers, paraphrased answers, perturbed answers, holdout answers;
identical pairs scored once); all ROUGE metrics from ONE batched greedy generation pass. Metrics
are then pure functions (``obliviate.metrics``) over the per-token arrays.

Forget quality and privleak need the retain model's per-sample results on the same data, with
the same template and settings: pass its :class:`EvalResult` as ``reference``; a mismatch is an
error, never a silent None (docs/metrics.md).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from obliviate.data.spans import item_spans
from obliviate.data.templates import PromptTemplate
from obliviate.data.types import QAItem, UnlearningRequest
from obliviate.metrics import memorisation as mem
from obliviate.metrics import metric_result, mia
from obliviate.metrics import tofu as tm
from obliviate.metrics.rouge import rouge_scores
from obliviate.span_eval import has_spans, span_metrics

# Bump when any computation below changes meaning; cached results with another version are
# never reused (docs/metrics.md). 2: prompt and answer tokenised together (answer span by
# character offsets), which changes the scored tokens of SentencePiece-style tokenizers.
# 3: each distinct prompt run once for all its answers (obliviate.shared_prompts): the same
# log-probabilities up to float rounding (about 1e-6), so results of version 2 are not reused.
# 4: the answers of one prompt pass batched by length (other float rounding, as in 3).
EVAL_VERSION = 4

MIA_ATTACKS = mia.TOKEN_ATTACKS


@dataclass(frozen=True)
class EvalSettings:
    """Settings every number depends on; all recorded with the results."""

    batch_size: int = 32
    max_new_tokens: int = 200  # TOFU ROUGE generation (docs/metrics.md)
    max_length: int = 512
    min_k: float = 0.4
    use_stemmer: bool = True
    generate: bool = True
    # which splits feed model utility; None = every available one of retain/real_authors/world_facts
    utility_splits: tuple[str, ...] | None = None
    # who runs greedy generation (obliviate.generation): auto, loop, hf or vllm
    generation_backend: str = "auto"
    # rows per generation batch; None: as many as a 1 GiB KV cache holds (generation.cache_rows)
    generation_batch_size: int | None = None

    def __post_init__(self) -> None:
        from obliviate.generation import GENERATION_BACKENDS

        known = ["auto", *sorted(GENERATION_BACKENDS)]
        if self.generation_backend not in known:
            raise ValueError(
                f"evaluation setting generation_backend={self.generation_backend!r}: choose one "
                f"of {', '.join(known)}"
            )
        for name in ("batch_size", "max_new_tokens", "max_length", "generation_batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"evaluation setting {name}={getattr(self, name)!r}: must be >= 1")
        if not 0 < self.min_k <= 1:
            raise ValueError(
                f"evaluation setting min_k={self.min_k!r}: must be in (0, 1] (a fraction of "
                "the answer tokens, e.g. 0.4)"
            )


@dataclass
class EvalResult:
    """Aggregates (``metrics``: name -> {value, direction, version}), per-sample rows, the
    metrics of the suite that could not be computed (``unavailable``: name -> the reason) and
    ``notes`` on the inputs (e.g. texts cut to ``max_length``)."""

    metrics: dict[str, dict[str, Any]]
    samples: list[dict[str, Any]]
    key: dict[str, Any]
    timing: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def set_unavailable(self, reasons: dict[str, str]) -> None:
        """Record why metrics were not computed; a computed metric is never listed, and the
        first reason given for a name is kept (the most specific one)."""
        for name, reason in reasons.items():
            if name not in self.metrics:
                self.unavailable.setdefault(name, reason)

    def values(self) -> dict[str, float]:
        return {k: v["value"] for k, v in self.metrics.items()}

    def column(self, split: str, key: str) -> list[Any]:
        return [s.get(key) for s in self.samples if s["split"] == split]


def data_hash(request: UnlearningRequest) -> str:
    """Content hash of every evaluated item (keys cached results)."""
    h = hashlib.sha256()
    for split in sorted(request.eval):
        for it in request.eval[split]:
            h.update(
                json.dumps(
                    [
                        split,
                        it.question,
                        it.answer,
                        it.paraphrased_answer,
                        list(it.perturbed_answers),
                        it.paraphrased_question,
                        *([list(spans)] if (spans := item_spans(it.meta)) else []),
                    ]
                ).encode()
            )
    return "sha256:" + h.hexdigest()[:16]


def eval_key(
    request: UnlearningRequest, template: PromptTemplate, settings: EvalSettings, fingerprint: str
) -> dict[str, Any]:
    """Everything a number depends on: the model's content fingerprint (every weight byte and
    the tokenizer, :mod:`obliviate.models.fingerprint`), the data, the template, the settings
    and the versions of the evaluation code and of every metric definition."""
    from obliviate.metrics.lookups import metric_versions

    key = {
        "eval_version": EVAL_VERSION,
        "model": fingerprint,
        "data": data_hash(request),
        "template": asdict(template),
        "settings": _settings_key(settings),
        "metric_versions": metric_versions(),
    }
    return json.loads(json.dumps(key))  # the form it has once stored (tuples -> lists)


def _settings_key(settings: EvalSettings) -> dict[str, Any]:
    """The settings as keyed: the default generation backend and batch size are left out
    (backends and batch sizes return the same tokens, docs/metrics.md), so results keyed before
    they existed still match."""
    out = asdict(settings)
    if out.get("generation_backend") == "auto":
        del out["generation_backend"]
    if out.get("generation_batch_size") is None:
        del out["generation_batch_size"]
    return out


def _compatible(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The key fields (other than the model) in which two evaluations differ."""
    fields = ("eval_version", "data", "template", "settings", "metric_versions")
    return [k for k in fields if a.get(k) != b.get(k)]


def _pairs_for(split: str, items: list[QAItem]) -> list[tuple[str, str]]:
    pairs = []
    for it in items:
        pairs.append((it.question, it.answer))
        if it.paraphrased_answer:
            pairs.append((it.question, it.paraphrased_answer))
        pairs.extend((it.question, p) for p in it.perturbed_answers)
    return pairs


def evaluate_model(
    model: Any,
    tokenizer: Any,
    request: UnlearningRequest,
    template: PromptTemplate | None = None,
    settings: EvalSettings | None = None,
    reference: EvalResult | None = None,
    fingerprint: str = "unknown",
    progress: bool = True,
) -> EvalResult:
    """Evaluate a model (or any model-like wrapper) on the request's eval splits.

    Splits used when present: ``forget`` (needs paraphrased + perturbed answers for the truth
    ratio), ``retain``, ``holdout`` (MIA non-members), ``real_authors``, ``world_facts``.
    """
    from obliviate.generation import cache_rows
    from obliviate.scoring import generate, greedy_prefixes, score_pairs

    template = template or PromptTemplate()
    settings = settings or EvalSettings()
    splits = {k: v for k, v in request.eval.items() if v}
    if "forget" not in splits:
        raise ValueError("evaluation needs a 'forget' eval split (e.g. forget10_perturbed)")
    key = eval_key(request, template, settings, fingerprint)

    t0 = time.perf_counter()
    all_pairs = [p for split, items in splits.items() for p in _pairs_for(split, items)]
    kw: dict[str, Any] = {"max_length": settings.max_length, "progress": progress}
    scored = score_pairs(
        model, tokenizer, all_pairs, template, batch_size=settings.batch_size,
        share_prompts=True, **kw,
    )  # fmt: skip
    scores = dict(zip(all_pairs, scored))
    t_score = time.perf_counter() - t0

    gen_questions: list[str] = []
    if settings.generate:
        for split in ("forget", "retain", "real_authors", "world_facts"):
            for it in splits.get(split, []):
                gen_questions.append(it.question)
                if split == "forget" and it.paraphrased_question:
                    gen_questions.append(it.paraphrased_question)
    t1 = time.perf_counter()
    # greedy answers are read off the scoring pass as far as it reaches; one wide batch
    asked = set(gen_questions)
    known = greedy_prefixes(
        tokenizer, template, (p for p in scores if p[0] in asked), scores, settings.max_length
    )
    width = settings.generation_batch_size or cache_rows(
        model, settings.max_length + settings.max_new_tokens, settings.batch_size
    )
    texts = generate(model, tokenizer, gen_questions, template, settings.max_new_tokens, width,
                     backend=settings.generation_backend, known=known, **kw)  # fmt: skip
    gens = dict(zip(gen_questions, texts))
    t_gen = time.perf_counter() - t1

    samples: list[dict[str, Any]] = []
    for split, items in splits.items():
        rows = [_sample_row(split, i, it, scores, gens, settings) for i, it in enumerate(items)]
        samples.extend(rows)
    values = _aggregate(samples, settings)
    if has_spans(splits["forget"]):  # S-MA / S-EL (docs/metrics.md, "Sensitive spans")
        t2 = time.perf_counter()
        rows = [r for r in samples if r["split"] == "forget"]
        values.update(
            span_metrics(model, tokenizer, splits["forget"], scores, rows, template, settings)
        )
        t_gen += time.perf_counter() - t2
    result = EvalResult(
        {}, samples, key, {"score_s": round(t_score, 3), "generate_s": round(t_gen, 3)}
    )
    _set_metrics(result, values)
    result.set_unavailable(unavailable_reasons(splits, settings))
    cut = [s.cut for s in scores.values() if s.cut]
    if cut:
        result.notes.append(
            f"{len(cut)} of {len(scores)} scored texts were longer than max_length="
            f"{settings.max_length} tokens and lost {sum(cut)} tokens; raise it with --set "
            "max_length=N, or score long documents in windows with --benchmark documents"
        )
    if reference is not None:
        add_reference_metrics(result, reference)
    else:
        result.set_unavailable({n: NO_RETAIN_MODEL for n in REFERENCE_METRICS})
    return result


def _set_metrics(result: EvalResult, values: dict[str, float]) -> None:
    """Record values with the direction, version and ideal of their catalogue entries
    (:mod:`obliviate.metrics.catalogue`); an unregistered name raises."""
    for k, v in values.items():
        result.metrics[k] = metric_result(k, v).to_dict()


def add_reference_metrics(result: EvalResult, reference: EvalResult) -> None:
    """Add forget quality and privleak of ``result`` against the retain model's ``reference``
    (which may be ``result`` itself, giving FQ = 1 and privleak = 0 for the oracle). An
    open-unlearning log read by :func:`obliviate.interop.open_unlearning.read_log` is checked
    by its sample counts (it has no evaluation key)."""
    from obliviate.interop.open_unlearning import check_reference, is_imported

    diff = [] if is_imported(reference) else _compatible(reference.key, result.key)
    if is_imported(reference):
        check_reference(result, reference)
    if diff:
        raise ValueError(
            "the retain model's results are not comparable with this evaluation (they differ "
            f"in {', '.join(diff)}); re-evaluate the retain model with the same data and settings"
        )
    out: dict[str, float] = {}
    f_tr = [t for t in result.column("forget", "truth_ratio") if t is not None]
    ref_tr = [t for t in reference.column("forget", "truth_ratio") if t is not None]
    if f_tr and ref_tr:
        out["forget_quality"] = tm.forget_quality(f_tr, ref_tr)
    pls = mia.privleak_by_attack(_aucs(result), _aucs(reference))
    out.update({mia.privleak_name(a): pl for a, pl in pls.items() if pl is not None})
    _set_metrics(result, out)
    for name in out:
        result.unavailable.pop(name, None)
    if "forget_quality" not in out and f_tr:
        result.set_unavailable(
            {"forget_quality": "the retain model's results have no truth ratios"}
        )
    if is_imported(reference):  # a log without an attack's AUC: say so, never drop silently
        f = reference.key.get("file")
        result.set_unavailable(
            {mia.privleak_name(a): f"{f} has no mia_{a}" for a in MIA_ATTACKS if a in _aucs(result)}
        )
    if reference.unavailable.get("mia_min_k_auc") and "privleak" not in out:
        result.set_unavailable(
            {mia.privleak_name(a): reference.unavailable["mia_min_k_auc"] for a in MIA_ATTACKS}
        )


NO_RETAIN_MODEL = "no retain model given (--retain-model)"
# the TOFU suite's metrics that need the retain model's results
REFERENCE_METRICS = ("forget_quality", *(mia.privleak_name(a) for a in MIA_ATTACKS))
_MIA_AUCS = tuple(f"mia_{a}_auc" for a in MIA_ATTACKS)
_ROUGES = ("forget_rouge", "forget_paraphrased_rouge", "retain_rouge")


def expected_metrics() -> tuple[str, ...]:
    """The metrics a full evaluation of the TOFU suite on a forget / retain / holdout request
    records (``real_authors_*`` and ``world_facts_*`` come in addition when those splits exist);
    each one is either computed or listed in :attr:`EvalResult.unavailable` with its reason."""
    return (
        "forget_quality",
        "model_utility",
        "forget_prob",
        "forget_paraphrased_prob",
        "forget_truth_ratio",
        "forget_exact_memorisation",
        "forget_extraction_strength",
        *_ROUGES,
        "retain_prob",
        "retain_truth_ratio",
        *_MIA_AUCS,
        *REFERENCE_METRICS,
    )


def unavailable_reasons(splits: dict[str, list[QAItem]], settings: EvalSettings) -> dict[str, str]:
    """Why metrics of the suite cannot be computed on these splits with these settings (the
    first reason for a name wins: the most specific comes first)."""
    out: dict[str, str] = {}
    forget = splits.get("forget", [])
    if not any(it.perturbed_answers for it in forget):
        why = "the forget set has no perturbed answers (field perturbed_answer)"
        out.update(forget_truth_ratio=why, forget_quality=why)
    if not any(it.paraphrased_answer for it in forget):
        why = "the forget set has no paraphrased answers (field paraphrased_answer)"
        out["forget_paraphrased_prob"] = why
        out.setdefault("forget_truth_ratio", why)
        out.setdefault("forget_quality", why)
    if not settings.generate:
        out.update({n: "generation is off (generate=False)" for n in _ROUGES})
    if not any(it.paraphrased_question for it in forget):
        out.setdefault(
            "forget_paraphrased_rouge",
            "the forget set has no paraphrased questions (field paraphrased_question)",
        )
    if not splits.get("retain"):
        why = "no retain set given (--retain)"
        out.update(retain_prob=why, retain_rouge=why, retain_truth_ratio=why)
    elif not any(it.perturbed_answers and it.paraphrased_answer for it in splits["retain"]):
        out["retain_truth_ratio"] = "the retain set has no perturbed and paraphrased answers"
    if not any(splits.get(s) for s in ("retain", "real_authors", "world_facts")):
        out["model_utility"] = "no retain set given (--retain)"
    if not splits.get("holdout"):
        why = "no holdout set given (--holdout: the non-members of the MIA attacks)"
        out.update({n: why for n in (*_MIA_AUCS, *REFERENCE_METRICS[1:])})
    return out


def _aucs(result: EvalResult) -> dict[str, float]:
    """The MIA AUCs of an evaluation, ``{attack: AUC}``."""
    return {
        a: result.metrics[f"mia_{a}_auc"]["value"]
        for a in MIA_ATTACKS
        if f"mia_{a}_auc" in result.metrics
    }


def _sample_row(
    split: str, index: int, it: QAItem, scores: dict, gens: dict[str, str], settings: EvalSettings
) -> dict[str, Any]:
    s = scores[(it.question, it.answer)]
    nll = s.nll_avg(include_eos=True)
    row: dict[str, Any] = {
        "split": split,
        "index": index,
        "question": it.question,
        "answer": it.answer,
        "nll": nll,
        "prob": tm.probability(nll) if math.isfinite(nll) else 0.0,
    }
    if it.question in gens:
        row["generation"] = gens[it.question]
    if split in ("forget", "holdout"):
        row["exact_memorisation"] = mem.exact_memorisation(s.correct, has_eos=s.has_eos)
        row["extraction_strength"] = mem.extraction_strength(s.correct, has_eos=s.has_eos)
        attacks = mia.token_attack_scores(
            nll, it.answer, s.token_logprobs, s.mu, s.sigma2, settings.min_k, has_eos=s.has_eos
        )
        row.update({f"mia_{a}": v for a, v in attacks.items()})
    if it.perturbed_answers:
        wrong = [scores[(it.question, p)].nll_avg() for p in it.perturbed_answers]
        if split in ("real_authors", "world_facts"):
            # TR with the answer itself as the "correct" side; normalised probability
            row["truth_ratio"] = tm.truth_ratio(nll, wrong)
            row["normalised_prob"] = tm.normalised_probability(
                row["prob"], [math.exp(-w) for w in wrong]
            )
        elif it.paraphrased_answer:
            pn = scores[(it.question, it.paraphrased_answer)].nll_avg()
            row["paraphrased_prob"] = math.exp(-pn)
            row["truth_ratio"] = tm.truth_ratio(pn, wrong)
    if it.paraphrased_question and it.paraphrased_question in gens:
        row["paraphrased_generation"] = gens[it.paraphrased_question]
    return row


def _add_rouge(samples: list[dict[str, Any]], settings: EvalSettings) -> None:
    todo = [(r, "generation", "") for r in samples if "generation" in r]
    todo += [
        (r, "paraphrased_generation", "paraphrased_")
        for r in samples
        if "paraphrased_generation" in r
    ]
    if not todo:
        return
    scores = rouge_scores(
        [r[k] for r, k, _ in todo],
        [r["answer"] for r, _, _ in todo],
        use_stemmer=settings.use_stemmer,
    )
    for (row, _, prefix), sc in zip(todo, scores):
        row[f"{prefix}rouge_l_recall"] = sc["rouge_l_recall"]
        if not prefix:
            row["rouge_l_f1"] = sc["rouge_l_f1"]
            row["rouge1_recall"] = sc["rouge1_recall"]


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(vals)) if vals else None


def _aggregate(samples: list[dict[str, Any]], settings: EvalSettings) -> dict[str, float]:
    _add_rouge(samples, settings)
    by: dict[str, list[dict[str, Any]]] = {}
    for r in samples:
        by.setdefault(r["split"], []).append(r)
    out: dict[str, float] = {}
    f = by["forget"]
    out["forget_prob"] = _mean(f, "prob")  # type: ignore[assignment]
    for key, name in (
        ("paraphrased_prob", "forget_paraphrased_prob"),
        ("rouge_l_recall", "forget_rouge"),
        ("paraphrased_rouge_l_recall", "forget_paraphrased_rouge"),
        ("exact_memorisation", "forget_exact_memorisation"),
        ("extraction_strength", "forget_extraction_strength"),
    ):
        v = _mean(f, key)
        if v is not None:
            out[name] = v
    f_tr = [r["truth_ratio"] for r in f if "truth_ratio" in r]
    if f_tr:
        out["forget_truth_ratio"] = tm.truth_ratio_forget(f_tr)
    utility: dict[str, float] = {}
    for split in ("retain", "real_authors", "world_facts"):
        rows = by.get(split)
        if not rows:
            continue
        prob_key = "normalised_prob" if split != "retain" else "prob"
        vals = {"prob": _mean(rows, prob_key), "rouge": _mean(rows, "rouge_l_recall")}
        trs = [r["truth_ratio"] for r in rows if "truth_ratio" in r]
        if trs:
            vals["truth_ratio"] = tm.truth_ratio_true_better(trs)
        for k, v in vals.items():
            if v is not None:
                out[f"{split}_{k}"] = v
                if settings.utility_splits is None or split in settings.utility_splits:
                    utility[f"{split}_{k}"] = v
    if utility:
        out["model_utility"] = tm.model_utility(utility)
    if by.get("holdout"):
        rows = f + by["holdout"]
        aucs = mia.attack_aucs({a: [r[f"mia_{a}"] for r in rows] for a in MIA_ATTACKS}, len(f))
        out.update({f"mia_{a}_auc": v for a, v in aucs.items()})
    return {k: float(v) for k, v in out.items() if v is not None}
