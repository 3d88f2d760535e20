"""The Python API. The CLI is a thin layer over these functions.

- :func:`finetune` trains a target (on ``full``) or retain model (on ``retainNN``), or the tiny
  CPU default from scratch.
- :func:`unlearn` applies a registered method to a model and saves the result.
- :func:`evaluate` runs the benchmark's metric suite, evaluating and caching the retain model's
  results for forget quality and privleak.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from obliviate.data.templates import PromptTemplate
from obliviate.data.types import QAItem, UnlearningRequest

# Fine-tuning defaults. Real models: TOFU's target recipe (docs/methods.md, lr 1e-5, 5 epochs,
# warm-up 1 epoch). Tiny models trained from scratch: the recipe measured on 2 CPU cores (docs/methods.md).
REAL_FINETUNE = {
    "lr": 1e-5,
    "epochs": 5,
    "batch_size": 32,
    "warmup_epochs": 1.0,
    "weight_decay": 0.01,
}
TINY_FINETUNE = {
    "lr": 3e-3,
    "epochs": 15,
    "batch_size": 32,
    "warmup_epochs": 0.5,
    "scheduler": "cosine",
    "weight_decay": 0.01,
}


# ----------------------------------------------------------------------------- data

TOFU_CONFIGS = (
    "full",
    "forget01",
    "forget05",
    "forget10",
    "retain99",
    "retain95",
    "retain90",
    "forget01_perturbed",
    "forget05_perturbed",
    "forget10_perturbed",
    "retain_perturbed",
    "holdout01",
    "holdout05",
    "holdout10",
    "real_authors",
    "real_authors_perturbed",
    "world_facts",
    "world_facts_perturbed",
)


def load_request(
    data: str | None = None,
    split: str | None = None,
    forget: Any = None,
    retain: Any = None,
    holdout: Any = None,
    builtin: dict[str, Any] | None = None,
    benchmark: str | None = None,
    revision: str | None = None,
) -> UnlearningRequest:
    """The forget/retain/holdout request of a registered benchmark (``obliviate ls
    benchmarks``): ``tofu`` (``data`` = "builtin", a TOFU folder or "locuslab/TOFU"; the
    default), ``builtin-muse``, ``muse-news``... or, when ``forget`` is given, the user's own
    files (``qa``, or ``documents`` for plain text)."""
    return load_suite(
        benchmark, data, split, forget, retain, holdout, builtin, revision=revision
    ).request


def load_suite(
    benchmark: str | None = None,
    data: str | None = None,
    split: str | None = None,
    forget: Any = None,
    retain: Any = None,
    holdout: Any = None,
    builtin: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    template: str = "qa",
    revision: str | None = None,
) -> Any:
    """A benchmark entry's loaded :class:`~obliviate.benchmarks.suites.Suite` (its request and
    metric suite). Without ``benchmark``: ``qa`` when ``forget`` is given, else ``tofu``."""
    from obliviate.benchmarks import default_benchmark, get_benchmark
    from obliviate.data.files import check_distinct_sources

    check_distinct_sources({"--forget": forget, "--retain": retain, "--holdout": holdout})
    spec = get_benchmark(benchmark or default_benchmark(forget))
    return spec.build(
        data,
        split,
        forget=forget,
        retain=retain,
        holdout=holdout,
        builtin=builtin,
        settings=settings,
        template=template,
        revision=revision,
    )


def training_items(data: str, split: str, builtin: dict[str, Any] | None = None) -> list[QAItem]:
    """Items of one training config (``full``, ``retain90``...) or of a user file."""
    p = Path(data)
    if p.is_file() or (p.is_dir() and not _looks_like_tofu(p)):
        from obliviate.data.files import load_qa_file

        return load_qa_file(data)
    from obliviate.data.files import parse_qa_row
    from obliviate.data.tofu import load_tofu_configs

    rows = load_tofu_configs(data, [split], **(builtin or {}))[split]
    return [parse_qa_row(r, f"{data} {split}: row {i}") for i, r in enumerate(rows, start=1)]


def _looks_like_tofu(folder: Path) -> bool:
    return any((folder / f"full{ext}").exists() for ext in (".jsonl", ".json"))


def _training_corpus(data: str, items: list[QAItem], builtin: dict[str, Any] | None) -> list[str]:
    """Tokenizer training text: every text of a benchmark, or of the user's own file."""
    p = Path(data)
    if p.is_file() or (p.is_dir() and not _looks_like_tofu(p)):
        texts = [t for it in items for t in (it.question, it.answer, *it.perturbed_answers) if t]
        texts += [t for it in items for t in (it.paraphrased_answer, it.paraphrased_question) if t]
        return list(dict.fromkeys(texts))
    return corpus_text(data, builtin)


