"""The HTML report of one run or a group of runs (``obliviate report RUN...``).

Sections: headline table, forget-vs-utility scatter, truth-ratio histograms against the retain
model, MIA score distributions (forget vs holdout), training curves, the per-sample table with
search, diffusion image grids, and run metadata. Sections without data are left out.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from obliviate.io import atomic_write_text
from obliviate.reporting import html as H
from obliviate.reporting import plots
from obliviate.reporting.tables import (
    TIMING_KEYS,
    all_metrics,
    best_cells,
    direction_of,
    display_names,
    format_seconds,
    format_spread,
    format_value,
    goal_text,
    headline_metrics,
    label,
    seed_spread,
)
from obliviate.runs import Run, find_references, group_images, load_runs

SPLIT_ORDER = ("forget", "forget_paraphrased", "retain", "holdout", "real_authors", "world_facts")
MIA_ORDER = ("mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus")
MIA_LABELS = {
    "mia_loss": "LOSS",
    "mia_zlib": "ZLib",
    "mia_min_k": "Min-K%",
    "mia_min_k_plus_plus": "Min-K%++",
}
# Axes of the trade-off scatter, first pair present wins: (x, y, log x).
TRADEOFF_AXES = (
    ("forget_quality", "model_utility", True),
    ("forget_rouge", "model_utility", False),
    ("forget_rouge", "retain_rouge", False),
    ("unlearning_accuracy", "in_domain_retain_accuracy", False),
)
CURVE_FIRST = ("forget_loss", "retain_loss", "loss")
CONFIG_MAX_CHARS = 20_000


def _role_order(runs: Sequence[Run]) -> list[Run]:
    """Target first, then the given non-reference runs, then retain."""
    rank = {"target": 0, "unlearned": 1, "retain": 2}
    return sorted(runs, key=lambda r: rank[r.role])


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# ---------------------------------------------------------------------------- sections


def headline_section(runs: Sequence[Run], names: Sequence[str]) -> str:
    """Headline table (with the best unlearned value per column marked) and, folded, the
    table of every metric."""
    cols = headline_metrics(runs)
    timing = [k for k in TIMING_KEYS if any(k in r.timing for r in runs)]
    out = [_metric_table(runs, names, cols, timing, "headline")]
    out.append(
        '<p class="note">Best unlearned value per column in green; target and retain '
        "rows (italic) are references. Hover a header for its direction. Click a header "
        "to sort.</p>"
    )
    rest = all_metrics(runs)
    if len(rest) > len(cols):
        out.append(
            '<details><summary>All metrics</summary><div class="wide">'
            + _metric_table(runs, names, rest, [], "all-metrics")
            + "</div></details>"
        )
    return "".join(out)


def _metric_table(
    runs: Sequence[Run], names: Sequence[str], cols: Sequence[str], timing: Sequence[str], id_: str
) -> str:
    best = best_cells(runs, list(cols) + list(timing))
    head = [H.th("Run"), H.th("Method")]
    for c in cols:
        head.append(H.th(label(c), title=f"{c}: {goal_text(runs, c)}", num=True))
    for k in timing:
        head.append(H.th(label(k), title="wall-clock seconds", num=True))
    rows = []
    for i, (r, name) in enumerate(zip(runs, names)):
        cells = [
            H.td(f"{H.esc(name)}{H.role_badge(r.role) if r.role != 'unlearned' else ''}"),
            H.td(H.esc(r.method or "")),
        ]
        spread = seed_spread(r, cols)  # runs over several seeds: mean ± sd
        for c in cols:
            v = r.value(c)
            text = format_spread(v, spread.get(c))
            cells.append(H.td(H.esc(text), v=v, cls="best" if i in best[c] else None))
        for k in timing:
            v = r.timing.get(k)
            cells.append(H.td(H.esc(format_seconds(v)), v=v, cls="best" if i in best[k] else None))
        rows.append(H.tr(cells, cls="ref" if r.role != "unlearned" else None))
    return H.table(head, rows, id_=id_)


def tradeoff_section(runs: Sequence[Run], names: Sequence[str], colours: Sequence[str]) -> str:
    """Forget-vs-utility scatter on the first pair of TRADEOFF_AXES that some run has."""
    for x, y, log_x in TRADEOFF_AXES:  # noqa: B007 (log_x is used after the break)
        have = [
            (r, n, c)
            for r, n, c in zip(runs, names, colours)
            if r.value(x) is not None and r.value(y) is not None
        ]
        if have:
            break
    else:
        return ""
    pts = [
        plots.Point(n, r.role, r.value(x), r.value(y), c)  # type: ignore[arg-type]
        for r, n, c in have
    ]
    uri = plots.tradeoff_scatter(
        pts, label(x), label(y), direction_of(runs, x), direction_of(runs, y), log_x=log_x
    )
    roles = {p.role for p in pts}
    if {"target", "retain"} <= roles:
        caption = (
            "Each point is a run. The target (before unlearning, ✕) and the retain model "
            "(gold standard, ★) are the reference points: a good method moves from the "
            "target towards the retain model."
        )
    else:
        caption = "Each point is a run" + (
            "; ✕ = the target, before unlearning." if "target" in roles else "."
        )
    missing = [n for r, n in zip(runs, names) if r.value(x) is None or r.value(y) is None]
    note = (
        f'<p class="note">Not plotted (no {x} or {y}): {H.esc(", ".join(missing))}.</p>'
        if missing
        else ""
    )
    return H.figure(uri, f"{label(x)} against {label(y)}", caption) + note  # type: ignore[arg-type]


def truth_ratio_section(
    runs: Sequence[Run], names: Sequence[str], colours: Sequence[str], retain: Run | None
) -> str:
    ref = plots.finite(s.get("truth_ratio") for s in retain.samples_of("forget")) if retain else []
    ref = [v for v in ref if v > 0]
    panels = []
    for r, n, c in zip(runs, names, colours):
        if r.role == "retain":
            continue
        vals = [
            v for v in plots.finite(s.get("truth_ratio") for s in r.samples_of("forget")) if v > 0
        ]
        fq = r.value("forget_quality")
        title = n + (f" · forget quality {format_value(fq)}" if fq is not None else "")
        panels.append(plots.HistPanel(title, vals, c, ref))
    uri = plots.histograms(panels, "truth ratio p_wrong / p_true (log scale)", "retain", log_x=True)
    if uri is None:
        return ""
    note = (
        'Per-sample truth ratios on the forget split (samples.jsonl, split "forget"), '
        "the run (line) against the retain model (grey). Forget quality is the KS-test "
        "p-value between the two: the closer the shapes, the better. Values below 1 mean "
        "the true answer is still more likely than the perturbed ones."
    )
    if not ref:
        note += " No retain run with forget truth ratios was found: no reference drawn."
    return H.figure(uri, "truth-ratio histograms", note)


def mia_attacks(runs: Sequence[Run]) -> list[str]:
    keys = {
        k
        for r in runs
        for s in r.samples
        if s["split"] in ("forget", "holdout")
        for k, v in s.items()
        if k.startswith("mia_") and plots.finite([v])
    }
    return [k for k in MIA_ORDER if k in keys] + sorted(keys - set(MIA_ORDER))


def mia_section(runs: Sequence[Run], names: Sequence[str]) -> str:
    attacks = mia_attacks(runs)
    if not attacks:
        return ""
    cells = []
    for r, n in zip(runs, names):
        for a in attacks:
            forget = plots.finite(s.get(a) for s in r.samples_of("forget"))
            holdout = plots.finite(s.get(a) for s in r.samples_of("holdout"))
            cells.append(
                plots.MiaCell(n, MIA_LABELS.get(a, a), forget, holdout, r.value(f"{a}_auc"))
            )
    uri = plots.mia_grid(cells, [MIA_LABELS.get(a, a) for a in attacks], list(names))
    if uri is None:
        return ""
    return H.figure(
        uri,
        "MIA score distributions",
        "Membership-inference scores of forget samples (red) and holdout samples "
        "(never trained on, blue); higher = less member-like. Overlapping "
        "distributions (AUC near the retain model's, about 0.5) mean the forget "
        "set no longer looks like training data; AUC near 1 = still memorised, "
        "near 0 = over-unlearned.",
    )


def curve_keys(runs: Sequence[Run]) -> list[str]:
    keys = {
        k
        for r in runs
        for row in r.train_log
        for k, v in row.items()
        if k not in ("step", "epoch") and plots.finite([v])
    }
    first = [k for k in CURVE_FIRST if k in keys]
    rest = sorted(keys - set(first) - {"lr"})
    return first + rest + (["lr"] if "lr" in keys else [])


def _curves_uri(runs: Sequence[Run], names: Sequence[str], colours: Sequence[str]) -> str | None:
    series: dict[str, list[plots.Curve]] = {}
    for key in curve_keys(runs):
        for r, n, c in zip(runs, names, colours):
            pts = [(row["step"], row[key]) for row in r.train_log if plots.finite([row.get(key)])]
            if pts:
                series.setdefault(label(key), []).append(
                    plots.Curve(n, c, [p[0] for p in pts], [p[1] for p in pts])
                )
    return plots.training_curves(series)


def training_section(runs: Sequence[Run], names: Sequence[str], colours: Sequence[str]) -> str:
    """Unlearning curves of the unlearned runs; the target's and retain model's fine-tuning
    logs (a different scale and length) go to a folded figure of their own."""
    # is reference -> runs, names, colours
    groups: dict[bool, tuple[list[Any], list[Any], list[Any]]] = {
        False: ([], [], []),
        True: ([], [], []),
    }
    for r, n, c in zip(runs, names, colours):
        if r.train_log:
            for part, x in zip(groups[r.role != "unlearned"], (r, n, c)):
                part.append(x)
    main, refs = _curves_uri(*groups[False]), _curves_uri(*groups[True])
    out = ""
    if main:
        out += H.figure(
            main,
            "training curves",
            "Per optimiser step, from train_log.jsonl. The "
            "forget loss is the method's forget term (negative for gradient ascent).",
        )
    if refs:
        fig = H.figure(
            refs,
            "fine-tuning curves",
            "Fine-tuning of the target and retain models, per optimiser step.",
        )
        out += fig if not main else f"<details><summary>Fine-tuning curves</summary>{fig}</details>"
    return out


def ordered_splits(splits: set[str]) -> list[str]:
    return [s for s in SPLIT_ORDER if s in splits] + sorted(splits - set(SPLIT_ORDER))


def generation_html(text: str | None) -> str:
    """A generation, or a muted note when it is missing or empty."""
    if text is None:
        return '<span class="score">no generation</span>'
    return H.esc(text) if text.strip() else '<span class="score">(empty generation)</span>'


def _score_line(s: dict) -> str:
    parts = []
    keys = [("rouge_l_recall", "ROUGE-L"), ("truth_ratio", "TR"), ("prob", "p")]
    if s.get("generation") is None:
        keys.append(("mia_loss", "MIA loss"))
    for k, short in keys:
        v = plots.finite([s.get(k)])
        if v:
            parts.append(f"{short} {format_value(v[0])}")
    return f'<span class="score">{H.esc(" · ".join(parts))}</span>' if parts else ""


def samples_section(runs: Sequence[Run], names: Sequence[str]) -> str:
    """One row per (split, index); one generation column per run (target = before)."""
    shown = [(r, n) for r, n in zip(runs, names) if r.samples]
    if not shown:
        return ""
    by_run = [{(s["split"], s["index"]): s for s in r.samples} for r, _ in shown]
    keys: dict[tuple[str, int], dict] = {}
    s: dict[str, Any] | None
    for r, _ in shown:
        for s in r.samples:
            keys.setdefault((s["split"], s["index"]), s)
    splits = ordered_splits({k[0] for k in keys})
    rank = {s: i for i, s in enumerate(splits)}
    head = [H.th("Split"), H.th("#", num=True), H.th("Question"), H.th("Gold answer")]
    for r, n in shown:
        what = {"target": "before", "retain": "retain model"}.get(r.role, "after")
        head.append(H.th(f"{n} ({what})", title="generation; sort = ROUGE-L recall"))
    rows = []
    for key in sorted(keys, key=lambda k: (rank[k[0]], k[1])):
        first = keys[key]
        cells = [
            H.td(H.esc(key[0])),
            H.td(str(key[1]), v=key[1]),
            H.td(H.esc(first.get("question") or ""), cls="text"),
            H.td(H.esc(first.get("answer") or ""), cls="text"),
        ]
        for samples in by_run:
            s = samples.get(key)
            if s is None:
                cells.append(H.td("—", v=None, cls="gen", num=False))
                continue
            rouge = plots.finite([s.get("rouge_l_recall")])
            cells.append(
                H.td(
                    generation_html(s.get("generation")) + _score_line(s),
                    v=rouge[0] if rouge else None,
                    cls="gen",
                    num=False,
                )
            )
        rows.append(H.tr(cells, split=key[0]))
    return (
        H.filter_bar("samples-table", splits, "Search questions, answers, generations…")
        + '<div class="scroll">'
        + H.table(head, rows, id_="samples-table")
        + "</div>"
        + '<p class="note">Before = the target model\'s generation for the same split and '
        "index; after = the unlearned run's. Sorting a generation column sorts by its "
        "ROUGE-L recall.</p>"
    )


def images_section(
    runs: Sequence[Run], names: Sequence[str], extra: Sequence[tuple[str, Path]] = ()
) -> str:
    """The runs' PNG grids, after ``extra`` (caption, file) images such as a group's grid."""
    parts = [H.figure(plots.png_data_uri(p.read_bytes()), cap, cap) for cap, p in extra]
    for r, n in zip(runs, names):
        for img in r.images:
            parts.append(
                H.figure(
                    plots.png_data_uri(img.read_bytes()), f"{n} {img.name}", f"{n} · {img.name}"
                )
            )
    return f'<div class="grids">{"".join(parts)}</div>' if parts else ""


def runs_section(runs: Sequence[Run], names: Sequence[str]) -> str:
    head = [
        H.th(h)
        for h in ("Run", "Role", "Method", "Benchmark", "Split", "Model", "Fingerprint", "Seed")
    ]
    head += [H.th("Trainable params", num=True), H.th("Versions"), H.th("Created"), H.th("Folder")]
    rows, configs = [], []
    for r, n in zip(runs, names):
        m, v = r.info.get("model"), r.info.get("versions")
        model: dict[str, Any] = m if isinstance(m, dict) else {}
        fp = str(model.get("fingerprint") or "")
        versions: dict[str, Any] = v if isinstance(v, dict) else {}
        tp = r.info.get("trainable_params")
        rows.append(
            H.tr(
                [
                    H.td(H.esc(n)),
                    H.td(H.esc(r.role)),
                    H.td(H.esc(r.method or "")),
                    H.td(H.esc(r.benchmark or "")),
                    H.td(H.esc(r.split or "")),
                    H.td(H.esc(model.get("path") or "")),
                    H.td(f'<code title="{H.esc(fp)}">{H.esc(fp[:19])}</code>' if fp else ""),
                    H.td(H.esc(format_value(r.info.get("seed")))),
                    H.td(H.esc(format_value(tp)), v=tp if isinstance(tp, (int, float)) else None),
                    H.td("<br>".join(H.esc(f"{k} {v}") for k, v in versions.items()), cls="nowrap"),
                    H.td(H.esc(r.info.get("created") or "")),
                    H.td(f"<code>{H.esc(r.path)}</code>"),
                ]
            )
        )
        cfg = r.path / "config.yaml"
        if cfg.is_file():
            text = cfg.read_text(encoding="utf-8", errors="replace")
            if len(text) > CONFIG_MAX_CHARS:
                text = text[:CONFIG_MAX_CHARS] + "\n… (cut)"
            configs.append(
                f"<details><summary>{H.esc(n)}: config.yaml</summary>"
                f"<pre>{H.esc(text)}</pre></details>"
            )
    return (
        '<div class="wide">' + H.table(head, rows, id_="runs-table") + "</div>" + "".join(configs)
    )


def task_warning(runs: Sequence[Run]) -> str:
    tasks = sorted({f"{r.benchmark}/{r.split}" for r in runs})
    if len(tasks) > 1:
        return (
            f'<div class="warn">These runs come from different benchmark splits '
            f"({H.esc(', '.join(tasks))}); their metrics are not directly comparable."
            "</div>"
        )
    return ""


# ---------------------------------------------------------------------------- the report


def build_report(
    runs: Sequence[Run], title: str, extra_images: Sequence[tuple[str, Path]] = ()
) -> str:
    """The report's HTML for ``runs`` (references included by the caller); ``extra_images``
    are (caption, PNG file) shown first among the image grids."""
    runs = _role_order(runs)
    names = display_names(runs)
    colours = plots.colours([r.role for r in runs])
    retain = next((r for r in runs if r.role == "retain"), None)
    sections = [
        ("summary", "Summary", task_warning(runs) + headline_section(runs, names)),
        ("tradeoff", "Forget vs utility", tradeoff_section(runs, names, colours)),
        ("truth-ratio", "Truth ratio", truth_ratio_section(runs, names, colours, retain)),
        ("mia", "Membership inference", mia_section(runs, names)),
        ("training", "Training curves", training_section(runs, names, colours)),
        ("samples", "Samples", samples_section(runs, names)),
        ("images", "Image grids", images_section(runs, names, extra_images)),
        ("runs", "Runs", runs_section(runs, names)),
    ]
    tasks = sorted({" · ".join(x for x in (r.benchmark, r.split) if x) for r in runs})
    subtitle = f"{' | '.join(t for t in tasks if t)} · {len(runs)} runs: {', '.join(names)}"
    return H.page(title, subtitle, [s for s in sections if s[2]], created=now_utc())


def output_path(
    out: str | os.PathLike[str] | None, paths: Sequence[str | os.PathLike[str]], name: str
) -> Path:
    """``out`` (``out/name`` when it is an existing folder), else ``name`` in the one folder
    given; several folders and no ``out`` is an error."""
    if out is not None:
        return Path(out) / name if Path(out).is_dir() else Path(out)
    if len(paths) != 1:
        raise ValueError(
            f"{len(paths)} folders given: say where to write the report "
            "(out=... in Python, -o FILE on the command line)"
        )
    return Path(paths[0]) / name


def write_report(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the HTML report of a group folder or of run folders and return its path.

    ``paths``: one group folder (its sub-folders are the runs) or run folders. The target and
    retain runs are added from the runs' group folder when not given. ``out`` is a file, or a
    folder to write ``report.html`` into; it defaults to ``<folder>/report.html`` when one
    folder is given (several folders need ``out``).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    runs = load_runs(paths)
    target = output_path(out, paths, "report.html")
    refs = find_references(runs)
    runs += [r for r in refs.values() if not any(r is x for x in runs)]
    extra: list[tuple[str, Path]] = []
    if len(paths) == 1 and not (Path(paths[0]) / "metrics.json").is_file():
        group = Path(paths[0]).resolve()
        title = f"Unlearning report: {group.name}"
        extra = [(f"{group.name} · {p.name}", p) for p in group_images(group)]
    elif len([r for r in runs if r.role == "unlearned"]) == 1:
        title = f"Unlearning report: {next(r for r in runs if r.role == 'unlearned').name}"
    else:
        title = "Unlearning report"
    return atomic_write_text(target, build_report(runs, title, extra))
