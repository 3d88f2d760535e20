"""Plots as base64 PNG ``data:`` URIs (matplotlib, Agg; no pyplot, no global backend change).

Each function takes plain lists and returns a data URI, or ``None`` when there is nothing to
draw. matplotlib and numpy are imported inside the functions (``import obliviate.reporting``
stays cheap).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ROLE_COLOURS = {"target": "#d62728", "retain": "#2ca02c"}
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
    "#393b79",
    "#637939",
)
ARROWS = {
    ("x", "higher"): "→ better",
    ("x", "lower"): "← better",
    ("y", "higher"): "↑ better",
    ("y", "lower"): "↓ better",
    ("x", "zero"): "best at 0",
    ("y", "zero"): "best at 0",
}


def colours(roles: Sequence[str]) -> list[str]:
    """One colour per run: red target, green retain, palette colours for the others."""
    out, k = [], 0
    for role in roles:
        if role in ROLE_COLOURS:
            out.append(ROLE_COLOURS[role])
        else:
            out.append(PALETTE[k % len(PALETTE)])
            k += 1
    return out


def finite(values: Iterable[Any]) -> list[float]:
    """The finite numbers among ``values`` (drops None, NaN, inf, strings, booleans)."""
    return [
        float(v)
        for v in values
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ]


def bin_count(n_values: int) -> int:
    """Bins for a histogram of ``n_values`` points: 2·√n, between 6 and 30."""
    return max(6, min(30, round(2 * math.sqrt(n_values))))


def log_bins(values: Sequence[float], n: int = 30) -> list[float]:
    """``n`` log-spaced bins covering the positive ``values`` (a decade wide at least)."""
    pos = [v for v in values if v > 0]
    if not pos:
        raise ValueError("log_bins needs at least one positive value")
    lo, hi = math.log10(min(pos)), math.log10(max(pos))
    if hi - lo < 1:
        mid = (hi + lo) / 2
        lo, hi = mid - 0.5, mid + 0.5
    return [10 ** (lo + (hi - lo) * i / n) for i in range(n + 1)]


def linear_bins(values: Sequence[float], n: int = 20) -> list[float]:
    lo, hi = min(values), max(values)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    return [lo + (hi - lo) * i / n for i in range(n + 1)]


def _to_uri(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class MissingMatplotlib(ImportError):
    """matplotlib (the ``report`` extra) is not installed."""


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingMatplotlib("reports need matplotlib: pip install 'obliviate[report]'") from exc
    return Figure(figsize=(width, height))


def _margins(
    fig: Any,
    rows: int = 1,
    cols: int = 1,
    left: float = 0.65,
    right: float = 0.2,
    bottom: float = 0.55,
    top: float = 0.35,
    wgap: float = 0.6,
    hgap: float = 0.75,
) -> None:
    """Fixed margins and gaps in inches (much cheaper than a layout engine, which measures
    every tick label again)."""
    w, h = fig.get_size_inches()
    ax_w = (w - left - right - (cols - 1) * wgap) / cols
    ax_h = (h - top - bottom - (rows - 1) * hgap) / rows
    fig.subplots_adjust(
        left=left / w,
        right=1 - right / w,
        bottom=bottom / h,
        top=1 - top / h,
        wspace=wgap / ax_w,
        hspace=hgap / ax_h,
    )


def _log_x(ax: Any, lo: float, hi: float) -> None:
    """Log x axis for data in [lo, hi] (lo > 0): labels at every 1..9 step within half a decade,
    at 1-2-5 steps over up to three decades, on decades only beyond; minor ticks unlabelled
    (their labels overlap)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    decades = math.log10(hi / lo)
    subs = (
        tuple(float(k) for k in range(1, 10))
        if decades < 0.5
        else (1.0, 2.0, 5.0)
        if decades <= 3
        else (1.0,)
    )
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _style(ax: Any) -> None:
    ax.grid(True, alpha=0.3, linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8)


def label_offsets(
    xs: Sequence[float], ys: Sequence[float], near: float = 0.04, step: float = 11.0
) -> list[float]:
    """Vertical label offsets (points) so that labels of coinciding markers do not overlap:
    a point within ``near`` (as a share of each axis range) of earlier points is labelled
    ``step`` points higher per such point."""
    wx = (max(xs) - min(xs)) or 1.0
    wy = (max(ys) - min(ys)) or 1.0
    out: list[float] = []
    for i, (x, y) in enumerate(zip(xs, ys)):
        close = sum(
            1 for j in range(i) if abs(xs[j] - x) / wx < near and abs(ys[j] - y) / wy < near
        )
        out.append(close * step)
    return out


