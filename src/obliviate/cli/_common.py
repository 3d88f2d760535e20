"""Argument helpers shared by subcommands (kept import-light)."""

from __future__ import annotations

import argparse
from typing import Any


def add_data_args(p: argparse.ArgumentParser, split_default: str = "forget10") -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", default="builtin",
                   help="'builtin' (generated, no files), a folder of TOFU <config>.jsonl files, or "
                        "a hub name such as locuslab/TOFU (default: builtin)")
    g.add_argument("--split", default=split_default, help=f"forget split (default: {split_default})")
    g.add_argument("--forget", help="your own forget file/folder (JSON, JSONL, CSV, .txt) instead of a benchmark")
    g.add_argument("--retain", help="your own retain file/folder")
    g.add_argument("--holdout", help="your own holdout file/folder (MIA non-members)")
    g.add_argument("--people", type=int, help="built-in benchmark: number of fictitious people (default 100)")
    g.add_argument("--template", default="qa", choices=["qa", "chat", "raw"],
                   help="prompt template (default: qa = 'Question: ...\\nAnswer:')")


def builtin_kwargs(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.data != "builtin" or not getattr(args, "people", None):
        return None
    return {"n_people": args.people}


def add_set_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a {what} setting, e.g. train.lr=1e-4 or alpha=2 (repeatable)")
