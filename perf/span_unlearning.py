"""SeUL and DeMem on the tiny built-in benchmark: how much of the sensitive spans, of the other
answer tokens and of the retain answers each method leaves (docs/methods.md, "SeUL", "DeMem").

    PYTHONPATH=src python perf/span_unlearning.py [--target DIR] [--methods seul,graddiff,demem]

Trains the tests' tiny target (xs model, 20 people x 10 QA, forget10 = 20 QA) unless --target
is given. The spans are the SeUL scorer's on the target (30 % of each forget answer, highest
surprisal), fixed for every model. Per model: S-MA / S-EL on the spans, the teacher-forced
accuracy of the forget answer tokens outside the spans and of the retain answers (utility),
and the mean DeMem reward (1 - BLEU) of the greedy forget answers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

BUILTIN = {"n_people": 20, "qa_per_person": 10, "n_world_facts": 20}


def greedy_reward(model: Any, tok: Any, items: list[Any], template: Any) -> float:
    import torch

    from obliviate.methods.reward_losses import dissimilarity_reward

    out = []
    with torch.no_grad():
        for it in items:
            p = template.prompt_ids(tok, it.question)
            truth = template.pair_ids(tok, it.question, it.answer)[1]
            x = torch.tensor([p])
            for _ in range(len(truth) + 1):
                nxt = model(input_ids=x, attention_mask=torch.ones_like(x)).logits[:, -1:]
                x = torch.cat([x, nxt.argmax(-1)], dim=1)
            gen = [t for t in x[0, len(p) :].tolist() if t != tok.eos_token_id]
            out.append(dissimilarity_reward(gen, truth))
    return sum(out) / len(out)


def main() -> None:
    import torch

    from obliviate import api
    from obliviate.config import TrainConfig
    from obliviate.data.templates import IGNORE, PromptTemplate
    from obliviate.methods.base import UnlearnJob
    from obliviate.methods.seul import SeULTerm
    from obliviate.models.loading import load_model, load_tokenizer
    from obliviate.registry import METHODS
    from obliviate.span_eval import span_scores

    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default=None)
    ap.add_argument("--methods", default="seul,graddiff,demem")
    args = ap.parse_args()
    torch.manual_seed(0)
    root = Path(tempfile.mkdtemp(prefix="span_unlearning_"))
    target = args.target
    if target is None:
        train = {"epochs": 15, "lr": 3e-3, "batch_size": 32}
        target = str(
            api.finetune(
                data="builtin",
                split="full",
                out=root / "target",
                size="xs",
                train=train,
                builtin=BUILTIN,
                progress=False,
            ).path
        )
    tok = load_tokenizer(target)
    request = api.load_request("builtin", "forget10", builtin=BUILTIN)
    tpl = PromptTemplate("qa")

    def job_for(model: Any) -> UnlearnJob:
        return UnlearnJob(model, tok, request, tpl, None, progress=False)

    probe = job_for(load_model(target))
    forget = probe.encode_items(request.forget)
    retain = probe.encode_items(request.retain[:100])
    term = SeULTerm()
    term.setup(probe, forget, TrainConfig())
    spans = term.masks
    others = [[y != IGNORE and not m for y, m in zip(e.labels, s)] for e, s in zip(forget, spans)]
    answers = [[y != IGNORE for y in e.labels] for e in retain]

    def row(name: str, model: Any, secs: float) -> None:
        model.eval()
        s = span_scores(model, tok, forget, spans)[1]
        o = span_scores(model, tok, forget, others)[1]
        r = span_scores(model, tok, retain, answers)[1]
        g = greedy_reward(model, tok, request.forget, tpl)
        print(
            f"| {name} | {s['s_ma']:.3f} | {s['s_el']:.3f} | {o['s_ma']:.3f} | {r['s_ma']:.3f} "
            f"| {g:.3f} | {secs:.0f} |",
            flush=True,
        )

    n_span = sum(sum(m) for m in spans)
    print(f"forget10: {len(forget)} items, {n_span} span tokens (scorer, 30 %)")
    print("| model | S-MA | S-EL | forget acc. outside spans | retain acc. | reward | s |")
    print("|---|---|---|---|---|---|---|")
    row("target", probe.model, 0.0)
    for name in args.methods.split(","):
        job = job_for(load_model(target))
        t0 = time.perf_counter()
        out = METHODS.get(name).build({}).unlearn(job)
        row(name, out.model, time.perf_counter() - t0)
        if "mean_reward_per_round" in out.info:
            rounds = ", ".join(f"{v:.3f}" for v in out.info["mean_reward_per_round"])
            print(f"  {name}: mean sampled reward per round: {rounds}")


if __name__ == "__main__":
    main()
