"""How much do obliviate's deliberate differences from OpenUnlearning move the numbers?

docs/metrics.md ("Where obliviate differs from the reference framework") lists them; this script
measures each on the built-in TOFU benchmark with tiny models: the target (trained on
``full``), the retain model (``retain90``) and an unlearned model. For each model it prints

- extraction strength as obliviate computes it (0 when no suffix is reproduced) and as
  OpenUnlearning does (1/n there), with the number of such items;
- forget probability and forget truth ratio with every answer token scored (obliviate) and
  without the first answer token (what OpenUnlearning's Llama-2 template "Answer: " does: the
  prompt's trailing space merges with the answer's first word, so that token is masked);
- the ZLib MIA AUC with the zlib length of the answer text (obliviate) and of the decoded
  answer tokens (OpenUnlearning), with the number of texts whose zlib length differs;
- paraphrased ROUGE as obliviate computes it (greedy answer to the paraphrased question
  against the answer) and as OpenUnlearning's ``forget_Q_A_PARA_ROUGE`` does (answer to the
  original question against the paraphrased answer);
- for the retain model, privleak against itself (obliviate: 0) and with OpenUnlearning's
  default reference AUC 0.5, what it reports when no retain log is given.

    .venv/bin/python perf/reference_differences.py                 # trains tiny xs models
    .venv/bin/python perf/reference_differences.py --target runs/demo/target \\
        --retain runs/demo/retain --unlearned runs/demo/npo --people 100
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np


def ou_extraction_strength(correct: np.ndarray) -> float:
    """OpenUnlearning's loop: the first k in 0..n-1 whose suffix matches, else k = n - 1."""
    n = len(correct)
    k = next((k for k in range(n) if correct[k:].all()), n - 1)
    return 1 - k / n


def measure(path: str, request: Any, template: Any, label: str) -> dict[str, Any]:
    from obliviate.data.templates import IGNORE, encode
    from obliviate.metrics import memorisation as mem
    from obliviate.metrics import mia
    from obliviate.metrics import tofu as tm
    from obliviate.metrics.rouge import rouge_scores
    from obliviate.models.loading import load_model, load_tokenizer
    from obliviate.scoring import generate, score_pairs

    tok, net = load_tokenizer(path), load_model(path)
    forget, holdout = request.eval["forget"], request.eval.get("holdout", [])
    pairs = [(it.question, a) for it in forget for a in (it.answer, it.paraphrased_answer)]
    pairs += [(it.question, p) for it in forget for p in it.perturbed_answers]
    pairs += [(it.question, it.answer) for it in holdout]
    sc = dict(zip(pairs, score_pairs(net, tok, pairs, template, progress=False)))

    def nll(q: str, a: str, skip_first: bool) -> float:
        lp = sc[(q, a)].token_logprobs
        return float(-lp[1:].mean() if skip_first and len(lp) > 1 else -lp.mean())

    out: dict[str, Any] = {"model": label}
    ours, theirs, none = [], [], 0
    for it in forget:
        c = sc[(it.question, it.answer)].without_eos().correct
        ours.append(mem.extraction_strength(c))
        theirs.append(ou_extraction_strength(c))
        none += not c[-1]
    out["es"] = (float(np.mean(ours)), float(np.mean(theirs)), none, len(forget))
    for skip in (False, True):
        prob = np.mean([math.exp(-nll(it.question, it.answer, skip)) for it in forget])
        trs = [
            math.exp(
                nll(it.question, it.paraphrased_answer, skip)
                - np.mean([nll(it.question, p, skip) for p in it.perturbed_answers])
            )
            for it in forget
        ]
        out[f"first_{'skipped' if skip else 'scored'}"] = (prob, tm.truth_ratio_forget(trs), trs)
    if holdout:
        texts, dec = [], []
        for it in [*forget, *holdout]:
            e = encode(tok, it.question, it.answer, template)
            ids = [t for t in e.labels if t != IGNORE][: -1 if e.has_eos else None]
            texts.append(it.answer)
            dec.append(tok.decode(ids, skip_special_tokens=True))
        nlls = [sc[(it.question, it.answer)].nll_avg() for it in [*forget, *holdout]]
        aucs = []
        for tt in (texts, dec):
            s = [mia.zlib_score(n, t) for n, t in zip(nlls, tt)]
            aucs.append(mia.auc(s[: len(forget)], s[len(forget) :]))
        differ = sum(
            len(zlib.compress(a.encode())) != len(zlib.compress(b.encode()))
            for a, b in zip(texts, dec)
        )
        out["zlib"] = (*aucs, differ, len(texts))
        mk = [
            mia.min_k_score(sc[(it.question, it.answer)].token_logprobs, 0.4, has_eos=True)
            for it in [*forget, *holdout]
        ]
        out["min_k_auc"] = mia.auc(mk[: len(forget)], mk[len(forget) :])
    qs = [it.question for it in forget] + [it.paraphrased_question for it in forget]
    gens = dict(zip(qs, generate(net, tok, qs, template, max_new_tokens=200, progress=False)))
    r_ours = rouge_scores(
        [gens[it.paraphrased_question] for it in forget], [it.answer for it in forget]
    )
    r_ou = rouge_scores(
        [gens[it.question] for it in forget], [it.paraphrased_answer for it in forget]
    )
    out["para_rouge"] = tuple(
        float(np.mean([r["rouge_l_recall"] for r in rs])) for rs in (r_ours, r_ou)
    )
    return out


