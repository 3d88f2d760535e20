"""Every comparison table of the recipes, rendered once (Markdown): the QA/TOFU comparison
(Maini+ 2024, arXiv 2401.06121), the MUSE six-way table (Shi+ 2024, arXiv 2407.06460) and the
diffusion erasure table (UA/IRA/CRA as in Fan+ 2024, arXiv 2310.12508, SalUn).

Each renderer takes the recipe's ``comparison.json`` document; all share :func:`markdown_table`.
Pure functions over plain dicts; column directions come from the metric catalogue.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from obliviate.metrics.catalogue import direction_of


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table: the header, the ``|---|`` rule, one line per row."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return lines


# ----------------------------------------------------------------------------- QA / TOFU

# (key, label, direction); the direction is the metric catalogue's
COLUMNS = [
    (key, label, direction_of(key))
    for key, label in (
        ("forget_quality", "FQ"),
        ("model_utility", "MU"),
        ("retain_prob", "retain prob"),
        ("retain_rouge", "retain ROUGE"),
        ("forget_rouge", "forget ROUGE"),
        ("forget_prob", "forget prob"),
        ("privleak", "privleak"),
    )
]


def fmt_number(v: Any) -> str:
    """A table cell of the QA comparison: ``-`` for missing, 3 decimals, scientific when tiny."""
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e4):
            return f"{v:.2e}"
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


_NOISE = {True: "within noise", False: "worse", None: "n/a"}


def _vs_best(row: dict[str, Any]) -> str:
    if row["role"] != "unlearned":
        return ""
    return "best" if row.get("best") else _NOISE[row.get("within_noise")]


def _cell(value: Any, stats: dict[str, Any] | None) -> str:
    """``fmt_number``, or ``mean ± sd`` for a value averaged over seeds."""
    if not stats or stats.get("sd") is None or value is None:
        return fmt_number(value)
    return f"{fmt_number(value)} ± {fmt_number(stats['sd'])}"


def comparison_markdown(doc: dict[str, Any]) -> str:
    """The QA benchmark comparison (TOFU's columns, or the entry's own metrics in ``labels``)."""
    labels = doc.get("labels")
    columns = COLUMNS if not labels else [(k, v[0], v[1]) for k, v in labels.items()]
    heads = ["run", "role"] + [label for _, label, _ in columns] + ["time (s)", "trainable"]
    ranked = "rank_by" in doc
    if ranked:
        heads.append("vs best")
    rows = []
    for r in doc["rows"]:
        stats = r.get("stats") or {}
        cells = [r["name"], r["role"]] + [_cell(r.get(k), stats.get(k)) for k, _, _ in columns]
        cells += [fmt_number(r.get("train_s")), fmt_number(r.get("trainable_params"))]
        if ranked:
            cells.append(_vs_best(r))
        rows.append(cells)
    lines = [
        f"benchmark: {doc['benchmark']}  split: {doc['split']}",
        "",
        *markdown_table(heads, rows),
    ]
    if ranked:
        label = {k: lab for k, lab, _ in columns}.get(doc["rank_by"], doc["rank_by"])
        lines += [
            "",
            f"Unlearned runs ranked by their mean {label} over seeds (mean ± sample sd); "
            "'within noise': its 95% bootstrap interval overlaps the best run's.",
        ]
    if doc.get("tuned"):
        lines += ["", *tuned_notes(doc["tuned"])]
    notes = unavailable_notes(doc["rows"], {k: label for k, label, _ in columns})
    if notes:
        lines += ["", "Not computed (`-`):", *notes]
    return "\n".join(lines) + "\n"


def tuned_notes(tuned: dict[str, Any]) -> list[str]:
    """Markdown lines under the comparison table: each method's selected setting."""
    lines = [
        f"Tuned rows: the trial a sweep of {tuned['trials']} trials per method selected "
        f"(objective {tuned['objective']}); `!` = no trial met the objective's constraints."
    ]
    for method, pick in tuned["methods"].items():
        setting = ", ".join(f"{k}={_short(v)}" for k, v in pick["params"].items())
        mark = "" if pick["feasible"] else " !"
        lines.append(f"- {method}{mark}: `{pick['run']}`: {setting or 'the preset'}")
    if tuned.get("compare"):
        lines += ["", *compare_notes(tuned)]
    return lines


# the metrics of each pick in the selection comparison under a tuned table
PICK_METRICS = (("forget_quality", "FQ"), ("model_utility", "MU"), ("retain_prob", "retain prob"))