@dataclass(frozen=True)
class Point:
    """One run in the trade-off scatter."""

    name: str
    role: str
    x: float
    y: float
    colour: str


def tradeoff_scatter(
    points: Sequence[Point],
    x_label: str,
    y_label: str,
    x_dir: str | None,
    y_dir: str | None,
    log_x: bool = False,
) -> str | None:
    """Forget (x) against utility (y), one labelled point per run; the target and retain
    models are drawn as reference markers. With ``log_x``, non-positive x values are drawn
    at the left edge and marked ``≤``."""
    if not points:
        return None
    fig = _figure(7.0, 4.6)
    ax = fig.add_subplot()
    _margins(fig, left=0.75, bottom=0.6, top=0.2, right=0.3)
    drawn = [p.x for p in points]
    if log_x:
        pos = [x for x in drawn if x > 0]
        floor = (min(pos) / 10) if pos else 1e-30
        drawn = [x if x > 0 else floor for x in drawn]
        _log_x(ax, min(drawn), max(drawn))
    offsets = label_offsets([math.log10(x) if log_x else x for x in drawn], [p.y for p in points])
    for p, x, dy in zip(points, drawn, offsets):
        marker, size = {"target": ("X", 130), "retain": ("*", 220)}.get(p.role, ("o", 70))
        ax.scatter(
            [x],
            [p.y],
            s=size,
            marker=marker,
            color=p.colour,
            edgecolor="black",
            linewidth=0.6,
            zorder=3,
        )
        name = p.name + (
            f" ({p.role})" if p.role in ("target", "retain") and p.name != p.role else ""
        )
        if log_x and p.x <= 0:
            name = "≤ " + name
        ax.annotate(name, (x, p.y), textcoords="offset points", xytext=(7, 5 + dy), fontsize=8.5)
    xd, yd = ARROWS.get(("x", x_dir or ""), ""), ARROWS.get(("y", y_dir or ""), "")
    ax.set_xlabel(f"{x_label}{' (log scale)' if log_x else ''}   {xd}", fontsize=9)
    ax.set_ylabel(f"{y_label}   {yd}", fontsize=9)
    ax.margins(x=0.15, y=0.15)
    _style(ax)
    return _to_uri(fig)


@dataclass(frozen=True)
class HistPanel:
    """One run's values against the reference values (e.g. the retain model's)."""

    title: str
    values: Sequence[float]
    colour: str
    reference: Sequence[float] = ()


