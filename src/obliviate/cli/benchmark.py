"""`obliviate benchmark`: many methods on one benchmark split, one leaderboard."""

from __future__ import annotations

import argparse

from obliviate.cli._common import builtin_kwargs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark", help="run many methods on one benchmark split and write a leaderboard",
        description="Evaluate target and retain models, unlearn with each method, evaluate each, "
                    "write comparison.json/.md and a report. Without --target/--retain the tiny "
                    "default models are trained first. Example on real TOFU files: "
                    "obliviate benchmark --data ../shared/data/tofu --split forget01 "
                    "--methods graddiff,npo --size m")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--methods", default="graddiff,npo",
                   help="comma-separated method names, or 'all' (see `obliviate ls methods`)")
    p.add_argument("--data", default="builtin")
    p.add_argument("--split", default="forget10")
    p.add_argument("--people", type=int, help="built-in benchmark: number of people")
    p.add_argument("--target", help="target model (folder or hub name); default: train the tiny one")
    p.add_argument("--retain", help="retain model (the gold standard); default: train the tiny one")
    p.add_argument("--size", default="s", choices=["xs", "s", "m", "l"])
    p.add_argument("--epochs", type=float, help="fine-tuning epochs for the tiny models")
    p.add_argument("--max-new-tokens", type=int, default=200, help="generation length for ROUGE")
    p.add_argument("--template", default="qa", choices=["qa", "chat", "raw"])
    p.add_argument("--utility", help="comma-separated splits feeding model utility (default: every "
                                     "available one of retain, real_authors, world_facts); tiny models "
                                     "trained from scratch cannot know real authors: use --utility retain")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def _eval_settings(args: argparse.Namespace) -> dict:
    out: dict = {"max_new_tokens": args.max_new_tokens}
    if args.utility:
        out["utility_splits"] = tuple(s for s in args.utility.split(",") if s)
    return out


def run(args: argparse.Namespace) -> int:
    from obliviate.pipeline import comparison_markdown, run_benchmark
    from obliviate.registry import METHODS

    methods = METHODS.names() if args.methods == "all" else [m for m in args.methods.split(",") if m]
    for m in methods:
        METHODS.entry(m)  # fail fast on a typo, with did-you-mean
    doc = run_benchmark(
        args.out, methods=methods, data=args.data, split=args.split, target=args.target,
        retain=args.retain, size=args.size, builtin=builtin_kwargs(args),
        finetune_train={"epochs": args.epochs} if args.epochs else None,
        eval_settings=_eval_settings(args), template=args.template,
        progress=not args.no_progress)
    print(comparison_markdown(doc))
    try:
        from obliviate.reporting import write_leaderboard, write_report
    except ImportError:
        return 0
    print(f"report: {write_report([args.out])}")
    return 0
