"""The MUSE recipe (Shi+ 2024, arXiv 2407.06460; docs/muse-wmdp.md): train (or take) a target
and a retrained model, unlearn with each method, evaluate C1-C4 (and C5/C6 on the folds), write
the six-way table. ``obliviate muse run`` and ``obliviate benchmark --benchmark builtin-muse``
are thin layers over :func:`run_muse`; every stage resumes through
:mod:`obliviate.recipes.resume`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from obliviate.benchmarks.muse import MuseSettings, add_privleak, unlearn_documents
from obliviate.benchmarks.muse_folds import (
    FinishedRun,
    docs_key,
    run_scalability,
    run_sustainability,
)
from obliviate.data.types import QAItem
from obliviate.reporting.render import EXTRA_COLUMNS, MAIN_COLUMNS, muse_markdown

# ----------------------------------------------------------------------------- tiny models

# Fine-tuning recipe for the tiny models trained from scratch on the built-in documents
# (measured: see docs/muse-wmdp.md); windows of 512 tokens hold a whole profile document.
TINY_DOC_TRAIN = {
    "lr": 3e-3,
    "epochs": 20,
    "batch_size": 8,
    "warmup_epochs": 1.0,
    "scheduler": "cosine",
    "weight_decay": 0.01,
    "max_length": 512,
}

# Unlearning settings for the built-in corpus and the tiny models (a few documents, so the
# methods' per-step defaults are far too weak; tuned on the built-in corpus, docs/muse-wmdp.md).
BUILTIN_UNLEARN: dict[str, dict[str, Any]] = {
    "graddiff": {
        "alpha": 1.0,  # sized with it; the tiny preset's 8.8 is tuned on the TOFU-style benchmark
        "train": {
            "lr": 1e-3,
            "epochs": 10,
            "batch_size": 4,
            "warmup_epochs": 0,
            "scheduler": "constant",
        },
    },
    "npo": {
        "train": {
            "lr": 1e-3,
            "epochs": 10,
            "batch_size": 4,
            "warmup_epochs": 0,
            "scheduler": "constant",
        }
    },
}


def train_on_documents(
    tokenizer: Any,
    items: Sequence[QAItem],
    out: Path,
    size: str = "xs",
    train: dict[str, Any] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> Path:
    """Train a tiny Llama from scratch on documents (windows of ``max_length``) and save it
    with its tokenizer to ``out/model``; the training log goes to ``out/train_log.jsonl``."""
    from obliviate.config import TrainConfig, from_dict
    from obliviate.data.collate import pad_id_of
    from obliviate.data.muse import encode_documents
    from obliviate.methods import functional as F
    from obliviate.models.tiny import build_tiny_llama
    from obliviate.training import train_loop

    cfg = from_dict(TrainConfig, {**TINY_DOC_TRAIN, "seed": seed, **(train or {})}, "train")
    net = build_tiny_llama(tokenizer, size=size, max_positions=cfg.max_length, seed=seed)
    enc = encode_documents(tokenizer, items, cfg.max_length)

    def loss_fn(m: Any, batch: dict, _rb: Any, _step: int) -> tuple[Any, dict[str, float]]:
        logits = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return F.nll_loss(logits, batch["labels"]), {}

    train_loop(
        net,
        loss_fn,
        enc,
        cfg,
        pad_id_of(tokenizer),
        log_path=out / "train_log.jsonl",
        desc=f"train {out.name}",
        progress=progress,
        checkpoint_dir=out / "checkpoint" / "train" if cfg.checkpoint else None,
    )
    net.save_pretrained(out / "model", safe_serialization=True)
    tokenizer.save_pretrained(out / "model")
    shutil.rmtree(out / "checkpoint", ignore_errors=True)  # the model is saved
    return out / "model"


@dataclass
class _Stage:
    """Bookkeeping of one run folder of the MUSE pipeline."""

    name: str
    role: str
    method: str | None = None
    train_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def run_muse(
    out: str | Path,
    methods: Sequence[str] = ("graddiff", "npo"),
    data: str = "builtin",
    target: str | None = None,
    retrain: str | None = None,
    size: str = "xs",
    builtin: dict[str, Any] | None = None,
    finetune_train: dict[str, Any] | None = None,
    method_overrides: dict[str, dict[str, Any]] | None = None,
    settings: dict[str, Any] | None = None,
    scalability: bool = True,
    sustainability: bool = True,
    seed: int = 0,
    progress: bool = False,
    log: Callable[[str], None] | None = print,
    revision: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """The MUSE six-way evaluation end to end; returns the comparison document (also written
    to ``out/comparison.json`` and ``out/comparison.md``).

    Without ``target``/``retrain`` two tiny Llamas are trained from scratch (one tokenizer,
    trained on the benchmark text): the target on forget + retain1 + retain2 documents and the
    retrained model on retain1 + retain2. Each method unlearns ``raw/forget`` with
    ``raw/retain1`` as retain set (C1-C4), then the ``scal`` folds (C5) and the ``sust`` folds
    in sequence (C6). On the built-in corpus the methods get :data:`BUILTIN_UNLEARN` unless
    ``method_overrides`` names them. Run folders: ``out/{target,retrain,<method>}/`` (with
    ``metrics.json``, ``samples.jsonl``; models under ``model/``), ``out/scal/<method>/forget_k/``
    and ``out/sust/<method>/forget_k/`` (metrics and samples only). A re-run reuses every
    finished stage with the same configuration; another configuration is an error unless
    ``overwrite``.
    """
    from obliviate.benchmarks.suites import MuseSuite
    from obliviate.config import from_dict
    from obliviate.data.muse import load_muse
    from obliviate.io import atomic_write_text, write_json
    from obliviate.models.loading import load_model, load_tokenizer, model_fingerprint
    from obliviate.recipes import resume
    from obliviate.runs import load_eval, write_config, write_eval

    say = log or (lambda _m: None)
    out = Path(out)
    mset = from_dict(MuseSettings, settings or {}, "MUSE evaluation")
    muse = load_muse(data, revision=revision, **(builtin or {}))
    is_builtin = data == "builtin"
    missing = [m for m in ("scal", "sust") if m in muse.missing]
    if missing:
        say(f"note: {data} has no {' / '.join(missing)} folds; C5/C6 are skipped")
    times: dict[str, float] = {}

    if target is None or retrain is None:
        if target is not None or retrain is not None:
            raise ValueError(
                "give both target and retrain models, or neither (tiny ones are trained)"
            )
        target, retrain = _tiny_models(
            out, muse, data, builtin, size, finetune_train, seed, progress, say, times, overwrite
        )
    tok = load_tokenizer(str(target))
    mcq = _builtin_mcq(builtin) if is_builtin else None

    suite = MuseSuite(muse.name, "forget", documents=True, data=muse, settings=mset, mcq=mcq)

    def evaluate(model: Any, reference: Any = None) -> Any:
        return suite.evaluate(model, tok, reference, model_fingerprint(model), progress)

    def write(run: Path, res: Any, stage: _Stage, model_path: str | None) -> None:
        write_eval(
            run,
            res,
            {
                "name": stage.name,
                "role": stage.role,
                "method": stage.method,
                "benchmark": muse.name,
                "split": "forget",
                "model": {"path": model_path, "fingerprint": res.key["model"]},
                "timing": {"train_s": stage.train_s},
                **stage.extra,
            },
        )

    say("[retrain] evaluating the retrained model (the gold standard)")
    retrain_model = load_model(str(retrain))
    ref = evaluate(retrain_model)
    add_privleak(ref, ref)
    write(
        out / "retrain",
        ref,
        _Stage("retrain", "retain", train_s=times.get("retrain", 0.0)),
        str(retrain),
    )
    del retrain_model
    say("[target] evaluating the target model")
    tgt = evaluate(load_model(str(target)), ref)
    write(
        out / "target",
        tgt,
        _Stage("target", "target", train_s=times.get("target", 0.0)),
        str(target),
    )
    results: dict[str, Any] = {"target": tgt, "retrain": ref}
    roles = {"target": "target", "retrain": "retain"}
    scal_doc: dict[str, list[dict[str, Any]]] = {}
    sust_doc: dict[str, list[dict[str, Any]]] = {}
    overrides_all = dict(BUILTIN_UNLEARN if is_builtin else {})
    overrides_all.update(method_overrides or {})

    for method in methods:
        ov = overrides_all.get(method, {})
        stage_config = {
            "command": "muse",
            "method": method,
            "overrides": ov,
            "data": data,
            "builtin": builtin or {},
            "target": str(target),
            "settings": asdict(mset),
            "scalability": bool(scalability and muse.scal),
            "sustainability": bool(sustainability and muse.sust),
        }
        done = resume.stage(out / method, stage_config, ("metrics.json", "model"), overwrite)
        if done is not None:
            say(f"[{method}] reusing finished run {out / method}")
            results[method] = load_eval(out / method)
            roles[method] = "unlearned"
            times[method] = done.get("train_s", 0.0)
            if done.get("scal"):
                scal_doc[method] = done["scal"]
            if done.get("sust"):
                sust_doc[method] = done["sust"]
            continue
        say(f"[{method}] unlearning {len(muse.forget)} forget documents")
        t0 = time.perf_counter()
        res = unlearn_documents(
            load_model(str(target)),
            tok,
            method,
            muse.request(),
            ov,
            run_dir=out / method,
            progress=progress,
        )
        train_s = round(time.perf_counter() - t0, 2)
        from obliviate.api import save_unlearned

        save_unlearned(res.model, tok, out / method / "model")
        write_config(
            out / method,
            {
                "command": "muse",
                "method": method,
                "overrides": ov,
                "data": data,
                "builtin": builtin or {},
                "target": str(target),
            },
        )
        ev = evaluate(res.model, ref)
        write(
            out / method,
            ev,
            _Stage(
                method,
                "unlearned",
                method,
                train_s,
                {"trainable_params": res.trainable_params, "stopped": res.stopped},
            ),
            str(out / method / "model"),
        )
        results[method] = ev
        roles[method] = "unlearned"
        times[method] = train_s

        def fold_writer(kind: str, method: str = method) -> Callable[[int, Any, Any], None]:
            def on_fold(k: int, ev_k: Any, _res: Any) -> None:
                say(
                    f"[{method}] {kind} fold {k}: "
                    + ", ".join(
                        f"{n}={ev_k.metrics[n]['value']:.3f}"
                        for n in ("forget_knowmem", "retain_knowmem")
                        if n in ev_k.metrics
                    )
                )
                write(
                    out / kind / method / f"forget_{k}",
                    ev_k,
                    _Stage(f"{method}-{kind}-{k}", "unlearned", method),
                    None,
                )

            return on_fold

        def load_target() -> Any:
            return load_model(str(target))

        def ev_ref(m: Any) -> Any:
            return evaluate(m, ref)

        # a fold with the forget documents repeats this run: it is taken from it, not rerun
        main = FinishedRun(method, docs_key(muse.forget), ev, res, train_s)
        if scalability and muse.scal:
            folds = run_scalability(
                load_target, tok, muse, method, ev_ref, ov, progress, fold_writer("scal"), main
            )
            scal_doc[method] = [asdict(f) for f in folds]
        if sustainability and muse.sust:
            folds = run_sustainability(
                load_target, tok, muse, method, ev_ref, ov, progress, fold_writer("sust"), main
            )
            sust_doc[method] = [asdict(f) for f in folds]
        resume.finish(
            out / method,
            stage_config,
            train_s=train_s,
            scal=scal_doc.get(method),
            sust=sust_doc.get(method),
        )

    columns = [k for k, _ in MAIN_COLUMNS + EXTRA_COLUMNS]
    rows = []
    for name, res in results.items():
        row: dict[str, Any] = {"name": name, "role": roles[name]}
        row.update({k: res.metrics[k]["value"] for k in columns if k in res.metrics})
        row["mia_min_k_auc"] = res.metrics.get("mia_min_k_auc", {}).get("value")
        row["train_s"] = times.get(name)
        rows.append(row)
    doc = {
        "schema": 1,
        "benchmark": muse.name,
        "split": "forget",
        "runs": list(results),
        "columns": columns + ["mia_min_k_auc", "train_s"],
        "rows": rows,
        "scalability": scal_doc,
        "sustainability": sust_doc,
        "settings": asdict(mset),
        "method_overrides": {m: overrides_all.get(m, {}) for m in methods},
        "data": {
            "source": muse.source,
            "revision": muse.revision,
            "builtin": builtin or {},
            "n_forget_docs": len(muse.forget),
            "n_retain_docs": len(muse.retain),
        },
    }
    write_json(out / "comparison.json", doc)
    atomic_write_text(out / "comparison.md", muse_markdown(doc))
    return doc


def _builtin_mcq(builtin: dict[str, Any] | None) -> dict[str, list[Any]]:
    from obliviate.data.wmdp import load_wmdp

    kw = {k: v for k, v in (builtin or {}).items() if k in ("n_people", "seed")}
    return load_wmdp("builtin", **kw)


def _tiny_models(
    out: Path,
    muse: Any,
    data: str,
    builtin: dict[str, Any] | None,
    size: str,
    train: dict[str, Any] | None,
    seed: int,
    progress: bool,
    say: Callable[[str], None],
    times: dict[str, float],
    overwrite: bool = False,
) -> tuple[str, str]:
    """Train (or reuse) the tiny target and retrained models; returns their folders."""
    from obliviate.models.loading import load_tokenizer
    from obliviate.models.tiny import train_tokenizer
    from obliviate.recipes import resume
    from obliviate.runs import write_config

    paths = {}
    tok = None
    for name, splits in (
        ("target", ("forget", "retain1", "retain2")),
        ("retrain", ("retain1", "retain2")),
    ):
        run = out / name
        config = {
            "command": "muse-finetune",
            "data": data,
            "builtin": builtin or {},
            "size": size,
            "splits": list(splits),
            "train": {**TINY_DOC_TRAIN, **(train or {})},
            "seed": seed,
        }
        done = resume.stage(run, config, ("model/config.json",), overwrite)
        if done is not None:
            say(f"[{name}] reusing the trained model in {run / 'model'}")
            paths[name] = str(run / "model")
            times[name] = done.get("train_s", 0.0)
            if tok is None:
                tok = load_tokenizer(paths[name])
            continue
        if tok is None:
            tok = train_tokenizer(_corpus_texts(muse, data, builtin))
        items = [it for s in splits for it in muse.raw.get(s, [])]
        say(
            f"[{name}] training a tiny Llama ({size}) on {len(items)} documents ({'+'.join(splits)})"
        )
        t0 = time.perf_counter()
        paths[name] = str(train_on_documents(tok, items, run, size, train, seed, progress))
        times[name] = round(time.perf_counter() - t0, 2)
        write_config(run, config)
        resume.finish(run, config, train_s=times[name])
    return paths["target"], paths["retrain"]


def _corpus_texts(muse: Any, data: str, builtin: dict[str, Any] | None) -> list[str]:
    if data == "builtin":
        from obliviate.data.builtin_muse import builtin_muse_corpus_text

        kw = {k: v for k, v in (builtin or {}).items() if k in ("n_people", "seed")}
        return builtin_muse_corpus_text(**kw)
    texts = [it.answer for items in muse.raw.values() for it in items]
    texts += [
        t for items in muse.knowmem.values() for it in items for t in (it.question, it.answer)
    ]
    return texts
