"""`obliviate wmdp`: WMDP-style multiple-choice accuracy of one model (+ lm-eval tasks)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "wmdp",
        help="WMDP-style multiple-choice accuracy (chance = 0.25)",
        description="Zero-shot multiple-choice accuracy by comparing answer "
        "log-likelihoods (Li+ 2024, arXiv 2403.03218). --mode letters "
        "is the standard WMDP/lm-eval protocol; --mode cloze scores the "
        "choice texts (what the tiny built-in models can do).",
    )
    p.add_argument("--model", required=True, help="model folder, run folder or hub name")
    p.add_argument(
        "--data",
        default="cais/wmdp",
        help="'cais/wmdp' (default), another hub name, a folder or file of "
        "question/choices/answer rows, or 'builtin'",
    )
    p.add_argument(
        "--subsets",
        help="comma-separated subsets (default: wmdp-bio,wmdp-cyber,wmdp-chem; "
        "builtin: forget,retain)",
    )
    p.add_argument("--split", default="test")
    p.add_argument("--revision", help="hub dataset revision to pin (recorded with the results)")
    p.add_argument(
        "--people",
        type=int,
        help="built-in set: number of people of the corpus the model was trained on (default 60)",
    )
    p.add_argument("--mode", choices=["letters", "cloze"], default="letters")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=2048)
    p.add_argument("--out", help="run folder for metrics.json and samples.jsonl")
    p.add_argument(
        "--lm-eval-tasks",
        help="also run these lm-evaluation-harness tasks, e.g. mmlu (needs `pip install lm-eval`)",
    )
    p.add_argument(
        "--lm-eval-limit", type=int, help="lm-eval: questions per task (for a quick check)"
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``obliviate wmdp`` = ``obliviate eval --benchmark wmdp`` (or ``builtin-wmdp``) plus the
    optional lm-evaluation-harness tasks."""
    from obliviate import api
    from obliviate.benchmarks.harness import run_lm_eval
    from obliviate.cli.eval import print_result
    from obliviate.parallel_eval import launched
    from obliviate.runs import resolve_model_dir

    is_builtin = args.data == "builtin"
    builtin = {"n_people": args.people} if is_builtin and args.people else None
    settings = {"mode": args.mode, "batch_size": args.batch_size, "max_length": args.max_length}
    if args.subsets:
        settings["subsets"] = args.subsets
    extra = {}
    if args.lm_eval_tasks:
        path = resolve_model_dir(args.model)
        tasks = [t for t in args.lm_eval_tasks.split(",") if t]
        extra = run_lm_eval(path, tasks, args.batch_size, args.lm_eval_limit)
    meta = {
        "name": "wmdp",
        "role": "unlearned",
        "data": args.data,
        "mode": args.mode,
        "lm_eval": extra,
    }
    with launched() as main:  # under torchrun: the ranks share the work, rank 0 writes
        result = api.evaluate(
            args.model,
            benchmark="builtin-wmdp" if is_builtin else "wmdp",
            data=args.data,
            split=args.split,
            settings=settings,
            builtin=builtin,
            revision=args.revision,
            out=args.out,
            meta=meta,
            progress=not args.no_progress,
        )
    if not main:
        return 0
    print_result(result)
    for task, values in extra.items():
        print(f"lm-eval {task}: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(values.items())))
    return 0
