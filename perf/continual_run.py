"""A continual-unlearning run on the built-in tiny models: three disjoint requests (the
``forget10:1/3``, ``2/3``, ``3/3`` author groups) unlearnt one after the other by each method,
with the table after each step (docs/continual.md).

Trains a tiny target (xs, built-in benchmark of ``--people`` people, ``full``) and its retain
model (``retain90``) under ``--root`` (reused when already there), then runs
:func:`obliviate.recipes.continual.run_continual` for every ``--methods`` entry with the
methods' default settings (or ``--set`` overrides) and prints each table.

    .venv/bin/python perf/continual_run.py --root runs/continual-perf --methods graddiff,npo
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    import torch

    from obliviate import api
    from obliviate.config import parse_overrides
    from obliviate.recipes.continual import continual_markdown, run_continual

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True)
    p.add_argument("--methods", default="graddiff,npo")
    p.add_argument("--people", type=int, default=30)  # forget10 = 3 people: one per request
    p.add_argument("--parts", type=int, default=3)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.root)
    builtin = {"n_people": args.people, "qa_per_person": 10, "n_world_facts": 20}
    train = {"epochs": 15, "lr": 3e-3, "batch_size": 32}
    kw = {"size": "xs", "train": train, "builtin": builtin, "progress": False}
    t0 = time.perf_counter()
    if not (root / "target" / "model").is_dir():
        api.finetune(data="builtin", split="full", out=root / "target", **kw)
    if not (root / "retain" / "model").is_dir():
        tok = str(root / "target" / "model")
        api.finetune(data="builtin", split="retain90", out=root / "retain", tokenizer=tok, **kw)
    print(f"target and retain ready in {time.perf_counter() - t0:.0f} s")
    sequence = [f"forget10:{i}/{args.parts}" for i in range(1, args.parts + 1)]
    for method in args.methods.split(","):
        t0 = time.perf_counter()
        doc = run_continual(
            str(root / "target" / "model"),
            method,
            sequence,
            root / f"continual-{method}",
            retain_model=str(root / "retain" / "model"),
            overrides=parse_overrides(args.sets),
            builtin=builtin,
            eval_settings={"max_new_tokens": args.max_new_tokens},
            progress=False,
            log=None,
        )
        print(continual_markdown(doc))
        print(f"<!-- {method}: {time.perf_counter() - t0:.0f} s -->")


if __name__ == "__main__":
    main()