def histograms(
    panels: Sequence[HistPanel],
    x_label: str,
    reference_label: str,
    log_x: bool = False,
    per_row: int = 3,
) -> str | None:
    """Small multiples: each panel overlays a run's histogram on the reference histogram,
    with shared bins (log-spaced with ``log_x``; non-positive values are then left out)."""
    panels = [p for p in panels if p.values]
    if not panels:
        return None
    cols = min(per_row, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = _figure(4.2 * cols, 2.9 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    _margins(fig, rows, cols, left=0.5, hgap=0.8)
    for k, p in enumerate(panels):
        ax = axes[k // cols][k % cols]
        vals, ref = list(p.values), list(p.reference)
        both = vals + ref
        k = bin_count(max(len(vals), len(ref)))
        bins = log_bins(both, k) if log_x else linear_bins(both, k)
        if ref:
            ax.hist(
                ref,
                bins=bins,
                histtype="stepfilled",
                color="#9aa5b4",
                alpha=0.55,
                label=f"{reference_label} (n={len(ref)})",
            )
        ax.hist(
            vals,
            bins=bins,
            histtype="step",
            linewidth=1.8,
            color=p.colour,
            label=f"run (n={len(vals)})",
        )
        if log_x:
            _log_x(ax, bins[0], bins[-1])
        ax.set_title(p.title, fontsize=9.5)
        ax.set_xlabel(x_label, fontsize=8.5)
        ax.legend(fontsize=7.5, frameon=False)
        _style(ax)
    for k in range(len(panels), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    return _to_uri(fig)


@dataclass(frozen=True)
class MiaCell:
    """One (run, attack): scores on forget and on holdout samples, and the run's AUC."""

    run: str
    attack: str
    forget: Sequence[float]
    holdout: Sequence[float]
    auc: float | None = None


def mia_grid(cells: Sequence[MiaCell], attacks: Sequence[str], runs: Sequence[str]) -> str | None:
    """Rows = runs, columns = attacks: forget vs holdout score distributions."""
    by_key = {(c.run, c.attack): c for c in cells if c.forget or c.holdout}
    runs = [r for r in runs if any((r, a) in by_key for a in attacks)]
    if not runs:
        return None
    fig = _figure(3.3 * len(attacks), 2.3 * len(runs))
    axes = fig.subplots(len(runs), len(attacks), squeeze=False)
    _margins(fig, len(runs), len(attacks), left=0.45, bottom=0.5, wgap=0.45, hgap=0.55)
    for i, run in enumerate(runs):
        for j, attack in enumerate(attacks):
            ax = axes[i][j]
            c = by_key.get((run, attack))
            if c is None:
                ax.set_visible(False)
                continue
            bins = linear_bins(
                list(c.forget) + list(c.holdout), bin_count(max(len(c.forget), len(c.holdout)))
            )
            ax.hist(
                c.holdout,
                bins=bins,
                histtype="stepfilled",
                color="#1f77b4",
                alpha=0.45,
                label="holdout",
            )
            ax.hist(
                c.forget, bins=bins, histtype="step", linewidth=1.8, color="#d62728", label="forget"
            )
            auc = f" · AUC {c.auc:.3f}" if c.auc is not None else ""
            ax.set_title(f"{run} · {attack}{auc}", fontsize=8.5)
            if i == 0 and j == 0:
                ax.legend(fontsize=7.5, frameon=False)
            if i == len(runs) - 1:
                ax.set_xlabel("score (higher = less member-like)", fontsize=7.5)
            _style(ax)
    return _to_uri(fig)


@dataclass(frozen=True)
class Curve:
    run: str
    colour: str
    steps: Sequence[float]
    values: Sequence[float]


def training_curves(series: Mapping[str, Sequence[Curve]], per_row: int = 3) -> str | None:
    """One panel per logged quantity (forget loss, retain loss, ...), one line per run."""
    series = {k: [c for c in v if c.steps] for k, v in series.items()}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    cols = min(per_row, len(series))
    rows = math.ceil(len(series) / cols)
    fig = _figure(4.3 * cols, 2.9 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    _margins(fig, rows, cols, left=0.6, wgap=0.7, hgap=0.8)
    for k, (name, curves) in enumerate(series.items()):
        ax = axes[k // cols][k % cols]
        for c in curves:
            ax.plot(
                c.steps,
                c.values,
                color=c.colour,
                linewidth=1.5,
                marker="." if len(c.steps) < 40 else None,
                label=c.run,
            )
        ax.set_title(name, fontsize=9.5)
        ax.set_xlabel("step", fontsize=8.5)
        ax.legend(fontsize=7.5, frameon=False)
        _style(ax)
    for k in range(len(series), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    return _to_uri(fig)


def paired_scatter(
    pairs: Mapping[str, Sequence[tuple[float, float]]], key_label: str, a_name: str, b_name: str
) -> str | None:
    """Per-sample value in run A (x) against run B (y), one colour per split, with the
    diagonal: points far from it are the samples that changed most."""
    pairs = {s: p for s, p in pairs.items() if p}
    if not pairs:
        return None
    fig = _figure(5.6, 4.6)
    ax = fig.add_subplot()
    _margins(fig, left=0.7, bottom=0.6, top=0.2)
    allv = [v for p in pairs.values() for xy in p for v in xy]
    lo, hi = min(allv), max(allv)
    pad = (hi - lo) * 0.05 or 0.5
    ax.plot(
        [lo - pad, hi + pad],
        [lo - pad, hi + pad],
        color="#9aa5b4",
        linewidth=1,
        linestyle="--",
        label="no change",
    )
    for k, (split, p) in enumerate(sorted(pairs.items())):
        ax.scatter(
            [x for x, _ in p],
            [y for _, y in p],
            s=22,
            alpha=0.75,
            color=PALETTE[k % len(PALETTE)],
            label=split,
        )
    ax.set_xlabel(f"{key_label}: {a_name}", fontsize=9)
    ax.set_ylabel(f"{key_label}: {b_name}", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    _style(ax)
    return _to_uri(fig)


def png_data_uri(data: bytes) -> str:
    """A PNG file's bytes as a ``data:`` URI (for diffusion image grids)."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
