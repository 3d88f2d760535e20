"""Evaluation speed: obliviate's engine against a naive implementation of the same metrics.

The engine scores every (question, answer variant) once in length-sorted batches and reuses the
per-token log-probs for probability, truth ratio, EM, ES and all four MIA attacks, and generates
in left-padded batches with KV cache. The naive baseline does what a metric-by-metric tool does:
each metric runs its own forward passes, one sample at a time, and generation handles one prompt
at a time. Both compute the same numbers (checked below); the script prints wall times and the
ratio.

    .venv/bin/python perf/eval_speed.py                 # trains a tiny model first (~1-2 min)
    .venv/bin/python perf/eval_speed.py --model runs/demo/target/model
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time

import numpy as np


def naive_eval(model, tok, request, template, max_new_tokens: int) -> dict[str, float]:
    """Each metric on its own, batch size 1, its own forward passes."""
    from obliviate.metrics import memorisation as mem
    from obliviate.metrics import mia
    from obliviate.metrics import tofu as tm
    from obliviate.metrics.rouge import rouge_scores
    from obliviate.scoring import generate, score_pairs

    def one(q: str, a: str):  # a separate forward pass for one sample
        return score_pairs(model, tok, [(q, a)], template, batch_size=1, progress=False)[0]

    forget, holdout = request.eval["forget"], request.eval["holdout"]
    retain = request.eval.get("retain", [])
    out: dict[str, float] = {}
    out["forget_prob"] = float(
        np.mean([math.exp(-one(i.question, i.answer).nll_avg()) for i in forget])
    )
    out["retain_prob"] = float(
        np.mean([math.exp(-one(i.question, i.answer).nll_avg()) for i in retain])
    )
    trs = [
        tm.truth_ratio(
            one(i.question, i.paraphrased_answer).nll_avg(),
            [one(i.question, p).nll_avg() for p in i.perturbed_answers],
        )
        for i in forget
    ]
    out["forget_truth_ratio"] = tm.truth_ratio_forget(trs)
    rtrs = [
        tm.truth_ratio(
            one(i.question, i.paraphrased_answer).nll_avg(),
            [one(i.question, p).nll_avg() for p in i.perturbed_answers],
        )
        for i in retain
    ]
    out["retain_truth_ratio"] = tm.truth_ratio_true_better(rtrs)
    ems, ess = [], []
    for i in forget:
        s = one(i.question, i.answer)
        ems.append(mem.exact_memorisation(s.correct, has_eos=s.has_eos))
    for i in forget:
        s = one(i.question, i.answer)
        ess.append(mem.extraction_strength(s.correct, has_eos=s.has_eos))
    out["forget_exact_memorisation"], out["forget_extraction_strength"] = (
        float(np.mean(ems)),
        float(np.mean(ess)),
    )
    for attack in ("loss", "zlib", "min_k", "min_k_plus_plus"):

        def score(i, attack=attack):
            s = one(i.question, i.answer)
            if attack == "loss":
                return mia.loss_score(s.nll_avg())
            if attack == "zlib":
                return mia.zlib_score(s.nll_avg(), i.answer)
            if attack == "min_k":
                return mia.min_k_score(s.token_logprobs, 0.4, has_eos=s.has_eos)
            return mia.min_k_plus_plus_score(
                s.token_logprobs, s.mu, s.sigma2, 0.4, has_eos=s.has_eos
            )

        out[f"mia_{attack}_auc"] = mia.auc([score(i) for i in forget], [score(i) for i in holdout])
    for split, items in (("forget", forget), ("retain", retain)):
        gens = [
            generate(
                model,
                tok,
                [i.question],
                template,
                max_new_tokens=max_new_tokens,
                batch_size=1,
                progress=False,
            )[0]
            for i in items
        ]
        rs = rouge_scores(gens, [i.answer for i in items])
        out[f"{split}_rouge"] = float(np.mean([r["rouge_l_recall"] for r in rs]))
    return out


def main() -> None:
    import torch

    from obliviate import api
    from obliviate.data.templates import PromptTemplate
    from obliviate.evaluation import EvalSettings, evaluate_model
    from obliviate.models.loading import load_model, load_tokenizer

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--model", help="a model folder (default: train a tiny one on the built-in data)"
    )
    ap.add_argument("--people", type=int, default=30)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    builtin = {"n_people": args.people}
    path = args.model
    if path is None:
        tmp = tempfile.mkdtemp()
        print(f"training a tiny target model on {args.people} people ...")
        path = str(
            api.finetune(split="full", out=tmp, size="xs", builtin=builtin, progress=False).path
        )
    tok, model = load_tokenizer(path), load_model(path)
    request = api.load_request("builtin", "forget10", builtin=builtin)
    request.eval.pop("world_facts", None)
    template = PromptTemplate()
    settings = EvalSettings(max_new_tokens=args.max_new_tokens)

    evaluate_model(model, tok, request, template, settings, progress=False)  # warm-up
    t0 = time.perf_counter()
    fast = evaluate_model(model, tok, request, template, settings, progress=False)
    t_engine = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = naive_eval(model, tok, request, template, args.max_new_tokens)
    t_naive = time.perf_counter() - t0

    n = sum(len(v) for v in request.eval.values())
    print(
        f"items evaluated: {n} (forget {len(request.eval['forget'])}, retain "
        f"{len(request.eval['retain'])}, holdout {len(request.eval['holdout'])})"
    )
    worst = 0.0
    for k, v in slow.items():
        worst = max(worst, abs(v - fast.metrics[k]["value"]))
    print(f"largest metric difference engine vs naive: {worst:.2e}")
    print(
        f"engine: {t_engine:.2f} s   naive: {t_naive:.2f} s   speed-up: {t_naive / t_engine:.1f}x"
    )


if __name__ == "__main__":
    main()