def corpus_text(data: str, builtin: dict[str, Any] | None = None) -> list[str]:
    """Every text of a benchmark (all configs, answers and their variants): tokenizer training."""
    from obliviate.data.tofu import load_tofu_configs

    rows = load_tofu_configs(data, TOFU_CONFIGS, optional=TOFU_CONFIGS, **(builtin or {}))
    texts: dict[str, None] = {}
    for config_rows in rows.values():
        for r in config_rows:
            for k in ("question", "answer", "paraphrased_answer", "paraphrased_question"):
                if isinstance(r.get(k), str):
                    texts.setdefault(r[k], None)
            for p in r.get("perturbed_answer") or []:
                texts.setdefault(p, None)
    if not texts:
        raise ValueError(f"{data}: no text found to train a tokenizer on")
    return list(texts)


# ----------------------------------------------------------------------------- finetune


@dataclass
class FinetuneResult:
    path: Path
    train_log: list[dict[str, float]]
    wall_s: float
    params: int


def finetune(
    data: str = "builtin",
    split: str = "full",
    out: str | Path = "runs/target",
    model: str | None = None,
    tokenizer: str | None = None,
    size: str = "s",
    train: dict[str, Any] | None = None,
    template: str = "qa",
    builtin: dict[str, Any] | None = None,
    seed: int = 0,
    accelerator: Any = None,
    progress: bool = True,
    trust_remote_code: bool = False,
) -> FinetuneResult:
    """Fine-tune ``model`` (a hub name or folder; ``None`` = the tiny Llama trained from scratch)
    on one config of ``data`` with answer-only loss, and save it under ``out/model``.

    For the tiny default the tokenizer is trained on the benchmark text unless ``tokenizer``
    (a folder) is given: pass the target's tokenizer when training its retain model, so both
    share a vocabulary.
    """
    from obliviate.config import TrainConfig, from_dict, to_dict
    from obliviate.data.collate import pad_id_of
    from obliviate.data.templates import encode
    from obliviate.methods import functional as F
    from obliviate.models.loading import load_model, load_tokenizer
    from obliviate.models.tiny import build_tiny_llama, train_tokenizer
    from obliviate.runs import write_config
    from obliviate.training import get_accelerator, train_loop

    out = Path(out)
    acc = get_accelerator(accelerator)
    items = training_items(data, split, builtin)
    if model is None:
        tok = (
            load_tokenizer(tokenizer)
            if tokenizer
            else train_tokenizer(_training_corpus(data, items, builtin))
        )
        net = build_tiny_llama(tok, size=size, seed=seed)
        defaults: dict[str, Any] = TINY_FINETUNE
    else:
        from obliviate.runs import resolve_model_dir

        model = resolve_model_dir(model)
        tok = load_tokenizer(tokenizer or model, trust_remote_code)
        net = load_model(model, trust_remote_code=trust_remote_code)
        defaults = REAL_FINETUNE
    cfg = from_dict(TrainConfig, {**defaults, "seed": seed, **(train or {})}, "train")
    tmpl = PromptTemplate(template)
    enc = [encode(tok, it.question, it.answer, tmpl, cfg.max_length) for it in items]

    def loss_fn(m: Any, batch: dict, _rb: Any, _step: int) -> tuple[Any, dict[str, float]]:
        logits = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return F.nll_loss(logits, batch["labels"]), {}

    t0 = time.perf_counter()
    result = train_loop(
        net,
        loss_fn,
        enc,
        cfg,
        pad_id_of(tok),
        accelerator=acc,
        log_path=out / "train_log.jsonl",
        desc=f"finetune {split}",
        progress=progress,
        checkpoint_dir=out / "checkpoint" if cfg.checkpoint else None,
    )
    if acc.is_main_process:
        acc.unwrap_model(net).save_pretrained(out / "model", safe_serialization=True)
        tok.save_pretrained(out / "model")
        write_config(
            out,
            {
                "command": "finetune",
                "data": data,
                "split": split,
                "model": model or f"tiny-llama-{size}",
                "template": template,
                "builtin": builtin or {},
                "train": to_dict(cfg),
            },
        )
    acc.wait_for_everyone()
    params = sum(p.numel() for p in net.parameters())
    return FinetuneResult(out / "model", result.log, time.perf_counter() - t0, params)