def compare_notes(tuned: dict[str, Any]) -> list[str]:
    """Markdown lines: per method, the trial the tuning objective selected next to the one the
    ``compare`` objective selects among the same trials, with their metrics."""
    main, other = tuned["objective"], tuned["compare"]
    labels = [label for _, label in PICK_METRICS]
    head = ["method", f"{main}: trial", *labels, f"{other}: trial", *labels]
    rows = []
    for method, pick in tuned["methods"].items():
        cells = [method]
        for p in (pick, pick.get("compare")):
            if p is None:
                cells += ["-"] * (1 + len(PICK_METRICS))
                continue
            cells.append(f"{p['trial']}{'' if p['feasible'] else ' !'}")
            cells += [fmt_number((p.get("metrics") or {}).get(k)) for k, _ in PICK_METRICS]
        rows.append(cells)
    return [
        f"Selected by {main} and by {other} among the same trials of each method "
        "(`!` = misses that objective's constraints):",
        "",
        *markdown_table(head, rows),
    ]


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def unavailable_notes(rows: Sequence[dict[str, Any]], labels: dict[str, str]) -> list[str]:
    """One Markdown bullet per metric a run could not compute, with the reason recorded in its
    row's ``unavailable`` (docs/run-format.md); runs sharing a reason are listed together."""
    by_reason: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        for key, reason in (r.get("unavailable") or {}).items():
            by_reason.setdefault((labels.get(key, key), reason), []).append(r["name"])
    return [
        f"- {label} ({', '.join(names)}): {reason}" for (label, reason), names in by_reason.items()
    ]


# ----------------------------------------------------------------------------- MUSE

MAIN_COLUMNS = [
    ("forget_verbmem", "C1 VerbMem(f) ↓"),
    ("forget_knowmem", "C2 KnowMem(f) ↓"),
    ("privleak", "C3 PrivLeak →0"),
    ("retain_knowmem", "C4 KnowMem(r) ↑"),
]
EXTRA_COLUMNS = [
    ("wmdp_forget_accuracy", "MCQ acc(f) →0.25"),
    ("wmdp_retain_accuracy", "MCQ acc(r) ↑"),
]


def _fmt_muse(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def muse_markdown(doc: dict[str, Any]) -> str:
    """The six-way table (C1-C4 per model; C5/C6 per fold) as Markdown."""
    cols = [
        c for c in MAIN_COLUMNS + EXTRA_COLUMNS if any(r.get(c[0]) is not None for r in doc["rows"])
    ]
    labels = [label for _, label in cols]
    rows = [[r["name"]] + [_fmt_muse(r.get(k)) for k, _ in cols] for r in doc["rows"]]
    lines = [f"benchmark: {doc['benchmark']}", "", *markdown_table(["model", *labels], rows)]
    for key, title in (
        ("scalability", "C5 scalability: each fold unlearned from the target"),
        ("sustainability", "C6 sustainability: folds unlearned one after another"),
    ):
        runs = doc.get(key) or {}
        if not runs:
            continue
        fold_rows = [
            [method, str(f["fold"]), str(f["n_docs"])]
            + [_fmt_muse(f["metrics"].get(k)) for k, _ in cols]
            for method, folds in runs.items()
            for f in folds
        ]
        lines += [
            "",
            f"{title}",
            "",
            *markdown_table(["method", "fold", "docs", *labels], fold_rows),
        ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- diffusion

DIFFUSION_SHORT = {
    "unlearning_accuracy": "UA",
    "in_domain_retain_accuracy": "IRA",
    "cross_domain_retain_accuracy": "CRA",
    "fid": "FID",
    "kid": "KID",
}


def diffusion_markdown(doc: dict[str, Any]) -> str:
    """The erasure comparison (UA/IRA/CRA higher is better, FID/KID lower)."""
    head = ["model"] + [DIFFUSION_SHORT.get(c, c) for c in doc["columns"]] + ["erase s"]
    rows = []
    for row in doc["rows"]:
        cells = [row["name"]]
        for c in doc["columns"]:
            v = row.get(c)
            cells.append("-" if v is None else (f"{v:.2f}" if c not in ("kid",) else f"{v:.3f}"))
        cells.append("-" if row.get("train_s") is None else f"{row['train_s']:.0f}")
        rows.append(cells)
    return "\n".join(markdown_table(head, rows)) + "\n"
