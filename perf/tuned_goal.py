"""How many methods of a tuned leaderboard reach the forgetting goal, at their preset, at the
setting the oracle selects and at the one selected without the retain model?

Reads the folder of ``obliviate benchmark --tuned N`` (docs/sweep.md, "The tuned leaderboard":
``comparison.json`` and each method's study in ``tuned/<method>/summary.json``), or several such
folders of the same target, retain model and trial budget (methods split over processes), and
prints

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
    .venv/bin/python perf/tuned_goal.py runs/tuned-a runs/tuned-b    # methods split in two
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
    ap.add_argument("out", type=Path, nargs="+", help="folder(s) of obliviate benchmark --tuned N")
    ap.add_argument("--fq", type=float, default=0.5, help="forget quality to reach")
    ap.add_argument("--utility", type=float, default=0.95, help="MU floor, x the reference's")
    ap.add_argument("--retain-prob", type=float, default=0.9, help="floor, x the target's")
    args = ap.parse_args()
    tuned, rows, folder = load(args.out)
    target, retain = rows["target"], rows["retain"]
    other = tuned.get("compare") or "-"
    names = " ".join(map(str, args.out))
    print(f"{names}: {tuned['trials']} trials per method, objective {tuned['objective']}")
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
        m: read_json(folder[m] / "tuned" / m / "summary.json")["trials"] for m in tuned["methods"]
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


def load(outs: list[Path]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Path]]:
    """The tuned section and the rows of one or more leaderboards, merged; the folder of each
    method. Refused when they differ in target, retain model or trials per method."""
    tuned: dict[str, Any] = {}
    rows: dict[str, Any] = {}
    folder: dict[str, Path] = {}
    for out in outs:
        if not (out / "comparison.json").is_file():
            raise SystemExit(f"{out}: no comparison.json; give the --out folder of a finished run")
        doc = read_json(out / "comparison.json")
        part = doc.get("tuned")
        if not part:
            raise SystemExit(f"{out}: not a tuned leaderboard (run obliviate benchmark --tuned N)")
        mine = {r["name"]: r for r in doc["rows"]}
        if rows:
            moved = [r for r in ("target", "retain") for k in KEYS if mine[r][k] != rows[r][k]]
            if moved or part["trials"] != tuned["trials"]:
                raise SystemExit(
                    f"{out}: another target, retain model or trial budget than {outs[0]}"
                )
        else:
            tuned = {**part, "methods": {}}
        tuned["methods"].update(part["methods"])
        folder.update(dict.fromkeys(part["methods"], out))
        rows.update(mine)
    return tuned, rows, folder


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