def train(root: Path, builtin: dict[str, Any], steps: int) -> tuple[str, str, str]:
    from obliviate import api

    kw = {"data": "builtin", "size": "xs", "builtin": builtin, "progress": False}
    tr = {"epochs": 15, "lr": 3e-3, "batch_size": 32}
    target = api.finetune(split="full", out=root / "target", train=tr, **kw)
    retain = api.finetune(
        split="retain90", out=root / "retain", train=tr, tokenizer=str(target.path), **kw
    )
    api.unlearn(
        str(target.path), "npo", data="builtin", split="forget10", builtin=builtin,
        out=root / "npo", overrides={"train": {"max_steps": steps}}, progress=False,
    )  # fmt: skip
    return str(target.path), str(retain.path), str(root / "npo" / "model")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", help="target model or run folder (default: train tiny xs models)")
    ap.add_argument("--retain", help="retain model or run folder")
    ap.add_argument("--unlearned", help="unlearned model or run folder")
    ap.add_argument("--people", type=int, default=20, help="built-in benchmark size")
    ap.add_argument("--steps", type=int, default=20, help="NPO steps of the trained model")
    args = ap.parse_args()

    import torch

    from obliviate import api
    from obliviate.data.templates import PromptTemplate
    from obliviate.metrics import mia
    from obliviate.metrics import tofu as tm
    from obliviate.runs import resolve_model_dir

    torch.set_num_threads(2)
    builtin = {"n_people": args.people}
    t0 = time.perf_counter()
    if args.target and args.retain and args.unlearned:
        paths = tuple(resolve_model_dir(p) for p in (args.target, args.retain, args.unlearned))
    else:
        paths = train(Path(tempfile.mkdtemp(prefix="refdiff-")), builtin, args.steps)
    request = api.load_request("builtin", "forget10", builtin=builtin)
    tmpl = PromptTemplate()
    rows = [measure(p, request, tmpl, n) for p, n in zip(paths, ("target", "retain", "unlearned"))]
    n = len(request.eval["forget"])
    print(f"built-in TOFU forget10, {args.people} people: {n} forget items\n")
    print("| model | ES obliviate | ES OpenUnlearning | items with no suffix reproduced |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        es = r["es"]
        print(f"| {r['model']} | {es[0]:.4f} | {es[1]:.4f} | {es[2]} of {es[3]} |")
    print("\n| model | forget prob: all tokens / first skipped | forget TR: all / first skipped |")
    print("| --- | --- | --- |")
    for r in rows:
        a, b = r["first_scored"], r["first_skipped"]
        print(f"| {r['model']} | {a[0]:.4f} / {b[0]:.4f} | {a[1]:.4f} / {b[1]:.4f} |")
    retain_trs = {k: rows[1][k][2] for k in ("first_scored", "first_skipped")}
    for r in (rows[0], rows[2]):
        fq = [tm.forget_quality(r[k][2], retain_trs[k]) for k in ("first_scored", "first_skipped")]
        print(f"forget quality of {r['model']}: all tokens {fq[0]:.4g}, first skipped {fq[1]:.4g}")
    if "zlib" in rows[0]:
        print(
            "\n| model | ZLib AUC: answer text / decoded tokens | texts whose zlib length differs |"
        )
        print("| --- | --- | --- |")
        for r in rows:
            z = r["zlib"]
            print(f"| {r['model']} | {z[0]:.4f} / {z[1]:.4f} | {z[2]} of {z[3]} |")
        a = rows[1]["min_k_auc"]
        print(
            f"\nretain model: Min-K% AUC {a:.4f}; privleak against itself 0 (obliviate), "
            f"{mia.privleak(a, 0.5):.2f} against OpenUnlearning's default reference AUC 0.5"
        )
    print("\n| model | paraphrased ROUGE-L recall: obliviate / OpenUnlearning's PARA_ROUGE |")
    print("| --- | --- |")
    for r in rows:
        print(f"| {r['model']} | {r['para_rouge'][0]:.4f} / {r['para_rouge'][1]:.4f} |")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
