"""Tables as data: headline and leaderboard rows, Markdown/CSV export, run and sample deltas.

Pure functions over :class:`~obliviate.runs.Run` objects and sample dicts; the HTML
and the plots are built from their output.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from obliviate.reporting.formatting import (  # noqa: F401  (re-exported)
    _finite,
    format_delta,
    format_seconds,
    format_value,
)
from obliviate.runs import Run

# The headline table: TOFU-style text runs, and diffusion runs (docs/run-format.md).
TEXT_HEADLINE = ("forget_quality", "model_utility", "privleak", "forget_rouge")
DIFFUSION_HEADLINE = (
    "unlearning_accuracy",
    "in_domain_retain_accuracy",
    "cross_domain_retain_accuracy",
    "fid",
)
# Order of the full metric table; metrics not listed follow alphabetically.
METRIC_ORDER = (
    TEXT_HEADLINE
    + (
        "forget_paraphrased_rouge",
        "forget_prob",
        "forget_truth_ratio",
        "forget_exact_memorisation",
        "forget_extraction_strength",
        "retain_prob",
        "retain_rouge",
        "retain_truth_ratio",
        "real_authors_prob",
        "real_authors_rouge",
        "real_authors_truth_ratio",
        "world_facts_prob",
        "world_facts_rouge",
        "world_facts_truth_ratio",
        "mia_loss_auc",
        "mia_zlib_auc",
        "mia_min_k_auc",
        "mia_min_k_plus_plus_auc",
    )
    + DIFFUSION_HEADLINE
)

LABELS = {
    "forget_quality": "Forget quality",
    "model_utility": "Model utility",
    "privleak": "PrivLeak (%)",
    "forget_rouge": "Forget ROUGE-L",
    "forget_paraphrased_rouge": "Forget ROUGE-L (paraphrased)",
    "forget_prob": "Forget prob",
    "forget_truth_ratio": "Forget truth ratio",
    "forget_exact_memorisation": "Forget exact memorisation",
    "forget_extraction_strength": "Forget extraction strength",
    "retain_prob": "Retain prob",
    "retain_rouge": "Retain ROUGE-L",
    "retain_truth_ratio": "Retain truth ratio",
    "mia_loss_auc": "MIA LOSS AUC",
    "mia_zlib_auc": "MIA ZLib AUC",
    "mia_min_k_auc": "MIA Min-K% AUC",
    "mia_min_k_plus_plus_auc": "MIA Min-K%++ AUC",
    "unlearning_accuracy": "Unlearning accuracy",
    "in_domain_retain_accuracy": "In-domain retain acc.",
    "cross_domain_retain_accuracy": "Cross-domain retain acc.",
    "fid": "FID",
    "train_s": "Train time (s)",
    "eval_s": "Eval time (s)",
    "rouge_l_recall": "ROUGE-L recall",
    "truth_ratio": "Truth ratio",
    "prob": "Prob",
    "forget_loss": "Forget loss",
    "retain_loss": "Retain loss",
    "loss": "Total loss",
    "lr": "Learning rate",
}
DIRECTION_TEXT = {
    "higher": "higher is better",
    "lower": "lower is better",
    "zero": "closest to 0 is best",
}
TIMING_KEYS = ("train_s", "eval_s")
# Per-sample keys, in the order used to pick the one that ranks "changed most".
SAMPLE_KEY_PRIORITY = ("rouge_l_recall", "prob", "truth_ratio")


def label(name: str) -> str:
    """Human-readable name of a metric or sample key."""
    text = LABELS.get(name, name.replace("_", " "))
    return text[:1].upper() + text[1:]


def ordered_metrics(names: Iterable[str]) -> list[str]:
    """Metric names in the canonical order (METRIC_ORDER first, then alphabetical)."""
    names = set(names)
    known = [m for m in METRIC_ORDER if m in names]
    return known + sorted(names - set(known))


def all_metrics(runs: Sequence[Run]) -> list[str]:
    return ordered_metrics(m for r in runs for m in r.metrics)


def headline_metrics(runs: Sequence[Run]) -> list[str]:
    """The headline columns present in any run; the first six metrics when none is."""
    present = {m for r in runs for m in r.metrics}
    cols = [m for m in TEXT_HEADLINE + DIFFUSION_HEADLINE if m in present]
    return cols or all_metrics(runs)[:6]


def _registered(metric: str) -> Any:
    """The catalogue's definition of ``metric``; None for an old or foreign name."""
    from obliviate.registry import METRICS

    entry = METRICS.find(metric)
    return None if entry is None else entry.load()


