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
        "(your plain text), builtin-mllmu and mllmu (vision-language models) (default: tofu, "
        "or qa with --forget)",
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
    add_prompt_and_map_args(g)
    g.add_argument(
        "--stride",
        type=int,
        metavar="TOKENS",
        help="long documents: start a token window every TOKENS tokens (windows overlap, "
        "every token is still trained on and scored once; default: no overlap)",
    )


def add_prompt_and_map_args(g: Any) -> None:
    """``--system-prompt`` (chat template) and ``--map`` (column names of the user's files)."""
    g.add_argument(
        "--system-prompt",
        metavar="TEXT",
        help="system prompt of the chat template (with --template chat; part of the "
        "evaluation key)",
    )
    g.add_argument(
        "--map",
        dest="field_map",
        metavar="COLUMN=FIELD,...",
        help="which column of your files holds which field, e.g. --map "
        "query=question,target=answer (fields: question, answer, text, subject, "
        "paraphrased_answer, perturbed_answer, paraphrased_question, options)",
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
    from obliviate.data.fields import parse_field_map

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
        "system_prompt": args.system_prompt,
        "field_map": parse_field_map(args.field_map),
        "stride": args.stride,
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
