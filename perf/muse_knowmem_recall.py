"""Does a tiny target trained on the built-in MUSE corpus recall its forget facts in KnowMem form?

Trains (or reuses) a tiny Llama on the built-in corpus's target documents (forget + retain1 +
retain2) and counts exact answers to the forget KnowMem questions, with the bare prompt and with
the few-shot (ICL) prompt MUSE uses. This is what decides whether the built-in KnowMem columns
can separate a target from a retrained model.

    .venv/bin/python perf/muse_knowmem_recall.py --people 30 --size xs --epochs 20
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    import torch

    from obliviate.benchmarks.muse import KNOWMEM_STOPS, knowmem_prompt
    from obliviate.data.builtin_muse import builtin_muse_corpus_text
    from obliviate.data.muse import load_muse
    from obliviate.data.templates import PromptTemplate
    from obliviate.models.loading import load_model, load_tokenizer
    from obliviate.models.tiny import train_tokenizer
    from obliviate.recipes.muse import train_on_documents
    from obliviate.scoring import generate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=30)
    ap.add_argument("--size", default="xs")
    ap.add_argument("--epochs", type=float, default=20)
    ap.add_argument("--out", default="runs/muse_knowmem_recall")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    out = Path(args.out) / f"{args.people}_{args.size}_{args.epochs:g}"
    data = load_muse("builtin", n_people=args.people)
    if not (out / "model" / "config.json").exists():
        tok = train_tokenizer(builtin_muse_corpus_text(args.people))
        t0 = time.perf_counter()
        docs = data.raw["forget"] + data.raw["retain1"] + data.raw["retain2"]
        train_on_documents(tok, docs, out, args.size, {"epochs": args.epochs})
        print(f"trained on {len(docs)} documents in {time.perf_counter() - t0:.0f} s")
    model, tok = load_model(str(out / "model")), load_tokenizer(str(out / "model"))
    qa = data.knowmem["forget_qa"]
    icl = [(x.question, x.answer) for x in data.knowmem["forget_qa_icl"]]
    for name, shots in (("bare prompt", []), (f"{len(icl)}-shot prompt", icl)):
        prompts = [knowmem_prompt(shots, it.question) for it in qa]
        gens = generate(
            model,
            tok,
            prompts,
            PromptTemplate("raw"),
            max_new_tokens=16,
            progress=False,
            stop_strings=KNOWMEM_STOPS,
        )
        hits = sum(g.strip() == it.answer.strip() for g, it in zip(gens, qa))
        print(
            f"{name}: {hits} of {len(qa)} forget KnowMem answers exact; e.g. "
            f"{[(g, it.answer) for g, it in list(zip(gens, qa))[:3]]}"
        )


if __name__ == "__main__":
    main()