def direction_of(runs: Sequence[Run], metric: str) -> str | None:
    """The metric's direction as the first run that has it records it, else as the metric
    catalogue registers it (timings: lower)."""
    if metric in TIMING_KEYS:
        return "lower"
    for r in runs:
        if metric in r.metrics:
            return r.metrics[metric].direction
    d = _registered(metric)
    return None if d is None else d.direction


@dataclass(frozen=True)
class Goal:
    """What "better" means for a metric: its direction, or closeness to an ideal value."""

    direction: str  # "higher" | "lower" | "zero"
    ideal: float | None = None

    def loss(self, v: float) -> float:
        """Smaller is better."""
        if self.ideal is not None:
            return abs(v - self.ideal)
        return {"higher": -v, "lower": v, "zero": abs(v)}[self.direction]

    @property
    def text(self) -> str:
        if self.ideal is not None:
            return f"closest to {self.ideal:g} is best"
        return DIRECTION_TEXT[self.direction]


NO_GOAL_TEXT = "no best value (goal: the retain model's level)"


def best_indices(values: Sequence[float | None], goal: Goal | None) -> set[int]:
    """Indices of the best values (ties included) under ``goal``; missing values never win."""
    scored = [(i, v) for i, v in enumerate(values) if _finite(v) is not None]
    if not scored or goal is None:
        return set()
    best = min(goal.loss(v) for _, v in scored)  # type: ignore[arg-type]
    return {i for i, v in scored if goal.loss(v) == best}  # type: ignore[arg-type]


def display_names(runs: Sequence[Run]) -> list[str]:
    """Run names, prefixed with their group where a name occurs more than once."""
    names = [r.name for r in runs]
    return [f"{r.group}/{r.name}" if names.count(r.name) > 1 and r.group else r.name for r in runs]


def run_value(run: Run, column: str) -> float | None:
    """A metric value, or a timing (``train_s``, ``eval_s``) in seconds."""
    if column in TIMING_KEYS:
        return run.timing.get(column)
    return run.value(column)


def goal_of(runs: Sequence[Run], metric: str) -> Goal | None:
    """The metric's goal as the first run that has it records it; timings: lower is better.

    When the record has no ``ideal`` but the metric catalogue gives one (MIA AUCs: 0.5, the
    retain model's level), the catalogue's ideal applies if the recorded direction agrees with
    the catalogue's; otherwise (older runs that recorded an AUC as "zero") the goal is ``None``:
    no recorded value expresses it, so the metric is not ranked.
    """
    if metric in TIMING_KEYS:
        return Goal("lower")
    for r in runs:
        if metric in r.metrics:
            m = r.metrics[metric]
            d = _registered(metric)
            if m.ideal is None and d is not None and d.ideal is not None:
                return Goal(m.direction, d.ideal) if m.direction == d.direction else None
            return Goal(m.direction, m.ideal)
    return None


def goal_text(runs: Sequence[Run], metric: str) -> str:
    goal = goal_of(runs, metric)
    return goal.text if goal else NO_GOAL_TEXT


def best_cells(runs: Sequence[Run], columns: Sequence[str]) -> dict[str, set[int]]:
    """For each column, the indices (into ``runs``) of the best *unlearned* runs.

    Target and retain runs are references, not contestants; with fewer than two unlearned
    runs nothing is marked, nor for columns without a goal (:func:`goal_of`).
    """
    contestants = [i for i, r in enumerate(runs) if r.role == "unlearned"]
    out: dict[str, set[int]] = {}
    for col in columns:
        if len(contestants) < 2:
            out[col] = set()
            continue
        vals = [run_value(runs[i], col) for i in contestants]
        out[col] = {contestants[j] for j in best_indices(vals, goal_of(runs, col))}
    return out


# ---------------------------------------------------------------------------- leaderboard


@dataclass
class Leaderboard:
    """A table of runs: ``columns`` are keys of each row dict (raw values)."""

    columns: list[str]
    rows: list[dict[str, Any]]
    metrics: list[str]  # the metric columns (for directions and highlighting)
    best: dict[str, set[int]] = field(default_factory=dict)  # column -> row indices
    runs: list[Run] = field(default_factory=list)  # in row order


