"""Reports from run folders: HTML report, two-run comparison, leaderboard.

Reads result files only (docs/run-format.md) and never imports torch; matplotlib is imported
when a plot is drawn. Public API::

    from obliviate.reporting import write_report, write_comparison, write_leaderboard
    write_report(["runs/demo"])                       # -> runs/demo/report.html
    write_comparison("runs/demo/graddiff", "runs/demo/npo")
    write_leaderboard(["runs/demo"], "runs/demo")     # -> {"html", "md", "csv"}: paths
"""

from __future__ import annotations

from obliviate.reporting.compare import write_comparison
from obliviate.reporting.leaderboard import write_leaderboard
from obliviate.reporting.report import write_report
from obliviate.runs import Metric, Run, load_run, load_runs

__all__ = [
    "Metric",
    "Run",
    "load_run",
    "load_runs",
    "write_comparison",
    "write_leaderboard",
    "write_report",
]
