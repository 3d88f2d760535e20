"""Does an embedding-space attack bring unlearned knowledge back beyond what it gives the retain
model? The `embedding` attack of `obliviate audit` next to the prompt-based attacks, on the
built-in tiny models (docs/audit.md "Embedding-space attack").

Trains a tiny target (built-in benchmark ``full``) and retain model (``retain90``), or takes
``--target`` / ``--retain`` folders, unlearns ``forget10`` with each ``--methods`` entry and
audits it with the paraphrase, jailbreak, relearning and embedding attacks, printing each row's
forget answer probability on the three models, under attack, its recoverability R and the
retain-model control (Schwinn+ 2024, arXiv 2402.09063; Chen+ 2025, arXiv 2502.15836).

    .venv/bin/python perf/embedding_audit.py --methods graddiff,npo
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

TINY_BUILTIN = {"n_people": 20, "qa_per_person": 10, "n_world_facts": 20}
UNLEARN = {"train": {"lr": 5e-4, "epochs": 10}}  # as tests/integration/test_audit.py


def _train(root: Path) -> tuple[str, str]:
    from obliviate import api

    train = {"epochs": 15, "lr": 3e-3, "batch_size": 32}
    kw = {"size": "xs", "train": train, "builtin": TINY_BUILTIN, "progress": False}
    target = api.finetune(data="builtin", split="full", out=root / "target", **kw)
    retain = api.finetune(
        data="builtin", split="retain90", out=root / "retain", tokenizer=str(target.path), **kw
    )
    return str(target.path), str(retain.path)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def main() -> None:
    import torch

    from obliviate import api
    from obliviate.audits.runner import run_audit

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", default="graddiff,npo")
    p.add_argument("--target")
    p.add_argument("--retain")
    p.add_argument("--attacks", default="paraphrase,jailbreak,relearn,embedding")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from obliviate.config import parse_overrides

    settings = {
        "max_new_tokens": 16,
        "attacks": args.attacks.split(","),
        **parse_overrides(args.sets),
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.target and args.retain:
            target, retain = args.target, args.retain
        else:
            t0 = time.perf_counter()
            target, retain = _train(root)
            print(f"trained target and retain in {time.perf_counter() - t0:.0f} s")
        print(
            "| method | row | n | target | retain | unlearned | retain+attack | "
            "unlearned+attack | R | control |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for method in args.methods.split(","):
            out = root / method
            api.unlearn(
                target,
                method=method,
                split="forget10",
                out=out,
                builtin=TINY_BUILTIN,
                progress=False,
                overrides=UNLEARN,
            )
            t0 = time.perf_counter()
            res = run_audit(
                out,
                target,
                retain,
                split="forget10",
                builtin=TINY_BUILTIN,
                settings=settings,
                log=None,
            )
            for r in res.rows:
                if r["metric"] != "prob":
                    continue
                cells = [r["target"], r["retain"], r["unlearned"], r["retain_attacked"]]
                cells += [r["unlearned_attacked"], r["recoverability"], r["control"]]
                print(
                    f"| {method} | {r['attack']} | {r['n']} | "
                    + " | ".join(_fmt(c) for c in cells)
                    + " |"
                )
            print(f"<!-- {method}: audit {time.perf_counter() - t0:.0f} s -->")


if __name__ == "__main__":
    main()