def leaderboard(runs: Sequence[Run]) -> Leaderboard:
    """Rows of a leaderboard: target and retain first (references), then the unlearned runs
    ranked by the first headline metric, best first (missing values last)."""
    metrics = all_metrics(runs)
    primary = headline_metrics(runs)[0] if metrics else None
    goal = goal_of(runs, primary) if primary else None

    def rank(r: Run) -> tuple[Any, ...]:
        v = r.value(primary) if primary else None
        score = math.inf if v is None or goal is None else goal.loss(v)
        return (_ROLE_RANK[r.role], score if r.role == "unlearned" else 0)

    order = sorted(range(len(runs)), key=lambda i: rank(runs[i]))  # stable for ties
    ordered = [runs[i] for i in order]
    names = display_names(ordered)
    timing = [k for k in TIMING_KEYS if any(k in r.timing for r in ordered)]
    columns = ["run", "role", "method", *metrics, *timing, "trainable_params", "seed", "path"]
    rows = []
    for r, name in zip(ordered, names):
        row: dict[str, Any] = {"run": name, "role": r.role, "method": r.method}
        for m in metrics:
            row[m] = r.value(m)
        for k in timing:
            row[k] = r.timing.get(k)
        row["trainable_params"] = r.info.get("trainable_params")
        seeds = r.info.get("seeds")
        row["seed"] = ",".join(map(str, seeds)) if isinstance(seeds, list) else r.info.get("seed")
        row["path"] = str(r.path)
        row["spread"] = seed_spread(r, metrics)
        rows.append(row)
    return Leaderboard(columns, rows, metrics, best_cells(ordered, metrics + timing), ordered)


_ROLE_RANK = {"target": 0, "retain": 1, "unlearned": 2}
SPREAD_KEYS = ("sd", "ci_low", "ci_high", "n")


