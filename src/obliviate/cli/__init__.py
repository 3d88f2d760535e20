"""Command-line interface: a thin layer over the Python API.

Each subcommand lives in its own module ``obliviate.cli.<name>`` exposing
``add_parser(subparsers)`` and ``run(args) -> int``. Modules must stay cheap to import: heavy
imports (torch, transformers, diffusers) go inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

# Order here is the order of `obliviate --help`.
SUBCOMMANDS = [
    "demo",
    "finetune",
    "unlearn",
    "eval",
    "benchmark",
    "sweep",
    "muse",
    "wmdp",
    "audit",
    "ls",
    "report",
    "export",
    "erase",
    "clean",
]


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming the problem and the help to read
    (argparse's default prints the whole usage first); sub-commands' parsers are of this class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="obliviate",
        description="Machine unlearning for generative AI: unlearn, evaluate, benchmark.",
    )
    from obliviate import __version__

    parser.add_argument("--version", action="version", version=f"obliviate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"obliviate.cli.{name.replace('-', '_')}")
        except ModuleNotFoundError as exc:
            if exc.name == f"obliviate.cli.{name.replace('-', '_')}":
                continue  # subcommand not built yet
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if os.environ.get("RANK", "0") != "0":
        # under a launcher rank 0 alone reports; every rank's errors still reach stderr
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    try:
        if getattr(args, "no_progress", False):
            from obliviate.cli.quiet import quiet

            with quiet():
                return int(args.func(args) or 0)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, KeyError) as exc:
        # bad input: one clear line, no traceback (set OBLIVIATE_DEBUG=1 for it)

        if os.environ.get("OBLIVIATE_DEBUG"):
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"obliviate {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