# ----------------------------------------------------------------------------- unlearn


@dataclass
class UnlearnResult:
    path: Path | None
    model: Any
    tokenizer: Any
    config: dict[str, Any]
    train_log: list[dict[str, float]] = field(default_factory=list)
    trainable_params: int = 0
    wall_s: float = 0.0
    stopped: str | None = None


def unlearn(
    model: str,
    method: str = "npo",
    data: str | None = None,
    split: str | None = None,
    forget: Any = None,
    retain: Any = None,
    holdout: Any = None,
    out: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    template: str = "qa",
    builtin: dict[str, Any] | None = None,
    accelerator: Any = None,
    progress: bool = True,
    trust_remote_code: bool = False,
    benchmark: str | None = None,
    revision: str | None = None,
) -> UnlearnResult:
    """Unlearn a forget set from ``model`` (hub name, model folder or run folder) with a
    registered ``method`` (``obliviate ls methods``) and save the result under ``out/model``.

    ``overrides`` follow the method's defaults (``obliviate ls methods NAME``), e.g.
    ``{"alpha": 2.0, "train": {"lr": 1e-4}, "peft": {"r": 8}}``. ``benchmark`` names the
    registered entry whose request is unlearnt (:func:`load_suite`); document benchmarks
    (MUSE, WMDP corpora, plain documents) cut long documents into token windows.
    """
    from obliviate.methods.base import UnlearnJob
    from obliviate.models.loading import load_model, load_tokenizer
    from obliviate.registry import BENCHMARKS, METHODS
    from obliviate.runs import resolve_model_dir, write_config
    from obliviate.training import get_accelerator

    preset = METHODS.get(method)
    if benchmark is not None:
        BENCHMARKS.entry(benchmark)  # unknown name: did-you-mean before any loading
    overrides = dict(overrides or {})
    method_obj = preset.build(overrides)
    suite = load_suite(benchmark, data, split, forget, retain, holdout, builtin, revision=revision)
    request = suite.request
    path = resolve_model_dir(model)
    tok = load_tokenizer(path, trust_remote_code)
    net = load_model(path, trust_remote_code=trust_remote_code)
    acc = get_accelerator(accelerator)
    run_dir = Path(out) if out else None
    job_class: Any = UnlearnJob
    if suite.documents:
        from obliviate.benchmarks.muse import DocumentJob

        job_class = DocumentJob
    job = job_class(net, tok, request, PromptTemplate(template), run_dir, acc, progress, path)
    config = _merge(preset.defaults(), overrides)
    config.update(
        {
            "model": str(model),
            "data": data if forget is None else "custom",
            "split": split if split is not None else suite.split,
            "template": template,
            "world_size": acc.num_processes,
        }
    )
    if benchmark is not None:
        config["benchmark"] = benchmark
    t0 = time.perf_counter()
    output = method_obj.unlearn(job)
    wall = time.perf_counter() - t0
    if run_dir is not None and acc.is_main_process:
        save_unlearned(output.model, tok, run_dir / "model")
        write_config(run_dir, config)
    acc.wait_for_everyone()
    return UnlearnResult(
        run_dir / "model" if run_dir else None,
        output.model,
        tok,
        config,
        output.train_log,
        output.trainable_params,
        wall,
        output.stopped,
    )


def save_unlearned(model: Any, tokenizer: Any, path: Path) -> None:
    """Save a model, a PEFT adapter, or a wrapper that knows how to save itself."""
    model = getattr(model, "module", model)
    if hasattr(model, "save_pretrained"):
        model.save_pretrained(path, safe_serialization=True)
    else:
        raise ValueError(f"cannot save a {type(model).__name__}: it has no save_pretrained")
    tokenizer.save_pretrained(path)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# ----------------------------------------------------------------------------- evaluate


