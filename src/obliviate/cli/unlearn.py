"""`obliviate unlearn`: apply a registered method to a model."""

from __future__ import annotations

import argparse

from obliviate.cli._common import add_data_args, add_set_arg, data_kwargs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "unlearn",
        help="unlearn a forget set from a model with a method",
        description="See `obliviate ls methods` for methods and their settings. On a "
        "vision-language benchmark (--benchmark builtin-mllmu or mllmu) the gradient methods "
        "and mmunlearner run on a vision-language model; --set part=language|vision|both "
        "chooses what is updated (docs/multimodal.md).",
    )
    p.add_argument("--model", required=True, help="model folder, run folder or hub name")
    p.add_argument("--method", default="npo", help="method name (default: npo)")
    p.add_argument("--out", required=True, help="run folder; the model goes to OUT/model")
    p.add_argument("--eval", action="store_true", help="evaluate the result afterwards")
    p.add_argument(
        "--retain-model",
        help="with --eval or --sequence: the retain model for forget quality / privleak",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run OUT already holds (its old files are removed first)",
    )
    p.add_argument(
        "--sequence",
        metavar="REQUEST,...",
        help="continual unlearning: unlearn these requests one after the other, e.g. "
        "forget10:1/3,forget10:2/3,forget10:3/3 (disjoint author groups; forget files with "
        "--benchmark qa); each step is a run folder under OUT started from the previous "
        "step's model and evaluated on every request so far (docs/continual.md)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        metavar="N",
        help="with --eval: run seeds train.seed, +1, ... (N runs) into OUT/seed-<s>/ and write "
        "their mean, sd and 95%% bootstrap interval per metric to OUT/metrics.json; finished "
        "seeds are reused on a rerun",
    )
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    add_data_args(p)
    add_set_arg(p, "method")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from obliviate import api
    from obliviate.config import parse_overrides
    from obliviate.model_kinds import TEXT, benchmark_kind, check_method

    data = data_kwargs(args)
    kind = benchmark_kind(args.benchmark, args.forget)
    check_method(args.method, kind)  # unknown or inapplicable method: before any loading
    if args.sequence:
        if args.seeds is not None:
            raise ValueError("--seeds and --sequence cannot be combined; choose one")
        if kind != TEXT:
            raise ValueError("--sequence runs on text benchmarks; unlearn one request at a time")
        return _run_sequence(args, data)
    if args.seeds is not None:
        return _run_seeds(args, data)
    res = api.unlearn(
        args.model,
        method=args.method,
        out=args.out,
        overrides=parse_overrides(args.overrides),
        progress=not args.no_progress,
        trust_remote_code=args.trust_remote_code,
        overwrite=args.overwrite,
        **data,
    )
    if res.stopped:
        print(f"stopped early: {res.stopped}")
    print(f"saved {res.path} ({res.trainable_params:,} trainable parameters, {res.wall_s:.0f} s)")
    if args.eval:
        from obliviate.cli.eval import print_result

        result = api.evaluate(
            res.model,
            tokenizer=res.tokenizer,
            retain_model=args.retain_model,
            out=args.out,
            reuse=False,
            meta={
                "role": "unlearned",
                "method": args.method,
                "model": {"path": str(res.path)},
            },
            progress=not args.no_progress,
            **data,
        )
        print_result(result)
    return 0


def _run_seeds(args: argparse.Namespace, data: dict) -> int:
    from obliviate import api
    from obliviate.config import parse_overrides
    from obliviate.recipes.seeds import seeds_markdown

    if not args.eval:
        raise ValueError("--seeds compares the seeds' evaluations: add --eval")
    doc = api.unlearn_seeds(
        args.model,
        args.method,
        args.out,
        seeds=args.seeds,
        retain_model=args.retain_model,
        overrides=parse_overrides(args.overrides),
        progress=not args.no_progress,
        trust_remote_code=args.trust_remote_code,
        overwrite=args.overwrite,
        **data,
    )
    print(seeds_markdown(doc), end="")
    print(f"saved {args.out}/metrics.json and {len(doc['seeds'])} seed runs")
    return 0


def _run_sequence(args: argparse.Namespace, data: dict) -> int:
    from obliviate.config import parse_overrides
    from obliviate.recipes.continual import run_continual

    if data.get("split") or data.get("forget"):
        raise ValueError(
            "with --sequence the requests are its entries; leave out --split and --forget"
        )
    data = {k: v for k, v in data.items() if k not in ("split", "forget")}
    doc = run_continual(
        args.model,
        args.method,
        args.sequence.split(","),
        args.out,
        retain_model=args.retain_model,
        overrides=parse_overrides(args.overrides),
        progress=not args.no_progress,
        overwrite=args.overwrite,
        **data,
    )
    from obliviate.recipes.continual import continual_markdown

    print(continual_markdown(doc), end="")
    print(f"saved {args.out}/continual.md and continual.json")
    return 0
