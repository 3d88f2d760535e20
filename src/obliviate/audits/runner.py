"""`obliviate audit`: robustness attacks on an unlearned model, scored against target and retain.

For every attack the same forget metrics (per-token answer probability and ROUGE-L recall of the
greedy answer, as TOFU's ``forget_prob`` / ``forget_rouge``) are measured on the same items for
the target, the retain model and the unlearned model without attack, and for the unlearned and
the retain model under the attack (the retain model is the control); the recoverability
(:mod:`obliviate.audits.scores`) compares them. Attacks (docs/audit.md):

- ``relearn``: a few fine-tuning steps (answer NLL, :func:`obliviate.training.train_loop`) on a
  seeded random half of the forget items; measured on the other half.
- ``quantise``: 8- and 4-bit weight quantisation by a real quantiser (optimum-quanto, torchao or
  bitsandbytes) or the simulated round-to-nearest fallback (:mod:`obliviate.audits.quantisers`);
  rows ``quant8``, ``quant4``.
- ``paraphrase`` / ``jailbreak``: the forget questions paraphrased / wrapped in jailbreak
  templates (:mod:`obliviate.audits.probes`).
- ``probe``: the linear truth probe on hidden states (metric ``auc``).
- ``embedding``: soft input embeddings optimised to elicit the answers (audits/embedding.py).
Plus two sections that are not attacks: ``mia`` (all six membership-inference attacks with AUC and
PrivLeak, :mod:`obliviate.audits.mia_suite`) and ``fluency`` (:mod:`obliviate.metrics.fluency`).

Models are loaded one at a time (the retain model stays loaded: it is the reference of the
Reference attack and the fluency judge), so at most two models and one attacked copy are in
memory at once.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from obliviate.audits.rows import (  # noqa: F401  (re-exported)
    _mean,
    _strip_scores,
    _template_table,
    _with_privleak,
    build_rows,
    make_row,
)
from obliviate.audits.settings import (  # noqa: F401  (re-exported: the public audit API)
    ALL,
    ATTACKS,
    AUDIT_VERSION,
    SECTIONS,
    WEIGHT_ATTACKS,
    AuditResult,
    AuditSettings,
    _forget_items,
    plan_attacks,
)
from obliviate.data.templates import PromptTemplate
from obliviate.data.types import QAItem, UnlearningRequest
from obliviate.parallel_eval import is_writer, on_rank0

# ----------------------------------------------------------------------------- measuring


@dataclass
class _Ctx:
    request: UnlearningRequest
    template: PromptTemplate
    settings: AuditSettings
    attacks: list[str]
    items: list[QAItem]
    relearn_idx: list[int]
    measure_idx: list[int]
    para_idx: list[int]
    progress: bool
    retain_model: Any = None
    retain_tok: Any = None
    retain_aucs: dict[str, float] | None = None
    quantiser: str = "rtn"  # the resolved quantiser (never "auto")


def _measure(
    model: Any, tok: Any, questions: list[str], answers: list[str], ctx: _Ctx, desc: str
) -> dict[str, Any]:
    """Per-item answer probability exp(−NLL_avg) (EOS included) and ROUGE-L recall."""
    from obliviate.generation import cache_rows
    from obliviate.metrics.rouge import rouge_scores
    from obliviate.scoring import generate, greedy_prefixes, score_pairs

    s, pairs = ctx.settings, list(zip(questions, answers))
    kw: dict[str, Any] = {"max_length": s.max_length, "progress": ctx.progress}
    ts = score_pairs(model, tok, pairs, ctx.template, s.batch_size, desc=f"{desc}: scoring", **kw)
    prob = [math.exp(-t.nll_avg(include_eos=True)) if t.n else 0.0 for t in ts]
    # the greedy answers as far as the scoring pass shows them; one wide batch (docs/metrics.md)
    known = greedy_prefixes(tok, ctx.template, pairs, dict(zip(pairs, ts)), s.max_length)
    width = cache_rows(model, s.max_length + s.max_new_tokens, s.batch_size)
    gens = generate(model, tok, questions, ctx.template, s.max_new_tokens, width,
                    desc=f"{desc}: generating", known=known, **kw)  # fmt: skip
    rouge = [r["rouge_l_recall"] for r in rouge_scores(gens, answers, use_stemmer=s.use_stemmer)]
    return {"prob": prob, "rouge": rouge, "generations": gens}


def _weights_copy(model: Any) -> Any:
    """A trainable full-weight copy (a PEFT model is merged first, as an attacker would)."""
    net = copy.deepcopy(model)
    if hasattr(net, "merge_and_unload"):
        net = net.merge_and_unload()
    for p in net.parameters():
        if p.is_floating_point():
            p.requires_grad_(True)
    return net


def relearn(model: Any, tok: Any, items: list[QAItem], ctx: _Ctx) -> Any:
    """A fine-tuned copy of ``model``: ``relearn_steps`` AdamW steps of answer NLL on ``items``
    (constant lr ``relearn_lr``, no warm-up, no weight decay, batch ``relearn_batch_size``)."""
    from obliviate.config import TrainConfig
    from obliviate.data.collate import pad_id_of
    from obliviate.data.templates import encode
    from obliviate.methods import functional as F
    from obliviate.training import train_loop

    s = ctx.settings
    net = _weights_copy(model)
    enc = [encode(tok, it.question, it.answer, ctx.template, s.max_length) for it in items]
    cfg = TrainConfig(
        lr=s.relearn_lr,
        epochs=1.0,
        max_steps=s.relearn_steps,
        batch_size=s.relearn_batch_size,
        weight_decay=0.0,
        warmup_epochs=0.0,
        scheduler="constant",
        seed=s.seed,
        max_length=s.max_length,
    )

    def loss_fn(m: Any, batch: dict, _rb: Any, _step: int) -> tuple[Any, dict[str, float]]:
        logits = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return F.nll_loss(logits, batch["labels"]), {}

    train_loop(net, loss_fn, enc, cfg, pad_id_of(tok), desc="relearning attack", progress=False)
    net.eval()
    return net


def _probe(model: Any, tok: Any, ctx: _Ctx) -> dict[str, Any]:
    """Output AUC (the model's own probabilities) and linear-probe AUC on forget candidates,
    both within items (:func:`obliviate.audits.probes.grouped_auc`)."""
    from obliviate.audits.hidden import answer_hidden_states, num_layers
    from obliviate.audits.probes import fit_truth_probe, grouped_auc, truth_candidates
    from obliviate.scoring import score_pairs

    s = ctx.settings
    test_pairs, test_y, test_g = truth_candidates(ctx.items, "forget")
    train_pairs, train_y, _ = truth_candidates(ctx.request.eval.get("retain", []), "retain")
    layer = s.probe_layer if s.probe_layer is not None else num_layers(model) // 2
    ts = score_pairs(
        model,
        tok,
        test_pairs,
        ctx.template,
        batch_size=s.batch_size,
        max_length=s.max_length,
        progress=ctx.progress,
        desc="probe: scoring",
    )
    out_scores = [-t.nll_avg(include_eos=True) for t in ts]  # log of exp(-NLL_avg): same ranking
    kw = {"batch_size": s.batch_size, "max_length": s.max_length}
    train_x = answer_hidden_states(model, tok, train_pairs, ctx.template, layer, **kw)
    test_x = answer_hidden_states(model, tok, test_pairs, ctx.template, layer, **kw)
    probe_scores = fit_truth_probe(train_x, train_y, test_x, c=s.probe_c, seed=s.seed)
    return {
        "output_auc": grouped_auc(out_scores, test_y, test_g),
        "probe_auc": grouped_auc(probe_scores, test_y, test_g),
        "layer": layer,
        "n_train": len(train_y),
        "n_test_items": len(set(test_g.tolist())),
    }


def _fluency(model: Any, tok: Any, forget_gens: list[str], ctx: _Ctx) -> dict[str, Any]:
    """Fluency of the greedy answers to the forget and the retain questions, the perplexity
    judged by the retain model (EOS excluded; empty generations are not scored)."""
    from obliviate.metrics.fluency import fluency_summary, perplexity
    from obliviate.scoring import generate, score_pairs

    s = ctx.settings
    out: dict[str, Any] = {}
    splits = {"forget": ([it.question for it in ctx.items], forget_gens)}
    retain_items = ctx.request.eval.get("retain") or ctx.request.retain
    if retain_items:
        qs = [it.question for it in retain_items]
        splits["retain"] = (
            qs,
            generate(
                model,
                tok,
                qs,
                ctx.template,
                max_new_tokens=s.max_new_tokens,
                batch_size=s.batch_size,
                max_length=s.max_length,
                progress=ctx.progress,
                desc="fluency: generating",
            ),
        )
    for split, (qs, gens) in splits.items():
        summary = fluency_summary(gens, n=s.fluency_ngram)
        scored = [(q, g) for q, g in zip(qs, gens) if g.strip()]
        ppl = None
        if scored:
            ts = score_pairs(
                ctx.retain_model,
                ctx.retain_tok,
                scored,
                ctx.template,
                batch_size=s.batch_size,
                max_length=s.max_length,
                progress=ctx.progress,
                desc="fluency: judging",
            )
            ppl = perplexity([t.without_eos().token_logprobs for t in ts])
        out[split] = {"perplexity": ppl, **summary}
    return out


def _audit_model(
    role: str, model: Any, tok: Any, ctx: _Ctx, log: Callable[[str], None] | None
) -> dict[str, Any]:
    """Every measurement of one model (``role``: target | retain | unlearned)."""
    from obliviate.audits.mia_suite import mia_suite
    from obliviate.audits.quantisers import quantise_with

    s = ctx.settings
    items = ctx.items
    res: dict[str, Any] = {}
    timing: dict[str, float] = {}

    def step(name: str) -> float:
        _say(log, f"[{role}] {name}")
        return time.perf_counter()

    t = step("forget metrics")
    res["base"] = _measure(
        model, tok, [it.question for it in items], [it.answer for it in items], ctx, f"{role} base"
    )
    timing["base"] = time.perf_counter() - t
    if "paraphrase" in ctx.attacks:
        t = step("paraphrase probe")
        sub = [items[i] for i in ctx.para_idx]
        res["paraphrase"] = _measure(
            model,
            tok,
            [it.paraphrased_question or "" for it in sub],
            [it.answer for it in sub],
            ctx,
            f"{role} paraphrase",
        )
        timing["paraphrase"] = time.perf_counter() - t
    if "jailbreak" in ctx.attacks:
        from obliviate.audits.probes import wrap_question
        from obliviate.audits.scores import best_of

        t = step("jailbreak probe")
        per = [
            _measure(
                model,
                tok,
                [wrap_question(tp, it.question) for it in items],
                [it.answer for it in items],
                ctx,
                f"{role} jailbreak {j}",
            )
            for j, tp in enumerate(s.jailbreak_templates)
        ]
        res["jailbreak"] = {
            "prob": best_of([p["prob"] for p in per]),
            "rouge": best_of([p["rouge"] for p in per]),
            "per_template": [
                {"prob": float(np.mean(p["prob"])), "rouge": float(np.mean(p["rouge"]))}
                for p in per
            ],
        }
        timing["jailbreak"] = time.perf_counter() - t
    if role != "target" and "quantise" in ctx.attacks:
        for bits in s.quant_bits:
            t = step(f"{bits}-bit quantisation ({ctx.quantiser})")
            qmodel, _ = quantise_with(model, ctx.quantiser, bits, s.quant_group_size)
            res[f"quant{bits}"] = _measure(
                qmodel,
                tok,
                [it.question for it in items],
                [it.answer for it in items],
                ctx,
                f"{role} quant{bits}",
            )
            del qmodel
            timing[f"quant{bits}"] = time.perf_counter() - t
    if role != "target" and "relearn" in ctx.attacks:
        t = step(f"relearning attack ({s.relearn_steps} steps on {len(ctx.relearn_idx)} items)")
        net = relearn(model, tok, [items[i] for i in ctx.relearn_idx], ctx)
        sub = [items[i] for i in ctx.measure_idx]
        res["relearn"] = _measure(
            net, tok, [it.question for it in sub], [it.answer for it in sub], ctx, f"{role} relearn"
        )
        del net
        timing["relearn"] = time.perf_counter() - t
    if role != "target" and "embedding" in ctx.attacks:
        from obliviate.audits.embedding import embedding_attack

        t = step(f"embedding-space attack ({s.embed_tokens} soft tokens, {s.embed_steps} steps)")
        res["embedding"] = embedding_attack(model, tok, ctx)
        timing["embedding"] = time.perf_counter() - t
    if "probe" in ctx.attacks:
        t = step("linear probe")
        res["probe"] = _probe(model, tok, ctx)
        timing["probe"] = time.perf_counter() - t
    if "mia" in ctx.attacks:
        t = step("membership inference (6 attacks)")
        res["mia"] = mia_suite(
            model,
            tok,
            ctx.request,
            ctx.template,
            reference_model=ctx.retain_model,
            retain_aucs=ctx.retain_aucs,
            reference_tokenizer=ctx.retain_tok,
            k=s.min_k,
            batch_size=s.batch_size,
            max_length=s.max_length,
            gradnorm_train_mode=s.gradnorm_train_mode,
            progress=ctx.progress,
        )
        timing["mia"] = time.perf_counter() - t
    if "fluency" in ctx.attacks:
        t = step("fluency")
        res["fluency"] = _fluency(model, tok, res["base"]["generations"], ctx)
        timing["fluency"] = time.perf_counter() - t
    res["timing"] = {k: round(v, 3) for k, v in timing.items()}
    return res


# ----------------------------------------------------------------------------- rows


# ----------------------------------------------------------------------------- the audit


def _say(log: Callable[[str], None] | None, msg: str) -> None:
    if log:
        log(msg)


def _load(path_or_model: Any, tokenizer: Any = None) -> tuple[Any, Any, str | None, str]:
    """(model, tokenizer, path, fingerprint) from a folder or an in-memory model + tokenizer."""
    from obliviate.models.loading import load_model, load_tokenizer, model_fingerprint
    from obliviate.runs import resolve_model_dir

    if isinstance(path_or_model, (str, Path)):
        path = resolve_model_dir(path_or_model)
        tok = (
            load_tokenizer(str(tokenizer))
            if isinstance(tokenizer, (str, Path))
            else (tokenizer or load_tokenizer(path))
        )
        return load_model(path), tok, path, model_fingerprint(path)
    if tokenizer is None:
        raise ValueError("run_audit(): pass tokenizer= with an in-memory model")
    return path_or_model, tokenizer, None, model_fingerprint(path_or_model)


def run_audit(
    model: Any,
    target_model: Any,
    retain_model: Any,
    data: str = "builtin",
    split: str = "forget10",
    forget: Any = None,
    retain: Any = None,
    holdout: Any = None,
    out: str | Path | None = None,
    tokenizer: Any = None,
    template: str = "qa",
    settings: AuditSettings | dict[str, Any] | None = None,
    builtin: dict[str, Any] | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = print,
) -> AuditResult:
    """Audit the unlearned ``model`` against ``target_model`` (before unlearning) and
    ``retain_model`` (the gold standard) on a benchmark split or the user's files (``forget``,
    ``retain``, ``holdout`` as in :func:`obliviate.api.evaluate`).

    ``model`` is a folder / run folder, or an in-memory model with ``tokenizer``. With ``out``
    the results go to ``out/metrics.json`` (an ``"audit"`` section, merged into an existing
    file) and ``out/audit.md``.
    """
    log, progress = (log, progress) if is_writer() else (None, False)  # data-parallel: rank 0
    from obliviate.api import load_request
    from obliviate.audits.scores import split_halves
    from obliviate.config import from_dict
    from obliviate.runs import data_names

    s = (
        settings
        if isinstance(settings, AuditSettings)
        else from_dict(AuditSettings, settings or {}, "audit")
    )
    request = load_request(data, split, forget, retain, holdout, builtin)
    tmpl = PromptTemplate(template)
    t_all = time.perf_counter()

    unl, unl_tok, unl_path, unl_fp = _load(model, tokenizer)
    has_weights = hasattr(unl, "parameters") and any(True for _ in unl.parameters())
    attacks, skipped = plan_attacks(request, s, has_weights)
    items = _forget_items(request)
    relearn_idx, measure_idx = (
        split_halves(len(items), s.seed, s.relearn_fraction) if "relearn" in attacks else ([], [])
    )
    ctx = _Ctx(
        request,
        tmpl,
        s,
        attacks,
        items,
        relearn_idx,
        measure_idx,
        [i for i, it in enumerate(items) if it.paraphrased_question],
        progress,
    )
    if "quantise" in attacks:
        from obliviate.audits.quantisers import model_device, resolve_quantiser

        ctx.quantiser, notice = resolve_quantiser(
            s.quantiser, s.quant_bits, s.quant_group_size, model_device(unl)
        )
        if notice:
            _say(log, notice)
    _say(
        log,
        f"audit: {len(items)} forget items; attacks: {', '.join(attacks)}"
        + (f"; skipped: {', '.join(f'{k} ({v})' for k, v in skipped.items())}" if skipped else ""),
    )

    results: dict[str, dict[str, Any]] = {}
    ret, ret_tok, ret_path, ret_fp = _load(retain_model)
    ctx.retain_model, ctx.retain_tok = ret, ret_tok
    results["retain"] = _audit_model("retain", ret, ret_tok, ctx, log)
    if "mia" in attacks:
        ctx.retain_aucs = results["retain"]["mia"]["auc"]
        results["retain"]["mia"] = _with_privleak(results["retain"]["mia"], ctx.retain_aucs)
    tgt, tgt_tok, tgt_path, tgt_fp = _load(target_model)
    results["target"] = _audit_model("target", tgt, tgt_tok, ctx, log)
    del tgt
    results["unlearned"] = _audit_model("unlearned", unl, unl_tok, ctx, log)

    result = AuditResult(
        rows=build_rows(results, ctx),
        mia={role: _strip_scores(r["mia"]) for role, r in results.items() if "mia" in r},
        fluency={role: r["fluency"] for role, r in results.items() if "fluency" in r},
        jailbreak_templates=_template_table(results, s) if "jailbreak" in attacks else {},
        skipped=skipped,
        settings=asdict(s),
        info={
            "benchmark": request.name,
            "split": split,
            **data_names(data, forget, retain, holdout),
            "template": template,
            "n_forget": len(items),
            "quantiser": ctx.quantiser if "quantise" in attacks else None,
            "relearn_items": len(relearn_idx),
            "measured_items": len(measure_idx),
            "models": {
                "unlearned": {"path": unl_path, "fingerprint": unl_fp},
                "target": {"path": tgt_path, "fingerprint": tgt_fp},
                "retain": {"path": ret_path, "fingerprint": ret_fp},
            },
        },
        timing={
            "audit_s": round(time.perf_counter() - t_all, 2),
            **{f"{role}_{k}_s": v for role, r in results.items() for k, v in r["timing"].items()},
        },
    )
    if out is not None:
        from obliviate.audits.report import write_audit

        on_rank0(lambda: write_audit(out, result))
    return result