def seed_spread(run: Run, metrics: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per metric of a run averaged over seeds (docs/run-format.md, "Several seeds"): its
    ``sd``, ``ci_low``, ``ci_high`` and ``n``; empty for a single run."""
    raw = run.info.get("metrics") or {}
    return {
        m: {k: raw[m].get(k) for k in SPREAD_KEYS}
        for m in metrics
        if isinstance(raw.get(m), dict) and "n" in raw[m] and "seeds" in run.info
    }


def format_spread(value: Any, spread: dict[str, Any] | None) -> str:
    """``format_value``, followed by `` ± sd`` for a mean over seeds."""
    text = format_value(value)
    if value is not None and spread and spread.get("sd") is not None:
        text += " ± " + format_value(spread["sd"])
    return text


def _md_cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def to_markdown(board: Leaderboard) -> str:
    """GitHub Markdown table; the best unlearned value of each metric in bold."""
    cols = [c for c in board.columns if c != "path"]
    header = [label(c) if c in board.metrics or c in TIMING_KEYS else c for c in cols]
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |"]
    lines.append(
        "| "
        + " | ".join("---:" if c in board.metrics or c in TIMING_KEYS else "---" for c in cols)
        + " |"
    )
    for i, row in enumerate(board.rows):
        cells = []
        for c in cols:
            v = row[c]
            spread = row.get("spread", {}).get(c)
            text = "" if v is None and c in ("method", "seed") else format_spread(v, spread)
            if i in board.best.get(c, ()):
                text = f"**{text}**"
            cells.append(_md_cell(text))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(board: Leaderboard) -> str:
    """CSV with a header of raw column keys and full-precision values (empty = missing); with
    runs averaged over seeds, ``<metric>_sd``, ``_ci_low``, ``_ci_high`` and ``_n`` columns
    follow the others."""
    spread = [m for m in board.metrics if any(m in row.get("spread", {}) for row in board.rows)]
    extra = [(m, k) for m in spread for k in SPREAD_KEYS]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(board.columns + [f"{m}_{k}" for m, k in extra])
    for row in board.rows:
        values = [row[c] for c in board.columns]
        values += [row.get("spread", {}).get(m, {}).get(k) for m, k in extra]
        writer.writerow(
            ["" if v is None else repr(v) if isinstance(v, float) else v for v in values]
        )
    return buf.getvalue()


# ---------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class MetricDelta:
    """One metric of run A against run B. ``verdict`` is B's change: better/worse/same."""

    metric: str
    goal: Goal | None
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def verdict(self) -> str | None:
        if self.a is None or self.b is None or self.goal is None:
            return None
        change = self.goal.loss(self.a) - self.goal.loss(self.b)
        return "better" if change > 0 else "worse" if change < 0 else "same"


def metric_deltas(a: Run, b: Run) -> list[MetricDelta]:
    """B − A for every metric either run has, then train and eval time (lower is better).
    Metrics without a goal (:func:`goal_of`) get no verdict."""
    out = [MetricDelta(m, goal_of([a, b], m), a.value(m), b.value(m)) for m in all_metrics([a, b])]
    for k in TIMING_KEYS:
        if k in a.timing or k in b.timing:
            out.append(MetricDelta(k, Goal("lower"), a.timing.get(k), b.timing.get(k)))
    return out


@dataclass
class SampleDelta:
    """One sample evaluated in both runs, matched by (split, index)."""

    split: str
    index: int
    question: str
    answer: str
    generation_a: str | None
    generation_b: str | None
    values: dict[str, tuple[float | None, float | None]]  # key -> (A, B)

    def delta(self, key: str) -> float | None:
        a, b = self.values.get(key, (None, None))
        return None if a is None or b is None else b - a

    @property
    def generation_changed(self) -> bool:
        return (self.generation_a or "").strip() != (self.generation_b or "").strip()


@dataclass
class SampleComparison:
    rows: list[SampleDelta]
    keys: list[str]  # per-sample numeric keys present in both runs
    only_a: int  # samples evaluated only in A
    only_b: int

    @property
    def primary(self) -> str | None:
        """The key that ranks "changed most": ROUGE-L recall, else prob, else truth ratio."""
        for k in SAMPLE_KEY_PRIORITY:
            if k in self.keys:
                return k
        return self.keys[0] if self.keys else None


_NOT_SCORES = {"split", "index"}


def sample_deltas(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> SampleComparison:
    """Match samples of two runs by (split, index) and pair their numeric per-sample scores.

    A key counts when it holds a number in at least one matched sample of each run; NaN or
    missing values become ``None``.
    """
    b_by_key = {(s["split"], s["index"]): s for s in b}
    a_keys = {(s["split"], s["index"]) for s in a}
    keys_a = {k for s in a for k, v in s.items() if _finite(v) is not None} - _NOT_SCORES
    keys_b = {k for s in b for k, v in s.items() if _finite(v) is not None} - _NOT_SCORES
    keys = [k for k in SAMPLE_KEY_PRIORITY if k in keys_a & keys_b]
    keys += sorted((keys_a & keys_b) - set(keys))
    rows = []
    for sa in a:
        sb = b_by_key.get((sa["split"], sa["index"]))
        if sb is None:
            continue
        rows.append(
            SampleDelta(
                split=sa["split"],
                index=sa["index"],
                question=sa.get("question") or sb.get("question") or "",
                answer=sa.get("answer") or sb.get("answer") or "",
                generation_a=sa.get("generation"),
                generation_b=sb.get("generation"),
                values={k: (_finite(sa.get(k)), _finite(sb.get(k))) for k in keys},
            )
        )
    return SampleComparison(
        rows=rows,
        keys=keys,
        only_a=len(a_keys - set(b_by_key)),
        only_b=len(set(b_by_key) - a_keys),
    )


def most_changed(comp: SampleComparison, n: int = 10, key: str | None = None) -> list[SampleDelta]:
    """The ``n`` samples whose behaviour changed most: largest |B − A| of ``key`` (default:
    :attr:`SampleComparison.primary`), ties broken by a changed generation, then by split and
    index. Samples with no change at all (same score, same generation) are left out."""
    key = key or comp.primary

    def size(r: SampleDelta) -> float:
        d = r.delta(key) if key else None
        return abs(d) if d is not None else 0.0

    changed = [r for r in comp.rows if size(r) > 0 or r.generation_changed]
    changed.sort(key=lambda r: (-size(r), not r.generation_changed, r.split, r.index))
    return changed[:n]


def split_means(comp: SampleComparison) -> list[dict[str, Any]]:
    """Per split and key: number of matched samples, mean of A, mean of B, mean of B − A,
    and the number of changed generations."""
    out = []
    for split in sorted({r.split for r in comp.rows}):
        rows = [r for r in comp.rows if r.split == split]
        changed = sum(r.generation_changed for r in rows)
        for k in comp.keys:
            pairs = [r.values[k] for r in rows]
            va = [x for x, _ in pairs if x is not None]
            vb = [y for _, y in pairs if y is not None]
            ds = [d for d in (r.delta(k) for r in rows) if d is not None]
            if not va and not vb:
                continue
            out.append(
                {
                    "split": split,
                    "key": k,
                    "n": len(rows),
                    "mean_a": sum(va) / len(va) if va else None,
                    "mean_b": sum(vb) / len(vb) if vb else None,
                    "mean_delta": sum(ds) / len(ds) if ds else None,
                    "generations_changed": changed,
                }
            )
    return out
