"""Many runs of one benchmark split as a leaderboard: sortable HTML, Markdown and CSV
(``obliviate report --leaderboard RUN... -o DIR``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from obliviate.io import atomic_write_text
from obliviate.reporting import html as H
from obliviate.reporting import plots
from obliviate.reporting.report import now_utc, runs_section, tradeoff_section
from obliviate.reporting.tables import (
    TIMING_KEYS,
    Leaderboard,
    format_seconds,
    format_spread,
    goal_text,
    label,
    leaderboard,
    to_csv,
    to_markdown,
)
from obliviate.runs import Run, load_runs

FILES = {"html": "leaderboard.html", "md": "leaderboard.md", "csv": "leaderboard.csv"}


def check_one_task(runs: Sequence[Run]) -> tuple[str | None, str | None]:
    """The (benchmark, split) shared by all runs; ValueError naming the runs otherwise."""
    tasks: dict[tuple[str | None, str | None], list[str]] = {}
    for r in runs:
        tasks.setdefault((r.benchmark, r.split), []).append(str(r.path))
    if len(tasks) > 1:
        detail = "; ".join(f"{b}/{s}: {', '.join(p)}" for (b, s), p in tasks.items())
        raise ValueError(
            f"a leaderboard ranks runs of one benchmark split, but these runs "
            f"come from {len(tasks)}: {detail}. Pass the runs of one split."
        )
    return next(iter(tasks))


def table_html(board: Leaderboard) -> str:
    cols = [c for c in board.columns if c != "path"]
    head = []
    for c in cols:
        if c in board.metrics:
            head.append(H.th(label(c), title=f"{c}: {goal_text(board.runs, c)}", num=True))
        elif c in TIMING_KEYS:
            head.append(H.th(label(c), title="wall-clock seconds", num=True))
        else:
            head.append(
                H.th(c.replace("_", " ").capitalize(), num=c in ("trainable_params", "seed"))
            )
    rows = []
    for i, row in enumerate(board.rows):
        cells = []
        for c in cols:
            v = row[c]
            best = "best" if i in board.best.get(c, ()) else None
            if c in ("run", "role", "method"):
                cells.append(H.td(H.esc(v or "")))
            elif c in TIMING_KEYS:
                cells.append(H.td(H.esc(format_seconds(v)), v=v, cls=best))
            else:
                text = format_spread(v, row.get("spread", {}).get(c))
                cells.append(H.td(H.esc(text), v=v, cls=best))
        rows.append(H.tr(cells, cls="ref" if row["role"] != "unlearned" else None))
    return '<div class="wide">' + H.table(head, rows, id_="leaderboard-table") + "</div>"


def write_leaderboard(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
) -> dict[str, Path]:
    """Write ``leaderboard.html``, ``leaderboard.md`` and ``leaderboard.csv`` for the runs
    of ``paths`` (run or group folders, all of one benchmark split) into ``out_dir``.

    Rows: target and retain first (references), then the unlearned runs ranked by the first
    headline metric (forget quality for TOFU), best first. Returns ``{"html", "md", "csv"}``
    -> path.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    runs = load_runs(paths)
    benchmark, split = check_one_task(runs)
    board = leaderboard(runs)
    task = " · ".join(x for x in (benchmark, split) if x) or "runs"
    out = Path(out_dir)
    names = [row["run"] for row in board.rows]
    note = (
        '<p class="note">Target and retain rows (italic) are references; the unlearned '
        "runs are ranked by the first column metric, best first, and the best value of each "
        f"column is green. Click a header to sort. Also written: {FILES['md']}, "
        f"{FILES['csv']}.</p>"
    )
    sections = [
        ("leaderboard", "Leaderboard", table_html(board) + note),
        (
            "tradeoff",
            "Forget vs utility",
            tradeoff_section(board.runs, names, plots.colours([r.role for r in board.runs])),
        ),
        ("runs", "Runs", runs_section(board.runs, names)),
    ]
    page = H.page(
        f"Leaderboard: {task}",
        f"{len(runs)} runs",
        [s for s in sections if s[2]],
        created=now_utc(),
    )
    md = (
        f"# Leaderboard: {task}\n\nTarget and retain are references; **bold** = best "
        f"unlearned value per column.\n\n{to_markdown(board)}"
    )
    return {
        "html": atomic_write_text(out / FILES["html"], page),
        "md": atomic_write_text(out / FILES["md"], md),
        "csv": atomic_write_text(out / FILES["csv"], to_csv(board)),
    }
