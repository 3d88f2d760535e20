"""Two runs side by side (``obliviate report --compare A B``): per-metric deltas, per-sample
deltas, and the samples whose behaviour changed most."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from obliviate.data.types import DataError
from obliviate.io import atomic_write_text
from obliviate.reporting import html as H
from obliviate.reporting import plots
from obliviate.reporting.report import (
    generation_html,
    images_section,
    now_utc,
    ordered_splits,
    output_path,
    runs_section,
    task_warning,
    training_section,
)
from obliviate.reporting.tables import (
    NO_GOAL_TEXT,
    SampleComparison,
    SampleDelta,
    display_names,
    format_delta,
    format_value,
    label,
    metric_deltas,
    most_changed,
    sample_deltas,
    split_means,
)
from obliviate.runs import Run, is_run_dir, load_run

TOP_N = 10


def _names(a: Run, b: Run) -> tuple[str, str]:
    na, nb = display_names([a, b])
    if na == nb:
        na, nb = f"{na} (A)", f"{nb} (B)"
    return na, nb


def metrics_section(a: Run, b: Run, na: str, nb: str) -> str:
    head = [
        H.th("Metric"),
        H.th("Direction"),
        H.th(na, num=True),
        H.th(nb, num=True),
        H.th(f"Δ ({nb} − {na})", num=True),
        H.th(f"{nb} is"),
    ]
    rows = []
    for d in metric_deltas(a, b):
        verdict = d.verdict
        rows.append(
            H.tr(
                [
                    H.td(H.esc(label(d.metric)), title=d.metric),
                    H.td(H.esc(d.goal.text if d.goal else NO_GOAL_TEXT)),
                    H.td(H.esc(format_value(d.a)), v=d.a),
                    H.td(H.esc(format_value(d.b)), v=d.b),
                    H.td(H.esc(format_delta(d.delta)), v=d.delta),
                    H.td(f'<span class="{verdict}">{verdict}</span>' if verdict else "—"),
                ]
            )
        )
    return (
        H.table(head, rows, id_="metric-deltas")
        + '<p class="note">MIA AUCs get no verdict unless metrics.json gives their '
        "ideal: their goal is the retain model's level (about 0.5), not an end of the "
        "scale.</p>"
    )


def _delta_cells(r: SampleDelta, keys: Sequence[str]) -> list[str]:
    cells = []
    for k in keys:
        a, b = r.values[k]
        if a is None and b is None:
            cells.append(H.td("—", v=None))
            continue
        cells.append(
            H.td(
                f'{H.esc(format_delta(r.delta(k)))}<span class="score">'
                f"{H.esc(format_value(a))} → {H.esc(format_value(b))}</span>",
                v=r.delta(k),
            )
        )
    return cells


def _sample_row(r: SampleDelta, keys: Sequence[str], hot: bool) -> str:
    cells = [
        H.td(H.esc(r.split)),
        H.td(str(r.index), v=r.index),
        H.td(H.esc(r.question), cls="text"),
        H.td(H.esc(r.answer), cls="text"),
        H.td(generation_html(r.generation_a), cls="gen"),
        H.td(generation_html(r.generation_b), cls="gen"),
    ]
    return H.tr(cells + _delta_cells(r, keys), cls="hot" if hot else None, split=r.split)


def _sample_head(keys: Sequence[str], na: str, nb: str) -> list[str]:
    head = [
        H.th("Split"),
        H.th("#", num=True),
        H.th("Question"),
        H.th("Gold answer"),
        H.th(f"{na}"),
        H.th(f"{nb}"),
    ]
    return head + [H.th(f"Δ {label(k)}", title=f"{k}: {nb} − {na}", num=True) for k in keys]


def changed_section(comp: SampleComparison, na: str, nb: str, shown: Sequence[str]) -> str:
    top = most_changed(comp, TOP_N)
    if not top:
        return '<p class="note">No sample changed (same scores, same generations).</p>'
    rows = [_sample_row(r, shown, hot=True) for r in top]
    key = comp.primary
    how = (
        f"ranked by |Δ {label(key)}|, then by whether the generation changed"
        if key
        else "samples whose generation changed"
    )
    return (
        f'<p class="note">The {len(top)} samples whose behaviour changed most: {H.esc(how)}.'
        "</p>"
        + '<div class="wide">'
        + H.table(_sample_head(shown, na, nb), rows, id_="changed-table")
        + "</div>"
    )


def samples_section(comp: SampleComparison, na: str, nb: str, shown: Sequence[str]) -> str:
    parts = []
    if comp.only_a or comp.only_b:
        parts.append(
            f'<div class="warn">Samples are matched by split and index: '
            f"{comp.only_a} only in {H.esc(na)}, {comp.only_b} only in {H.esc(nb)} "
            "(left out).</div>"
        )
    means = split_means(comp)
    if means:
        head = [
            H.th("Split"),
            H.th("Score"),
            H.th("n", num=True),
            H.th(f"mean {na}", num=True),
            H.th(f"mean {nb}", num=True),
            H.th("mean Δ", num=True),
            H.th("generations changed", num=True),
        ]
        rows = [
            H.tr(
                [
                    H.td(H.esc(m["split"])),
                    H.td(H.esc(label(m["key"])), title=m["key"]),
                    H.td(str(m["n"]), v=m["n"]),
                    H.td(H.esc(format_value(m["mean_a"])), v=m["mean_a"]),
                    H.td(H.esc(format_value(m["mean_b"])), v=m["mean_b"]),
                    H.td(H.esc(format_delta(m["mean_delta"])), v=m["mean_delta"]),
                    H.td(str(m["generations_changed"]), v=m["generations_changed"]),
                ]
            )
            for m in means
        ]
        parts.append(
            '<details><summary>Means per split and score</summary><div class="wide">'
            + H.table(head, rows, id_="split-means")
            + "</div></details>"
        )
    key = comp.primary
    if key:
        pairs: dict[str, list[tuple[float, float]]] = {}
        for r in comp.rows:
            a, b = r.values[key]
            if a is not None and b is not None:
                pairs.setdefault(r.split, []).append((a, b))
        uri = plots.paired_scatter(pairs, label(key), na, nb)
        if uri:
            parts.append(
                H.figure(
                    uri,
                    f"per-sample {label(key)}",
                    f"Per-sample {label(key)} of {na} (x) against {nb} (y); points "
                    "far from the diagonal changed most.",
                )
            )
    hot = {(r.split, r.index) for r in most_changed(comp, TOP_N)}
    rows = [_sample_row(r, shown, hot=(r.split, r.index) in hot) for r in comp.rows]
    splits = ordered_splits({r.split for r in comp.rows})
    parts.append(
        H.filter_bar("compare-samples", splits, "Search questions, answers, generations…")
        + '<div class="scroll">'
        + H.table(_sample_head(shown, na, nb), rows, id_="compare-samples")
        + "</div>"
        + '<p class="note">Highlighted rows: the samples that changed most. Click a '
        "Δ header to sort by that change.</p>"
    )
    return "".join(parts)


def truth_ratio_section(a: Run, b: Run, na: str, nb: str, colour: str) -> str:
    ta = [v for v in plots.finite(s.get("truth_ratio") for s in a.samples_of("forget")) if v > 0]
    tb = [v for v in plots.finite(s.get("truth_ratio") for s in b.samples_of("forget")) if v > 0]
    if not ta or not tb:
        return ""
    uri = plots.histograms(
        [plots.HistPanel(f"{nb} (line) against {na} (grey)", tb, colour, ta)],
        "truth ratio p_wrong / p_true (log scale)",
        na,
        log_x=True,
    )
    if uri is None:
        return ""
    return H.figure(uri, "truth ratio histograms", "Per-sample truth ratios on the forget split.")


def build_comparison(a: Run, b: Run) -> str:
    na, nb = _names(a, b)
    comp = sample_deltas(a.samples, b.samples)
    shown: list[str] = [k for k in ("rouge_l_recall", "prob", "truth_ratio") if k in comp.keys]
    if not shown:
        shown = comp.keys[:3]
    col = plots.colours(["unlearned"])[0]
    runs, names = [a, b], [na, nb]
    sections = [
        ("metrics", "Metric deltas", task_warning(runs) + metrics_section(a, b, na, nb)),
        ("changed", "Changed most", changed_section(comp, na, nb, shown) if comp.rows else ""),
        ("samples", "Per-sample deltas", samples_section(comp, na, nb, shown) if comp.rows else ""),
        ("truth-ratio", "Truth ratio", truth_ratio_section(a, b, na, nb, col)),
        (
            "training",
            "Training curves",
            training_section(runs, names, plots.colours([a.role, b.role])),
        ),
        ("images", "Image grids", images_section(runs, names)),
        ("runs", "Runs", runs_section(runs, names)),
    ]
    subtitle = (
        f"A = {na} ({a.role}), B = {nb} ({b.role}); deltas are B − A · "
        f"{a.benchmark or ''} {a.split or ''}"
    )
    return H.page(
        f"Comparison: {na} vs {nb}", subtitle, [s for s in sections if s[2]], created=now_utc()
    )


def _as_run(path: str | os.PathLike[str]) -> Run:
    p = Path(path)
    if p.is_dir() and not is_run_dir(p):
        raise DataError(
            f"{p}: not a run folder (no metrics.json); --compare takes two run "
            "folders, e.g. runs/demo/graddiff runs/demo/npo"
        )
    return load_run(p)


def write_comparison(
    a: str | os.PathLike[str], b: str | os.PathLike[str], out: str | os.PathLike[str] | None = None
) -> Path:
    """Write the HTML comparison of run folders ``a`` and ``b`` (deltas are B − A) and return
    its path. ``out`` is a file or a folder; it defaults to the folder above ``a``; the file
    name defaults to ``compare_<a>_vs_<b>.html``."""
    ra, rb = _as_run(a), _as_run(b)
    pa, pb = Path(a).resolve(), Path(b).resolve()
    name = f"compare_{pa.name}_vs_{pb.name}.html"
    target = output_path(out, [pa.parent], name)
    return atomic_write_text(target, build_comparison(ra, rb))
