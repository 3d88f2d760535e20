"""How many methods of a tuned leaderboard reach the forgetting goal, at their preset, at the
setting the oracle selects and at the one selected without the retain model?

Reads the folder of ``obliviate benchmark --tuned N`` (docs/sweep.md, "The tuned leaderboard":
``comparison.json`` and each method's study in ``tuned/<method>/summary.json``) and prints

- per method: the preset's forget quality (FQ), model utility (MU) and retain probability, the
  same for the trial the tuning objective selected (with its setting) and for the trial the
  ``--tune-compare`` objective (default ``mia``) selected among the same trials;
- the goal: FQ >= ``--fq`` with MU >= ``--utility`` x the reference's MU and retain
  probability >= ``--retain-prob`` x the target's: the ``oracle`` objective's constraints
  (:mod:`obliviate.sweep.objectives`) and FQ above a level. It is counted twice: with the
  retain model as the utility reference (the documented ``oracle`` objective) and with the
  target as the reference, which stays reachable when the retain model's MU is above the
  target's; for each reference, also the trial ``oracle`` selects with that reference among
  each method's trials.

    .venv/bin/python perf/tuned_goal.py runs/bench-tuned
    .venv/bin/python perf/tuned_goal.py runs/bench-tuned --fq 0.05 --utility 0.9
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from obliviate.io import read_json
from obliviate.registry import OBJECTIVES
from obliviate.reporting.render import fmt_number, markdown_table
from obliviate.sweep.summary import select_by

KEYS = ("forget_quality", "model_utility", "retain_prob")


def meets(m: dict[str, Any] | None, refs: dict[str, Any], args: argparse.Namespace) -> bool:
    """FQ >= args.fq within the oracle objective's floors against ``refs``."""
    if not m or m.get("forget_quality") is None:
        return False
    params = {"utility": args.utility, "retain_prob": args.retain_prob}
    s = OBJECTIVES.get("oracle").score(m, refs, params)
    return s.feasible and s.value >= args.fq


def cells(m: dict[str, Any] | None) -> list[str]:
    return [fmt_number((m or {}).get(k)) for k in KEYS]


def setting(params: dict[str, Any]) -> str:
    if not params:
        return "the preset"
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="the folder of obliviate benchmark --tuned N")
    ap.add_argument("--fq", type=float, default=0.5, help="forget quality to reach")
    ap.add_argument("--utility", type=float, default=0.95, help="MU floor, x the reference's")
    ap.add_argument("--retain-prob", type=float, default=0.9, help="floor, x the target's")
    args = ap.parse_args()
    doc = read_json(args.out / "comparison.json")
    tuned = doc.get("tuned")
    if not tuned:
        raise SystemExit(f"{args.out}: not a tuned leaderboard (run obliviate benchmark --tuned N)")
    rows = {r["name"]: r for r in doc["rows"]}
    target, retain = rows["target"], rows["retain"]
    other = tuned.get("compare") or "-"
    print(f"{args.out}: {tuned['trials']} trials per method, objective {tuned['objective']}")
    print(
        f"retain model MU {fmt_number(retain['model_utility'])}, target MU "
        f"{fmt_number(target['model_utility'])}: the floor {args.utility:g} x the retain "
        f"model's MU is {fmt_number(args.utility * retain['model_utility'])}\n"
    )
    spec = f"oracle:utility={args.utility},retain_prob={args.retain_prob}"
    references = {
        "retain model": {"target": target, "retain": retain},
        "target": {"target": target, "retain": target},  # the utility floor x the target's
    }
    trials = {
        m: read_json(args.out / "tuned" / m / "summary.json")["trials"] for m in tuned["methods"]
    }
    # per method and MU reference: the trial the oracle objective selects with that reference
    chosen = {
        (m, name): picked(trials[m], spec, refs)
        for m in tuned["methods"]
        for name, refs in references.items()
    }
    head = ["method", "preset FQ", "MU", "retain prob"]
    head += [f"{tuned['objective']} pick", "FQ", "MU", "retain prob", "setting"]
    head += [f"{other} pick", "FQ", "MU", "retain prob"]
    head += ["pick, MU floor x target's", "FQ", "MU", "retain prob", "setting"]
    table = []
    for method, pick in tuned["methods"].items():
        cmp = pick.get("compare") or {}
        mine = chosen[(method, "target")] or {}
        line = [method, *cells(rows[method]), mark(pick), *cells(pick.get("metrics"))]
        line += [setting(pick["params"]), mark(cmp), *cells(cmp.get("metrics"))]
        line += [mark(mine), *cells(mine.get("metrics")), setting(mine.get("params", {}))]
        table.append(line)
    print("\n".join(markdown_table(head, table)))
    print(
        f"\n`!`: misses that selection's constraints. Goal: FQ >= {args.fq:g}, MU >= "
        f"{args.utility:g} x the reference's, retain prob >= {args.retain_prob:g} x the target's."
    )
    head = ["MU reference", "preset", f"{tuned['objective']} pick", f"{other} pick"]
    head.append("oracle pick with this reference")
    counts = []
    for name, refs in references.items():
        hits = [0, 0, 0, 0]
        for method, pick in tuned["methods"].items():
            found = [rows[method], pick.get("metrics"), (pick.get("compare") or {}).get("metrics")]
            for i, m in enumerate([*found, (chosen[(method, name)] or {}).get("metrics")]):
                hits[i] += meets(m, refs, args)
        counts.append([name, *[f"{h} of {len(tuned['methods'])}" for h in hits]])
    print("\n" + "\n".join(markdown_table(head, counts)))


def picked(trials: list[dict[str, Any]], spec: str, refs: dict[str, Any]) -> dict[str, Any] | None:
    """The trial ``spec`` selects among ``trials``, its ``feasible`` flag from that selection."""
    best = select_by(trials, spec, refs)
    if best is None:
        return None
    trial = next(t for t in trials if t["number"] == best["number"])
    return {**trial, "feasible": best["feasible"]}


def mark(pick: dict[str, Any]) -> str:
    if not pick:
        return "-"
    return (
        f"{pick['trial'] if 'trial' in pick else pick['number']}{'' if pick['feasible'] else ' !'}"
    )


if __name__ == "__main__":
    main()
