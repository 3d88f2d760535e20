"""`obliviate demo`: the whole pipeline on the built-in benchmark, in minutes on a CPU."""

from __future__ import annotations

import argparse
import time


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train tiny target + retain models, unlearn with GradDiff and NPO, compare",
        description="On the built-in benchmark (no files, no network): train a tokenizer and tiny "
        "target and retain models, unlearn forget10 with each method, evaluate all "
        "models and print one comparison table. Re-running resumes finished stages.",
    )
    p.add_argument(
        "--out",
        help="output folder (default: runs/demo; with --diffusion runs/demo-diffusion, with "
        "--multimodal runs/demo-multimodal)",
    )
    p.add_argument(
        "--methods", default="graddiff,npo", help="comma-separated methods (default: graddiff,npo)"
    )
    p.add_argument(
        "--size",
        choices=["xs", "s", "m", "l"],
        help="tiny model size (default: s; with --multimodal xs, which also takes s)",
    )
    p.add_argument(
        "--people", type=int, help="fictitious people (default: 100; with --multimodal 8)"
    )
    p.add_argument(
        "--epochs",
        type=float,
        help="fine-tuning epochs of the tiny target and retain models (default: 12; with "
        "--multimodal the recipe's, docs/multimodal.md)",
    )
    p.add_argument("--split", default="forget10")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a much smaller run (20 people, xs model) for smoke tests",
    )
    p.add_argument(
        "--diffusion", action="store_true", help="run the diffusion concept-erasure demo instead"
    )
    p.add_argument(
        "--multimodal",
        action="store_true",
        help="run the vision-language demo instead (built-in people with portraits, "
        "MLLMU-Bench-shaped sets, tiny LLaVA models; docs/multimodal.md)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="re-run finished stages whose configuration differs (default: an error)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.diffusion and args.multimodal:
        raise ValueError("choose one of --diffusion and --multimodal")
    default = "runs/demo-diffusion" if args.diffusion else "runs/demo"
    args.out = args.out or ("runs/demo-multimodal" if args.multimodal else default)
    if args.multimodal:
        return _multimodal(args)
    if args.diffusion:
        from obliviate.recipes.diffusion import run_demo

        run_demo(Path(args.out), quick=args.quick)
        return 0
    from obliviate.recipes.tofu import comparison_markdown, run_benchmark

    builtin = {"n_people": args.people or 100}
    size = args.size or "s"
    # built-in answers are under 40 tokens: 64 new tokens cover them (TOFU's 200 is the default
    # of `obliviate eval` and `obliviate benchmark`)
    eval_settings = {"max_new_tokens": 64}
    if args.quick:
        builtin = {"n_people": 20, "n_world_facts": 20}
        size = "xs"
        eval_settings = {"max_new_tokens": 48}
    t0 = time.perf_counter()
    doc = run_benchmark(
        args.out,
        methods=[m for m in args.methods.split(",") if m],
        split=args.split,
        size=size,
        builtin=builtin,
        finetune_train={"epochs": args.epochs or 12},
        eval_settings=eval_settings,
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    print()
    print(comparison_markdown(doc))
    print(
        f"wall time: {time.perf_counter() - t0:.0f} s; results in {args.out}/ (comparison.md, "
        "one run folder per model)"
    )
    _report(Path(args.out))
    return 0


def _report(out) -> None:
    try:
        from obliviate.reporting import write_report
    except ImportError:
        return
    path = write_report([out])
    print(f"report: {path}")


def _multimodal(args: argparse.Namespace) -> int:
    """``--multimodal``: :func:`obliviate.recipes.multimodal.run_demo` (``--quick``: 8 people
    and the micro model, a smoke test)."""
    from obliviate.recipes.multimodal import comparison_markdown, run_demo

    people = 8 if args.quick else (args.people or 8)
    size = "micro" if args.quick else (args.size or "xs")
    epochs = args.epochs
    doc = run_demo(
        args.out,
        methods=tuple(m for m in args.methods.split(",") if m),
        n_people=people,
        n_real=max(1, people // 4),
        size=size,
        epochs=epochs,
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    print()
    print(comparison_markdown(doc))
    print(
        f"wall time: {doc['timings']['wall_s']:.0f} s; results in {args.out}/ (comparison.md, "
        "one model folder per method)"
    )
    return 0
