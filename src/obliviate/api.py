"""The Python API. The CLI is a thin layer over these functions.

- :func:`finetune` trains a target (on ``full``) or retain model (on ``retainNN``), or the tiny
  CPU default from scratch.
- :func:`unlearn` applies a registered method to a model and saves the result.
- :func:`evaluate` runs the benchmark's metric suite, evaluating and caching the retain model's
  results for forget quality and privleak.
- :func:`unlearn_seeds` repeats both over several seeds and aggregates (mean, sd, interval).
- :func:`sweep` searches a method's hyper-parameters with Optuna (docs/sweep.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from obliviate.data.options import config_entries, set_stride, suite_options
from obliviate.data.templates import PromptTemplate
from obliviate.data.training_data import TOFU_CONFIGS as TOFU_CONFIGS
from obliviate.data.training_data import corpus_text as corpus_text
from obliviate.data.training_data import training_corpus, training_items
from obliviate.data.types import UnlearningRequest

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


def load_request(
    data: str | None = None,
    split: str | None = None,
    forget: Any = None,
    retain: Any = None,
    holdout: Any = None,
    builtin: dict[str, Any] | None = None,
    benchmark: str | None = None,
    revision: str | None = None,
    **options: Any,
) -> UnlearningRequest:
    """The forget/retain/holdout request of a registered benchmark (``obliviate ls
    benchmarks``): ``tofu`` (``data`` = "builtin", a TOFU folder or "locuslab/TOFU"; the
    default), ``builtin-muse``, ``muse-news``... or, when ``forget`` is given, the user's own
    files (``qa``, or ``documents`` for plain text). ``options``: :func:`load_suite`'s."""
    return load_suite(
        benchmark, data, split, forget, retain, holdout, builtin, revision=revision, **options
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
    system_prompt: str | None = None,
    field_map: dict[str, str] | str | None = None,
) -> Any:
    """A benchmark entry's loaded :class:`~obliviate.benchmarks.suites.Suite` (its request and
    metric suite). Without ``benchmark``: ``qa`` when ``forget`` is given, else ``tofu``.
    ``system_prompt``: the chat template's (part of the evaluation key). ``field_map``: which
    column of the files holds which field, ``{file column: field}`` (README.md)."""
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
        **suite_options(system_prompt, field_map, template=template, revision=revision),
    )


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
    system_prompt: str | None = None,
    field_map: dict[str, str] | str | None = None,
    overwrite: bool = False,
) -> FinetuneResult:
    """Fine-tune ``model`` (a hub name or folder; ``None`` = the tiny Llama trained from scratch)
    on one config of ``data`` with answer-only loss, and save it under ``out/model``.

    For the tiny default the tokenizer is trained on the benchmark text unless ``tokenizer``
    (a folder) is given: pass the target's tokenizer when training its retain model, so both
    share a vocabulary. ``system_prompt``, ``field_map``: as in :func:`load_suite`. ``out``
    must not hold a finished run unless ``overwrite`` (then its old files are removed first)
    and never contains the starting model or tokenizer (:mod:`obliviate.run_output`).
    """
    from obliviate.checkpoints import remove as remove_checkpoints
    from obliviate.config import TrainConfig, from_dict, to_dict
    from obliviate.data.collate import pad_id_of
    from obliviate.data.templates import encode
    from obliviate.methods import functional as F
    from obliviate.models.loading import load_model, load_tokenizer
    from obliviate.models.tiny import build_tiny_llama, train_tokenizer
    from obliviate.run_output import prepare_run_dir
    from obliviate.runs import write_config
    from obliviate.training import get_accelerator, train_loop

    out = Path(out)
    tmpl = PromptTemplate(template, system_prompt=system_prompt)
    acc = get_accelerator(accelerator)
    if acc.is_main_process:
        prepare_run_dir(out, (model, tokenizer), overwrite)
    items = training_items(data, split, builtin, field_map)
    if model is None:
        tok = (
            load_tokenizer(tokenizer)
            if tokenizer
            else train_tokenizer(training_corpus(data, items, builtin))
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
        checkpoint_dir=out / "checkpoint" / "finetune" if cfg.checkpoint else None,
    )
    net = result.model  # a consolidated copy when the training was sharded
    if acc.is_main_process:
        save_unlearned(net, tok, out / "model")
        write_config(
            out,
            {
                "command": "finetune",
                "data": data,
                "split": split,
                "model": model or f"tiny-llama-{size}",
                "template": template,
                **config_entries(system_prompt, field_map),
                "builtin": builtin or {},
                "train": to_dict(cfg),
            },
        )
    remove_checkpoints(out / "checkpoint", acc)  # the model is saved: no stage resumes
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
    system_prompt: str | None = None,
    field_map: dict[str, str] | str | None = None,
    stride: int | None = None,
    overwrite: bool = False,
) -> UnlearnResult:
    """Unlearn a forget set from ``model`` (hub name, model folder or run folder) with a
    registered ``method`` (``obliviate ls methods``) and save the result under ``out/model``.

    ``overrides`` follow the method's defaults (``obliviate ls methods NAME``), e.g.
    ``{"alpha": 2.0, "train": {"lr": 1e-4}, "peft": {"r": 8}}``. ``benchmark`` names the
    registered entry whose request is unlearnt (:func:`load_suite`); document benchmarks
    (MUSE, WMDP corpora, plain documents) cut long documents into token windows, a new one
    every ``stride`` tokens (docs/muse-wmdp.md). ``system_prompt``, ``field_map``: as in
    :func:`load_suite`. The method's own report (``UnlearnOutput.info``) goes to method.json.

    ``out`` is refused when it holds a finished run unless ``overwrite`` (which removes the old
    run's files first), and always when it is or contains the input model's folder or its run
    folder (:mod:`obliviate.run_output`). ``config.yaml`` records the method, its settings, the
    data by name and the input and output models' fingerprints.
    """
    from obliviate import model_kinds as kinds
    from obliviate.checkpoints import remove as remove_checkpoints
    from obliviate.models.loading import model_fingerprint
    from obliviate.registry import BENCHMARKS
    from obliviate.run_output import prepare_run_dir
    from obliviate.runs import data_names, resolve_model_dir, write_config
    from obliviate.seeding import seed_everything
    from obliviate.training import get_accelerator

    if benchmark is not None:
        BENCHMARKS.entry(benchmark)  # unknown name: did-you-mean before any loading
    overrides = dict(overrides or {})
    kind = kinds.benchmark_kind(benchmark, forget)  # text or vision-language models
    method_obj, config = kinds.build_method(method, overrides, kind)
    tmpl = PromptTemplate(template, system_prompt=system_prompt)
    opts = suite_options(system_prompt, field_map, revision=revision)
    suite = load_suite(benchmark, data, split, forget, retain, holdout, builtin, **opts)
    suite = suite.for_model(model)  # the model's kind, the built-in data it was trained on
    request = suite.request  # bad data is reported before the model is loaded
    if getattr(suite, "item_template", None):  # prompt continuations (CounterFact, zsRE)
        tmpl = PromptTemplate(suite.item_template)
        template = suite.item_template
    path = resolve_model_dir(model)
    run_dir = Path(out) if out else None
    if run_dir is not None:
        prepare_run_dir(run_dir, (path,), overwrite)
    net, tok = kinds.load(path, kind, trust_remote_code)
    acc = get_accelerator(accelerator)
    job = kinds.make_job(kind, suite, net, tok, request, tmpl, run_dir, acc, progress, path, stride)
    from obliviate.config import TrainConfig, from_dict, to_dict

    # the resolved training settings (nested ones such as early_stop with every default)
    config["train"] = to_dict(from_dict(TrainConfig, config["train"], "train"))
    config.update(
        {
            "method": method,
            "model": str(model),
            "model_fingerprint": model_fingerprint(path),
            **data_names(data, forget, retain, holdout),
            "split": split if split is not None else suite.split,
            "template": template,
            **config_entries(system_prompt, field_map, stride),
            "world_size": acc.num_processes,
            **suite.run_record(),
        }
    )
    if benchmark is not None:
        config["benchmark"] = benchmark
    t0 = time.perf_counter()
    seed_everything(int((config.get("train") or {}).get("seed", 0)))  # before any new parameter
    output = method_obj.unlearn(job)
    wall = time.perf_counter() - t0
    if run_dir is not None and acc.is_main_process:
        save_unlearned(output.model, tok, run_dir / "model")
        config["output_fingerprint"] = model_fingerprint(run_dir / "model")
        write_config(run_dir, config)
        output.write_info(run_dir, method)
    if run_dir is not None:
        remove_checkpoints(run_dir / "checkpoint", acc)  # the model is saved: no stage resumes
    else:
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
    """Save a model, a PEFT adapter (its base model path stored relative to ``path``), or a
    wrapper that knows how to save itself; atomically (:func:`obliviate.io.atomic_folder`)."""
    from obliviate.io import atomic_folder
    from obliviate.models.adapters import relativise_base

    model = getattr(model, "module", model)
    if not hasattr(model, "save_pretrained"):
        raise ValueError(f"cannot save a {type(model).__name__}: it has no save_pretrained")
    with atomic_folder(path) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        relativise_base(tmp)  # a LoRA run folder still loads once the tree is moved


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
    system_prompt: str | None = None,
    field_map: dict[str, str] | str | None = None,
    stride: int | None = None,
    overwrite: bool = False,
    retain_results: str | Path | None = None,
) -> Any:
    """Evaluate ``model`` (a path, or an in-memory model with ``tokenizer``) with a registered
    benchmark's metric suite (``benchmark``, default ``tofu``, or ``qa`` for the user's files;
    ``obliviate ls benchmarks``).

    ``retain_model`` (the gold-standard model's folder) enables forget quality and privleak: its
    evaluation is computed once and cached inside its run tree (``<retain run>/evals/``), keyed
    like every evaluation, and recomputed whenever the key differs. ``retain_results`` gives
    the retain model's results instead: an open-unlearning log (``TOFU_EVAL.json``) or an
    obliviate run folder (:func:`obliviate.retain_eval.load_retain_results`).
    Results go to ``out`` (``metrics.json``, ``samples.jsonl``); an existing evaluation with the
    same key is reused (resume), a stale one never. The key holds the model's fingerprint over
    every weight byte and the tokenizer (:mod:`obliviate.models.fingerprint`), the data, the
    template, the settings and the metric versions. ``out`` holding another model's evaluation
    is refused unless ``overwrite`` (:func:`obliviate.run_output.prepare_eval_dir`).
    ``meta`` adds to ``metrics.json``; without a ``role`` it is read from the model's run.
    ``system_prompt``, ``field_map``: as in :func:`load_suite`; ``stride``: long documents are
    scored in windows (docs/muse-wmdp.md). Called by every rank inside
    ``obliviate.parallel_eval.data_parallel()``, each rank runs its share of the batches and
    rank 0 alone writes (docs/scale-out.md); elsewhere every batch runs in this process.
    """
    from obliviate import model_kinds as kinds
    from obliviate.models.loading import load_tokenizer, model_fingerprint
    from obliviate.parallel_eval import is_writer, on_rank0
    from obliviate.retain_eval import load_retain_results, retain_reference
    from obliviate.run_output import prepare_eval_dir, run_labels
    from obliviate.runs import data_names, load_eval, resolve_model_dir, write_eval

    opts = suite_options(system_prompt, field_map, settings=settings, revision=revision)
    suite = load_suite(
        benchmark, data, split, forget, retain, holdout, builtin, **opts, template=template
    )
    set_stride(suite, stride)
    meta = dict(meta or {})
    if retain_results is not None:
        if retain_model is not None:
            raise ValueError("give the retain model or its results (retain_results), not both")
        retain_model = load_retain_results(retain_results)
        meta.setdefault("retain_results", str(retain_results))
    recorded = (meta.get("model") or {}).get("path")
    tok = None
    if isinstance(model, (str, Path)):
        path: str | None = resolve_model_dir(model)
        fp = model_fingerprint(path)
        net = None
    else:
        if tokenizer is None:
            raise ValueError("evaluate(): pass tokenizer= with an in-memory model")
        tok = (
            tokenizer if not isinstance(tokenizer, (str, Path)) else load_tokenizer(str(tokenizer))
        )
        path, net, fp = None, model, model_fingerprint(model, tok)
    suite = suite.for_model(path or recorded)  # the model's kind, its built-in data
    key = suite.key(fp)
    out_dir = Path(out) if out else None
    if out_dir is not None:
        on_rank0(lambda: prepare_eval_dir(out_dir, path, fp, overwrite, recorded))
    progress = progress and is_writer()
    reference = None
    if retain_model is not None:
        reference = retain_reference(retain_model, suite, progress, reuse)
    if out_dir is not None and reuse:
        cached = on_rank0(lambda: load_eval(out_dir))
        if cached is not None and cached.key == key:
            if reference is not None:
                suite.add_reference(cached, reference)
            return cached
    if net is None:
        path = cast(str, path)  # set whenever net is None
        net, tok = kinds.load(path, suite.model_kind, trust_remote_code)
    t0 = time.perf_counter()
    result = suite.evaluate(net, tok, reference, fp, progress)
    result.timing["eval_s"] = round(time.perf_counter() - t0, 3)
    if out_dir is not None:
        info: dict[str, Any] = {
            "name": out_dir.name,
            **run_labels(path or recorded),
            "benchmark": suite.name,
            "split": suite.split,
            **data_names(data, forget, retain, holdout),
        }
        if revision:
            info["revision"] = revision
        info.update(meta)
        info["model"] = {"path": path or recorded, "fingerprint": fp, **(meta.get("model") or {})}
        on_rank0(lambda: write_eval(out_dir, result, info))
    return result


def unlearn_seeds(model: str, method: str, out: str | Path, seeds: int = 2, **kwargs: Any) -> Any:
    """:func:`unlearn` and :func:`evaluate` once per seed (``train.seed``, +1, ...) into
    ``out/seed-<s>/``, plus the aggregate ``out/metrics.json`` (mean, sd, bootstrap interval per
    metric), which is returned. Arguments: :func:`obliviate.recipes.seeds.unlearn_seeds`."""
    from obliviate.recipes.seeds import unlearn_seeds as run_seeds

    return run_seeds(model, method, out, seeds, **kwargs)


# ----------------------------------------------------------------------------- sweep


def sweep(model: str, method: str = "npo", out: str | Path = "runs/sweep", **kwargs: Any) -> Any:
    """A hyper-parameter search of ``method`` on ``model`` with Optuna, each trial an
    :func:`unlearn` run plus :func:`evaluate`, stored in ``out`` (SQLite study, resumable,
    shareable by several processes); returns a :class:`~obliviate.sweep.study.SweepResult`.
    Arguments: :func:`obliviate.sweep.study.sweep` (docs/sweep.md)."""
    from obliviate.sweep.study import sweep as run_sweep

    return run_sweep(model, method, out, **kwargs)
