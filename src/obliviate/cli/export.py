"""`obliviate export`: an evaluated run in another tool's format (open-unlearning's logs)."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  obliviate export runs/demo/npo --out saves/eval/npo
  obliviate export runs/demo/retain --format open-unlearning --out saves/eval/retain --overwrite
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a run's evaluation in open-unlearning's format",
        description="Writes the evaluation of a run folder (metrics.json, samples.jsonl) as "
        "open-unlearning's TOFU_EVAL.json (per-sample value_by_index) and TOFU_SUMMARY.json "
        "(MUSE_* for MUSE runs) into --out; the metric names and fields are mapped as "
        "docs/run-format.md lists. The exported retain run can be open-unlearning's "
        "retain_logs_path, and `obliviate eval --retain-results` reads such logs back.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", metavar="RUN", help="an evaluated run folder (holding metrics.json)")
    p.add_argument(
        "--format",
        default="open-unlearning",
        choices=["open-unlearning"],
        help="the format to write (default: open-unlearning)",
    )
    p.add_argument("--out", required=True, help="folder for the files")
    p.add_argument("--overwrite", action="store_true", help="replace files already in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from obliviate.interop.open_unlearning import write_log
    from obliviate.runs import load_run

    r = load_run(args.run)
    metrics = {k: r.info["metrics"][k] for k in r.metrics}
    eval_path, summary_path = write_log(args.out, metrics, r.samples, r.benchmark, args.overwrite)
    print(f"wrote {eval_path} and {summary_path}")
    return 0
