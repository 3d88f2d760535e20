"""``obliviate report``: HTML report, two-run comparison or leaderboard from run folders."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """\
examples:
  obliviate report runs/demo                       # group report -> runs/demo/report.html
  obliviate report runs/demo/npo -o npo.html       # one run (target/retain found beside it)
  obliviate report --compare runs/demo/graddiff runs/demo/npo
  obliviate report --leaderboard runs/bench -o results/   # leaderboard.{html,md,csv}
  obliviate report runs/sweep-npo                  # sweep study: trials, Pareto front
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write an HTML report, a comparison or a leaderboard from run folders",
        description="Turn run folders (docs/run-format.md) into self-contained HTML. Reads "
        "result files only; no model is loaded.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="RUN",
        help="run folders, group folders whose sub-folders are runs, or one sweep study folder",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--compare", action="store_true", help="compare two run folders A B (deltas are B - A)"
    )
    mode.add_argument(
        "--leaderboard",
        action="store_true",
        help="rank the runs of one benchmark split (HTML, Markdown and CSV)",
    )
    p.add_argument(
        "-o",
        "--out",
        metavar="PATH",
        help="output file or folder (always a folder for a leaderboard); default: "
        "report.html in the one folder given, compare_A_vs_B.html beside A, the "
        "one folder given for a leaderboard",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from obliviate.reporting.plots import MissingMatplotlib

    try:
        return _run(args)
    except MissingMatplotlib as exc:  # one line with the install command, no traceback
        raise ValueError(str(exc)) from exc


def _run(args: argparse.Namespace) -> int:
    from obliviate.reporting import write_comparison, write_leaderboard, write_report
    from obliviate.reporting.sweep_page import is_sweep_dir, write_sweep_report

    if args.compare:
        if len(args.paths) != 2:
            raise ValueError(
                f"--compare takes exactly two run folders (A B), got {len(args.paths)}"
            )
        print(write_comparison(args.paths[0], args.paths[1], args.out))
    elif args.leaderboard:
        if args.out is None and len(args.paths) != 1:
            raise ValueError(
                f"{len(args.paths)} folders given: say where to write the leaderboard with -o DIR"
            )
        out_dir = Path(args.out) if args.out is not None else Path(args.paths[0])
        for path in write_leaderboard(args.paths, out_dir).values():
            print(path)
    elif len(args.paths) == 1 and is_sweep_dir(args.paths[0]):
        print(write_sweep_report(args.paths[0], args.out))
    else:
        print(write_report(args.paths, args.out))
    return 0
