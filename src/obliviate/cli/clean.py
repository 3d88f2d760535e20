"""`obliviate clean`: remove the caches of run folders (docs/run-format.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

# what `clean` removes under a run folder (and under its model/ folder)
CACHE_DIRS = ("evals", "checkpoint")
CACHE_GLOBS = ("checkpoint-*", ".*.tmp")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "clean",
        help="remove caches: retain evaluations, checkpoints, fingerprints",
        description="Removes from each RUN folder (and the run folders below it) the cached "
        "retain-model evaluations (evals/), training checkpoints (checkpoint/) and "
        "temporary files, printing each with its size. Models, metrics.json, samples and "
        "reports stay.",
    )
    p.add_argument("runs", nargs="*", metavar="RUN", help="run or group folders")
    p.add_argument(
        "--fingerprints",
        action="store_true",
        help="also remove the per-file fingerprint cache ($OBLIVIATE_CACHE or "
        "~/.cache/obliviate/fingerprints.json)",
    )
    p.add_argument("--dry-run", action="store_true", help="list what would be removed")
    p.set_defaults(func=run)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def caches_of(run: Path) -> list[Path]:
    """The cache folders and files under a run or group folder."""
    found: list[Path] = []
    for folder in [run, *sorted(p for p in run.rglob("*") if p.is_dir())]:
        if any(part in CACHE_DIRS for part in folder.relative_to(run).parts):
            continue  # inside a cache already listed
        found += [folder / d for d in CACHE_DIRS if (folder / d).is_dir()]
        found += [p for g in CACHE_GLOBS for p in sorted(folder.glob(g))]
    return found


def run(args: argparse.Namespace) -> int:
    from obliviate.run_output import folder_size, remove_derived

    if not args.runs and not args.fingerprints:
        raise ValueError("nothing to clean: pass run folders and/or --fingerprints")
    targets: list[Path] = []
    for r in args.runs:
        run_dir = Path(r)
        if not run_dir.is_dir():
            raise FileNotFoundError(f"{run_dir}: no such run folder")
        targets += caches_of(run_dir)
    if args.fingerprints:
        from obliviate.models.fingerprint import cache_file

        if cache_file().exists():
            targets.append(cache_file())
    total = 0
    verb = "would remove" if args.dry_run else "removed"
    for t in targets:
        size = folder_size(t) if t.is_dir() else t.stat().st_size
        if not args.dry_run:
            remove_derived(t.parent, (t.name,))
        total += size
        print(f"{verb} {t} ({_human(size)})")
    print(f"{verb} {len(targets)} item(s), {_human(total)}")
    return 0
