"""`obliviate ls`: what is registered (methods, metrics, benchmarks, diffusion erasers, sweep
objectives)."""

from __future__ import annotations

import argparse

KINDS = ("methods", "metrics", "benchmarks", "erasers", "objectives")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ls",
        help="list methods, metrics, benchmarks, erasers and sweep objectives (with their papers)",
    )
    p.add_argument("kind", nargs="?", choices=KINDS, help="what to list (default: all)")
    p.add_argument("name", nargs="?", help="show one entry's defaults")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from obliviate import registry

    regs = {
        "methods": registry.METHODS,
        "metrics": registry.METRICS,
        "benchmarks": registry.BENCHMARKS,
        "erasers": registry.ERASERS,
        "objectives": registry.OBJECTIVES,
    }
    if args.name:
        import yaml

        entry = regs[args.kind or "methods"].entry(args.name)
        print(f"{entry.name}: {entry.description}\npaper: {entry.paper}")
        obj = entry.load()
        if args.kind == "metrics":
            print(_metric_details(obj))
        if hasattr(obj, "defaults"):
            print(yaml.safe_dump(obj.defaults(), sort_keys=False).rstrip())
        if args.kind == "benchmarks":
            _show_benchmark(obj)
        return 0
    for kind in [args.kind] if args.kind else KINDS:
        try:
            entries = regs[kind].entries()
        except ImportError as exc:  # an optional extra is not installed
            print(f"{kind}: unavailable ({exc})\n")
            continue
        print(f"{kind} ({len(entries)}):")
        width = max((len(e.name) for e in entries), default=0)
        for e in entries:
            paper = f"  [{e.paper}]" if e.paper else ""
            goal = f"({_goal(e.meta)}) " if kind == "metrics" else ""
            print(f"  {e.name:<{width}}  {goal}{e.description}{paper}")
        print()
    return 0


def _goal(meta: dict) -> str:
    """A metric's goal as the catalogue registers it: its direction, or its ideal value."""
    if meta.get("ideal") is not None:
        return f"{meta['direction']}, ideal {meta['ideal']:g}"
    return str(meta.get("direction"))


def _metric_details(d: object) -> str:
    """Direction, ideal, version, inputs and functions of one metric definition."""
    ideal = getattr(d, "ideal", None)
    lines = [
        f"direction: {getattr(d, 'direction', None)}"
        + ("" if ideal is None else f" (ideal {ideal:g})"),
        f"version: {getattr(d, 'version', None)}",
        f"inputs: {', '.join(getattr(d, 'inputs', ()) or ()) or '-'}",
        f"function: {getattr(d, 'function', None)}",
    ]
    if getattr(d, "per_item", None):
        lines.append(f"per item: {d.per_item}")  # type: ignore[attr-defined]
    return "\n".join(lines)


def _show_benchmark(spec) -> None:
    print(
        f"data: {spec.data or 'your files (--forget, --retain, --holdout)'}"
        f"{' (fixed)' if spec.fixed_data else ''}\nsplit: {spec.split}"
    )
    from obliviate.metrics.catalogue import direction_of

    print("metrics: " + ", ".join(f"{k} ({direction_of(k)})" for k in spec.metrics))
    print(f"example: {spec.command}")