def evaluate(
    model: Any,
    data: str | None = None,
    split: str | None = None,
    retain_model: Any = None,
    out: str | Path | None = None,
    tokenizer: Any = None,
    forget: Any = None,
    retain: Any = None,
    holdout: Any = None,
    template: str = "qa",
    settings: dict[str, Any] | None = None,
    builtin: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
    reuse: bool = True,
    trust_remote_code: bool = False,
    benchmark: str | None = None,
    revision: str | None = None,
) -> Any:
    """Evaluate ``model`` (a path, or an in-memory model with ``tokenizer``) with a registered
    benchmark's metric suite (``benchmark``, default ``tofu``, or ``qa`` for the user's files;
    ``obliviate ls benchmarks``).

    ``retain_model`` (the gold-standard model's folder) enables forget quality and privleak: its
    evaluation is computed once and cached in ``<retain run>/evals/``, keyed by its fingerprint,
    the data, the template and the settings, and recomputed whenever any of them differs.
    Results go to ``out`` (``metrics.json``, ``samples.jsonl``); an existing evaluation with the
    same key is reused (resume), a stale one never.
    """
    from obliviate.models.loading import load_model, load_tokenizer, model_fingerprint
    from obliviate.runs import load_eval, resolve_model_dir, write_eval

    suite = load_suite(
        benchmark, data, split, forget, retain, holdout, builtin, settings, template, revision
    )
    if isinstance(model, (str, Path)):
        path = resolve_model_dir(model)
        fp = model_fingerprint(path)
        net = None
    else:
        path, net, fp = None, model, model_fingerprint(model)
        if tokenizer is None:
            raise ValueError("evaluate(): pass tokenizer= with an in-memory model")
    key = suite.key(fp)
    out_dir = Path(out) if out else None
    reference = None
    if retain_model is not None:
        reference = _retain_reference(retain_model, suite, progress, reuse)
    if out_dir is not None and reuse:
        cached = load_eval(out_dir)
        if cached is not None and cached.key == key:
            if reference is not None:
                suite.add_reference(cached, reference)
            return cached
    if net is None:
        path = cast(str, path)  # set whenever net is None
        tok = load_tokenizer(path, trust_remote_code)
        net = load_model(path, trust_remote_code=trust_remote_code)
    else:
        tok = (
            tokenizer if not isinstance(tokenizer, (str, Path)) else load_tokenizer(str(tokenizer))
        )
    t0 = time.perf_counter()
    result = suite.evaluate(net, tok, reference, fp, progress)
    result.timing["eval_s"] = round(time.perf_counter() - t0, 3)
    if out_dir is not None:
        info = {
            "name": out_dir.name,
            "benchmark": suite.name,
            "split": suite.split,
            "model": {"path": str(path) if path else None, "fingerprint": fp},
        }
        if revision:
            info["revision"] = revision
        info.update(meta or {})
        write_eval(out_dir, result, info)
    return result


def _retain_reference(retain_model: Any, suite: Any, progress: bool, reuse: bool) -> Any:
    """The retain model's evaluation on the same data and settings, cached next to it."""
    from obliviate.evaluation import EvalResult
    from obliviate.models.loading import load_model, load_tokenizer, model_fingerprint
    from obliviate.runs import load_eval, resolve_model_dir, write_eval

    if isinstance(retain_model, EvalResult):
        return retain_model
    path = resolve_model_dir(retain_model)
    fp = model_fingerprint(path)
    key = suite.key(fp)
    tag = key["data"].split(":")[1][:8] + "-" + _short_hash(key)
    cache = Path(path).parent / "evals" / f"{suite.name}-{suite.split}-{tag}"
    if reuse:
        cached = load_eval(cache)
        if cached is not None and cached.key == key:
            return cached
    tok = load_tokenizer(path)
    net = load_model(path)
    result = suite.evaluate(net, tok, None, fp, progress)
    suite.add_reference(result, result)
    write_eval(
        cache,
        result,
        {
            "name": "retain",
            "role": "retain",
            "benchmark": suite.name,
            "split": suite.split,
            "model": {"path": path, "fingerprint": fp},
        },
    )
    return result


def _short_hash(obj: Any) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:10]
