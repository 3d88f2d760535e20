"""`obliviate sweep`: search a method's hyper-parameters with Optuna (docs/sweep.md)."""

from __future__ import annotations

import argparse

from obliviate.cli._common import add_data_args, add_set_arg, data_kwargs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="search a method's hyper-parameters (Optuna; resumable study folder)",
        description="Each trial unlearns with one setting and evaluates the result; the study "
        "(OUT/study.db) resumes when run again and may be shared by several processes. "
        "See docs/sweep.md and `obliviate ls objectives`.",
    )
    p.add_argument("--model", required=True, help="target model: folder, run folder or hub name")
    p.add_argument("--method", default="npo", help="method name (default: npo)")
    p.add_argument("--out", required=True, help="study folder (trials go to OUT/trials/NNNN)")
    p.add_argument(
        "--retain-model", help="the retain model (gold standard): needed by the oracle objective"
    )
    p.add_argument(
        "--trials", type=int, default=10, help="finished trials the study should reach (default 10)"
    )
    p.add_argument(
        "--objective",
        action="append",
        metavar="NAME[:KEY=VALUE,...]",
        help="objective (repeatable: several give a Pareto front): oracle (default), mia, "
        "forget_prob_gap, utility_drop, e.g. --objective oracle:utility=0.9",
    )
    p.add_argument("--sampler", default="tpe", choices=["tpe", "random", "grid"])
    p.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="KEY=SPEC",
        help="search dimension, added to or replacing the method's defaults: "
        "train.lr=1e-5:1e-3:log, train.epochs=2:10:int, forget_params.beta=0.05,0.1,0.5",
    )
    p.add_argument(
        "--only-space",
        action="store_true",
        help="search only the --space dimensions, not the method's default ones",
    )
    p.add_argument(
        "--scale",
        choices=["tiny", "real"],
        help="which default ranges (default: tiny for obliviate's tiny models, else real)",
    )
    p.add_argument("--grid-points", type=int, default=3, help="grid sampler: values per range")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (one per parallel process)")
    p.add_argument(
        "--eval-set",
        dest="eval_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="evaluation setting, e.g. generate=false (no ROUGE; faster)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="N",
        help="run every trial with N seeds (train.seed, +1, ...) and score the mean of each "
        "metric over them (per-seed values are kept in the trial)",
    )
    p.add_argument("--no-progress", action="store_true")
    add_data_args(p)
    add_set_arg(p, "method (fixed for every trial)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from obliviate import api
    from obliviate.config import parse_overrides
    from obliviate.registry import METHODS

    METHODS.entry(args.method)  # unknown method: did-you-mean before any loading
    res = api.sweep(
        args.model,
        args.method,
        args.out,
        retain_model=args.retain_model,
        trials=args.trials,
        objectives=args.objective or ["oracle"],
        sampler=args.sampler,
        space=args.space,
        default_space=not args.only_space,
        overrides=parse_overrides(args.overrides),
        scale=args.scale,
        grid_points=args.grid_points,
        seed=args.seed,
        eval_settings=parse_overrides(args.eval_overrides) or None,
        progress=not args.no_progress,
        seeds=args.seeds,
        **data_kwargs(args),
    )
    print(res.table)
    print(f"summary: {res.out / 'summary.json'}")
    return 0
