"""Argument helpers shared by subcommands (kept import-light)."""

from __future__ import annotations

import argparse
from typing import Any


def add_data_args(p: argparse.ArgumentParser, split_default: str = "forget10") -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--benchmark",
        metavar="NAME",
        help="registered benchmark (`obliviate ls benchmarks`): tofu, builtin-muse, "
        "muse-news, muse-books, wmdp, builtin-wmdp, qa (your QA files), documents "
        "(your plain text) (default: tofu, or qa with --forget)",
    )
    g.add_argument(
        "--data",
        default=None,
        help="the benchmark's source: 'builtin' (generated, no files), a folder, or a "
        "hub name such as locuslab/TOFU (default: the benchmark's own; tofu: builtin)",
    )
    g.add_argument(
        "--split",
        default=None,
        help=f"forget split (default: the benchmark's own; tofu: {split_default})",
    )
    g.add_argument(
        "--forget",
        help="your own forget file/folder (JSON, JSONL, CSV, .txt) instead of a benchmark",
    )
    g.add_argument("--retain", help="your own retain file/folder")
    g.add_argument("--holdout", help="your own holdout file/folder (MIA non-members)")
    g.add_argument("--revision", help="hub dataset revision to pin (recorded with the results)")
    g.add_argument(
        "--people", type=int, help="built-in benchmark: number of fictitious people (default 100)"
    )
    g.add_argument(
        "--template",
        default="qa",
        choices=["qa", "chat", "raw"],
        help="prompt template (default: qa = 'Question: ...\\nAnswer:')",
    )


def builtin_kwargs(args: argparse.Namespace) -> dict[str, Any] | None:
    data = getattr(args, "data", None)
    if data is None and getattr(args, "benchmark", None):
        from obliviate.benchmarks import get_benchmark

        data = get_benchmark(args.benchmark).data
    if (data or "builtin") != "builtin" or not getattr(args, "people", None):
        return None
    return {"n_people": args.people}


def data_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The data arguments of :func:`add_data_args` as keyword arguments of :mod:`obliviate.api`
    (an unknown ``--benchmark`` fails here, before any model is loaded)."""
    if args.benchmark:
        from obliviate.benchmarks import get_benchmark

        get_benchmark(args.benchmark)
    return {
        "benchmark": args.benchmark,
        "data": args.data,
        "split": args.split,
        "forget": args.forget,
        "retain": args.retain,
        "holdout": args.holdout,
        "builtin": builtin_kwargs(args),
        "template": args.template,
        "revision": args.revision,
    }


def add_set_arg(
    p: argparse.ArgumentParser, what: str, example: str = "train.lr=1e-4 or alpha=2"
) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a {what} setting, e.g. {example} (repeatable)",
    )
