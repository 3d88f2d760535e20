"""Does quantisation bring unlearned knowledge back? The quantisation attack of `obliviate audit`
on the built-in tiny models, with every installed quantiser (docs/audit.md "Quantisation").

Trains a tiny target (built-in benchmark ``full``) and retain model (``retain90``), or takes
``--target`` / ``--retain`` folders, unlearns ``forget10`` with ``--method`` at each ``--lrs``
learning rate, and prints the forget metrics (answer probability and ROUGE-L recall of the
greedy answer) of the target, the retain model, the unlearned model and the unlearned model
after 8- and 4-bit weight quantisation, for each quantiser (Zhang+ 2024, arXiv 2410.16454:
knowledge removed with a small learning rate returns at 4 bits, hardly at 8).

    .venv/bin/python perf/quant_audit.py --lrs 1e-4,3e-4,1e-3 --quantisers quanto,torchao,rtn
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

TINY_BUILTIN = {"n_people": 20, "qa_per_person": 10, "n_world_facts": 20}


def _train(root: Path) -> tuple[str, str]:
    from obliviate import api

    train = {"epochs": 15, "lr": 3e-3, "batch_size": 32}
    kw = {"size": "xs", "train": train, "builtin": TINY_BUILTIN, "progress": False}
    target = api.finetune(data="builtin", split="full", out=root / "target", **kw)
    retain = api.finetune(
        data="builtin", split="retain90", out=root / "retain", tokenizer=str(target.path), **kw
    )
    return str(target.path), str(retain.path)


def _codes_unchanged(target: str, unlearned: str) -> float:
    """Share of the unlearned model's 4-bit per-channel RTN codes equal to the target's."""
    import torch

    from obliviate.models.loading import load_model

    t, u = load_model(target), load_model(unlearned)
    same, total = 0, 0
    for (name, a), (_, b) in zip(t.named_parameters(), u.named_parameters()):
        if a.dim() == 2 and name.endswith("proj.weight"):
            qa = torch.round(a / (a.abs().amax(1, keepdim=True) / 7))
            qb = torch.round(b / (b.abs().amax(1, keepdim=True) / 7))
            same, total = same + int((qa == qb).sum()), total + qa.numel()
    return same / total


def _target_prob(target: str, quantisers: list[str]) -> str:
    """The target's forget answer probability, full precision and after 4-bit quantisation."""
    import math

    from obliviate.api import load_request
    from obliviate.audits.quantisers import quantise_with
    from obliviate.data.templates import PromptTemplate
    from obliviate.models.loading import load_model, load_tokenizer
    from obliviate.scoring import score_pairs

    model, tok = load_model(target), load_tokenizer(target)
    req = load_request("builtin", "forget10", builtin=TINY_BUILTIN)
    pairs = [(it.question, it.answer) for it in (req.eval.get("forget") or req.forget)]

    def prob(m: object) -> float:
        ts = score_pairs(m, tok, pairs, PromptTemplate("qa"), progress=False)
        return sum(math.exp(-t.nll_avg(include_eos=True)) for t in ts) / len(ts)

    parts = [f"full precision {prob(model):.3f}"]
    parts += [f"{q} 4-bit {prob(quantise_with(model, q, 4)[0]):.3f}" for q in quantisers]
    return "target forget prob: " + ", ".join(parts)


def main() -> None:
    import torch

    from obliviate import api
    from obliviate.audits.quantisers import installed
    from obliviate.audits.runner import run_audit

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", help="target model folder (default: train one)")
    parser.add_argument("--retain", help="retain model folder (default: train one)")
    parser.add_argument("--method", default="ga", help="unlearning method (default ga)")
    parser.add_argument("--lrs", default="1e-4,3e-4,1e-3", help="comma-separated learning rates")
    parser.add_argument("--epochs", type=float, default=5.0, help="unlearning epochs")
    parser.add_argument("--quantisers", default="quanto,torchao,rtn")
    parser.add_argument("--group-size", type=int, default=None, help="quant_group_size")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--root", help="scratch folder (default: a new temporary folder)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.root or tempfile.mkdtemp(prefix="quant_audit_"))
    t0 = time.perf_counter()
    if args.target and args.retain:
        target, retain = args.target, args.retain
    else:
        target, retain = _train(root)
    print(f"models in {root} ({time.perf_counter() - t0:.0f} s)")
    quantisers = [q for q in args.quantisers.split(",") if installed(q)]
    skipped = sorted(set(args.quantisers.split(",")) - set(quantisers))
    if skipped:
        print(f"not installed, left out: {', '.join(skipped)}")
    head = "| method, lr | quantiser | metric | target | retain | unlearned | +8-bit | +4-bit | R 8-bit | R 4-bit |"
    lines = [head, "|---" * 10 + "|"]
    for lr in [float(x) for x in args.lrs.split(",")]:
        out = root / f"{args.method}_lr{lr:g}"
        if not (out / "model").is_dir():
            api.unlearn(
                target,
                method=args.method,
                split="forget10",
                out=out,
                builtin=TINY_BUILTIN,
                progress=False,
                overrides={"train": {"lr": lr, "epochs": args.epochs}},
            )
        share = _codes_unchanged(target, str(out / "model"))
        print(f"{args.method} lr {lr:g}: {100 * share:.1f} % of 4-bit codes unchanged", flush=True)
        for q in quantisers:
            t = time.perf_counter()
            res = run_audit(
                str(out),
                target,
                retain,
                split="forget10",
                builtin=TINY_BUILTIN,
                settings={
                    "attacks": ["quantise"],
                    "quantiser": q,
                    "quant_group_size": args.group_size,
                    "max_new_tokens": args.max_new_tokens,
                },
                log=None,
            )
            rows = {(r["attack"], r["metric"]): r for r in res.rows}
            for metric in ("prob", "rouge"):
                r8, r4 = rows[("quant8", metric)], rows[("quant4", metric)]
                vals = [r8["target"], r8["retain"], r8["unlearned"]]
                vals += [r8["unlearned_attacked"], r4["unlearned_attacked"]]
                rec = [r8["recoverability"], r4["recoverability"]]
                lines.append(
                    f"| {args.method}, {lr:g} | {q} | forget {metric} | "
                    + " | ".join(f"{v:.3f}" for v in vals)
                    + " | "
                    + " | ".join("-" if v is None else f"{v:+.2f}" for v in rec)
                    + " |"
                )
            print(f"{args.method} lr {lr:g} {q}: {time.perf_counter() - t:.1f} s", flush=True)
    print(_target_prob(target, quantisers))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
