"""`obliviate muse`: the MUSE six-way evaluation (run, eval, export)."""

from __future__ import annotations

import argparse

from obliviate.cli._common import add_set_arg


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        default="builtin",
        help="'builtin' (generated, offline), 'news', 'books', a hub name such as "
        "muse-bench/MUSE-News, or a folder in the hub layout "
        "(<folder>/<config>/<split>.jsonl) (default: builtin)",
    )
    p.add_argument("--revision", help="hub dataset revision to pin (recorded with the results)")
    p.add_argument(
        "--people", type=int, help="built-in corpus: number of fictitious people (default 60)"
    )
    p.add_argument("--no-progress", action="store_true")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "muse",
        help="MUSE six-way evaluation (VerbMem, KnowMem, PrivLeak, utility, "
        "scalability, sustainability)",
        description="MUSE (Shi+ 2024, arXiv 2407.06460). `run` trains (or takes) a "
        "target and a retrained model, unlearns with each method and "
        "writes the six-way table; `eval` evaluates one model; `export` "
        "writes the built-in corpus in the hub layout.",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB")

    r = verbs.add_parser("run", help="the whole six-way evaluation for several methods")
    r.add_argument("--out", required=True, help="output folder")
    r.add_argument("--methods", default="graddiff,npo", help="comma-separated method names")
    r.add_argument("--target", help="target model (default: train a tiny one on the corpus)")
    r.add_argument("--retrain", help="retrained model, never trained on forget (default: tiny)")
    r.add_argument("--size", default="xs", choices=["xs", "s", "m", "l"], help="tiny model size")
    r.add_argument("--epochs", type=float, help="fine-tuning epochs of the tiny models")
    r.add_argument("--no-scal", action="store_true", help="skip C5 (scalability)")
    r.add_argument("--no-sust", action="store_true", help="skip C6 (sustainability)")
    r.add_argument(
        "--overwrite",
        action="store_true",
        help="re-run finished stages whose configuration differs (default: an error)",
    )
    r.add_argument(
        "--method-set",
        dest="method_overrides",
        action="append",
        default=[],
        metavar="METHOD.KEY=VALUE",
        help="override a method setting, e.g. npo.train.lr=5e-4 (repeatable)",
    )
    _add_data(r)
    add_set_arg(
        r, "MUSE evaluation (max_items, n_icl, use_stemmer, max_length, ...)", "max_items=20"
    )
    r.set_defaults(func=run)

    e = verbs.add_parser("eval", help="C1-C4 of one model")
    e.add_argument("--model", required=True, help="model folder, run folder or hub name")
    e.add_argument("--retrain-model", help="the retrained model (needed for PrivLeak)")
    e.add_argument("--out", help="run folder for metrics.json and samples.jsonl")
    _add_data(e)
    add_set_arg(
        e, "MUSE evaluation (max_items, n_icl, use_stemmer, max_length, ...)", "max_items=20"
    )
    e.set_defaults(func=run)

    x = verbs.add_parser("export", help="write the built-in corpus as <out>/<config>/<split>.jsonl")
    x.add_argument("--out", required=True)
    x.add_argument("--people", type=int, default=60)
    x.set_defaults(func=run)
    p.set_defaults(func=run, verb=None, muse_help=p.format_help)


def _builtin(args: argparse.Namespace) -> dict | None:
    if args.data != "builtin" or not getattr(args, "people", None):
        return None
    return {"n_people": args.people}


def run(args: argparse.Namespace) -> int:
    from obliviate.config import parse_overrides

    if args.verb is None:
        print(args.muse_help())
        return 2
    if args.verb == "export":
        from pathlib import Path

        from obliviate.data.builtin_muse import generate_builtin_muse
        from obliviate.io import write_jsonl

        for config, splits in generate_builtin_muse(n_people=args.people).items():
            for split, rows in splits.items():
                write_jsonl(Path(args.out) / config / f"{split}.jsonl", rows)
        print(f"wrote the built-in MUSE corpus ({args.people} people) to {args.out}")
        return 0
    if args.verb == "eval":
        return _eval(args, parse_overrides(args.overrides))
    from obliviate.recipes.muse import run_muse
    from obliviate.registry import METHODS
    from obliviate.reporting.render import muse_markdown

    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        METHODS.entry(m)  # fail fast on a typo, with did-you-mean
    overrides = parse_overrides(args.method_overrides)
    unknown = [m for m in overrides if m not in methods]
    if unknown:
        raise ValueError(f"--method-set names {unknown}, which are not in --methods {methods}")
    doc = run_muse(
        args.out,
        methods=methods,
        data=args.data,
        target=args.target,
        retrain=args.retrain,
        size=args.size,
        builtin=_builtin(args),
        finetune_train={"epochs": args.epochs} if args.epochs else None,
        method_overrides=overrides or None,
        settings=parse_overrides(args.overrides),
        scalability=not args.no_scal,
        sustainability=not args.no_sust,
        progress=not args.no_progress,
        revision=args.revision,
        overwrite=args.overwrite,
    )
    print(muse_markdown(doc))
    return 0


def muse_entry(data: str) -> str:
    """The registered benchmark a MUSE ``--data`` value belongs to."""
    from obliviate.data.muse import HUB_NAMES

    if data == "builtin":
        return "builtin-muse"
    return "muse-books" if data.lower() in ("books", HUB_NAMES["books"].lower()) else "muse-news"


def _eval(args: argparse.Namespace, settings: dict) -> int:
    """``obliviate muse eval`` = ``obliviate eval --benchmark <muse entry>``."""
    from obliviate import api
    from obliviate.cli.eval import print_result
    from obliviate.parallel_eval import launched

    with launched() as main:  # under torchrun: the ranks share the work, rank 0 writes
        result = api.evaluate(
            args.model,
            benchmark=muse_entry(args.data),
            data=args.data,
            retain_model=args.retrain_model,
            out=args.out,
            settings=settings,
            builtin=_builtin(args),
            revision=args.revision,
            meta={"name": "muse-eval", "role": "unlearned"},
            progress=not args.no_progress,
        )
        if main:
            print_result(result)
    return 0
