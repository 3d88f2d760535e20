"""`obliviate benchmark`: many methods on one benchmark split, one leaderboard."""

from __future__ import annotations

import argparse
from typing import cast

from obliviate.cli._common import add_set_arg, builtin_kwargs

MUSE_ENTRIES = ("builtin-muse", "muse-news", "muse-books")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark",
        help="run many methods on one benchmark and write a leaderboard",
        description="Any registered benchmark (--benchmark NAME, `obliviate ls benchmarks`; "
        "default tofu). Evaluate target and retain models, unlearn with each method, "
        "evaluate each, write comparison.json/.md and a report. Without "
        "--target/--retain the tiny default models are trained first (TOFU and "
        "MUSE entries). Example on real TOFU files: obliviate benchmark --data "
        "../shared/data/tofu --split forget01 --methods graddiff,npo --size m",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--methods",
        default="graddiff,npo",
        help="comma-separated method names, or 'all' (see `obliviate ls methods`)",
    )
    p.add_argument("--benchmark", metavar="NAME", help="registered benchmark (default: tofu)")
    p.add_argument(
        "--data", help="the benchmark's source (default: the benchmark's own; tofu: builtin)"
    )
    p.add_argument("--split", help="forget split (default: the benchmark's own; tofu: forget10)")
    p.add_argument("--forget", help="qa / documents benchmarks: your forget file or folder")
    p.add_argument("--retain-data", help="qa / documents benchmarks: your retain file or folder")
    p.add_argument("--holdout", help="qa / documents benchmarks: your holdout file or folder")
    p.add_argument("--revision", help="hub dataset revision to pin")
    p.add_argument("--people", type=int, help="built-in benchmark: number of people")
    p.add_argument(
        "--target", help="target model (folder or hub name); default: train the tiny one"
    )
    p.add_argument("--retain", help="retain model (the gold standard); default: train the tiny one")
    p.add_argument(
        "--size",
        choices=["xs", "s", "m", "l"],
        help="tiny model size (default: s; MUSE entries: xs)",
    )
    p.add_argument("--epochs", type=float, help="fine-tuning epochs for the tiny models")
    p.add_argument(
        "--max-new-tokens", type=int, default=200, help="TOFU / qa: generation length for ROUGE"
    )
    p.add_argument("--template", default="qa", choices=["qa", "chat", "raw"])
    p.add_argument(
        "--utility",
        help="comma-separated splits feeding model utility (default: every "
        "available one of retain, real_authors, world_facts); tiny models "
        "trained from scratch cannot know real authors: use --utility retain",
    )
    add_set_arg(p, "evaluation", "batch_size=8 or generate=false")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="re-run finished stages whose configuration differs (default: an error)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="N",
        help="run each method with N seeds (OUT/<method>/seed-<s>/; target and retain are "
        "trained once), rank by the mean and mark methods within noise of the best",
    )
    p.add_argument(
        "--tuned",
        type=int,
        default=0,
        metavar="N",
        help="also run each method at the setting a sweep of N trials selects (the same "
        "budget for every method; OUT/tuned/<method>/, docs/sweep.md)",
    )
    p.add_argument(
        "--tune-objective",
        default="oracle",
        metavar="SPEC",
        help="objective of the --tuned sweeps (default oracle; mia: without the retain model)",
    )
    p.add_argument(
        "--tune-compare",
        default="mia",
        metavar="SPEC",
        help="with --tuned: also list the trial this objective selects among the same trials "
        "(default mia, which needs no retain model; 'none' to skip)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def _eval_settings(args: argparse.Namespace, family_qa: bool) -> dict:
    from obliviate.config import parse_overrides

    out: dict = {"max_new_tokens": args.max_new_tokens} if family_qa else {}
    if args.utility:
        out["utility_splits"] = tuple(s for s in args.utility.split(",") if s)
    out.update(parse_overrides(args.overrides))
    return out


def run(args: argparse.Namespace) -> int:
    from obliviate.benchmarks import get_benchmark
    from obliviate.registry import METHODS

    name = args.benchmark or "tofu"
    get_benchmark(name)  # unknown name: did-you-mean before anything runs
    methods = (
        METHODS.names() if args.methods == "all" else [m for m in args.methods.split(",") if m]
    )
    for m in methods:
        METHODS.entry(m)  # fail fast on a typo, with did-you-mean
    finetune = {"epochs": args.epochs} if args.epochs else None
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
    if args.tuned < 0:
        raise ValueError(f"--tuned must be 0 (off) or a number of trials, got {args.tuned}")
    if name in MUSE_ENTRIES and args.tuned:
        raise ValueError(f"--tuned is not supported for {name} yet; run the sweeps directly")
    if args.tuned:  # a typo in an objective fails before anything runs
        from obliviate.sweep.objectives import parse_objective

        parse_objective(args.tune_objective)
        if args.tune_compare != "none":
            parse_objective(args.tune_compare)
    if name in MUSE_ENTRIES and args.seeds > 1:
        raise ValueError(
            f"--seeds is not supported for {name} yet; run the MUSE benchmark without it"
        )
    if name in MUSE_ENTRIES:
        from obliviate.recipes.muse import run_muse
        from obliviate.reporting.render import muse_markdown

        doc = run_muse(
            args.out,
            methods=methods,
            data=cast(str, get_benchmark(name).resolve_data(args.data)),  # MUSE entries have one
            target=args.target,
            retrain=args.retain,
            size=args.size or "xs",
            builtin=builtin_kwargs(args),
            finetune_train=finetune,
            settings=_eval_settings(args, False),
            progress=not args.no_progress,
            revision=args.revision,
            overwrite=args.overwrite,
        )
        print(muse_markdown(doc))
        return 0
    from obliviate.recipes.tofu import comparison_markdown, run_benchmark

    doc = run_benchmark(
        args.out,
        methods=methods,
        data=args.data,
        split=args.split,
        target=args.target,
        retain=args.retain,
        size=args.size or "s",
        builtin=builtin_kwargs(args),
        finetune_train=finetune,
        eval_settings=_eval_settings(args, name in ("tofu", "qa")),
        template=args.template,
        progress=not args.no_progress,
        benchmark=None if name == "tofu" else name,
        forget=args.forget,
        retain_data=args.retain_data,
        holdout=args.holdout,
        revision=args.revision,
        overwrite=args.overwrite,
        seeds=args.seeds,
        tuned=args.tuned,
        tune_objective=args.tune_objective,
        tune_compare=None if args.tune_compare == "none" else args.tune_compare,
    )
    print(comparison_markdown(doc))
    try:
        from obliviate.reporting import write_leaderboard, write_report  # noqa: F401
    except ImportError:
        return 0
    print(f"report: {write_report([args.out])}")
    return 0
