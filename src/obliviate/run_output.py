"""Where a command may write its run folder (docs/run-format.md, "Protection of runs").

- :func:`prepare_run_dir` (``unlearn``, ``finetune``): never inside or around the input model's
  folder or its run folder (even with ``--overwrite``); a folder that already holds a finished
  run (a model, ``config.yaml``, ``metrics.json``...) is refused unless ``overwrite``, and then
  every derived file of the old run is removed first, so that nothing old stays beside the new
  model. A folder with only an unfinished run's checkpoint is left alone (resume).
- :func:`prepare_eval_dir` (``eval --out``): the evaluated model's own run folder, a fresh
  folder or a folder holding an evaluation of the same model; another model's evaluation is
  refused unless ``overwrite``.
- :func:`retain_cache_dir`: the retain model's cached evaluations live inside its run tree.
- :func:`run_labels`: the ``role`` of an evaluation when the caller gives none, read from the
  model's run configuration (``unlearn`` -> unlearned, ``finetune`` on ``retain*`` -> retain).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# files and folders whose presence marks a finished run
FINISHED = ("model", "config.yaml", "metrics.json", "stage.json", "comparison.json")
# everything a run writes or derives; removed before the folder is rewritten
DERIVED = (
    "model",
    "config.yaml",
    "method.json",
    "metrics.json",
    "samples.jsonl",
    "train_log.jsonl",
    "timing.json",
    "stage.json",
    "evals",
    "checkpoint",
    "comparison.json",
    "comparison.md",
    "report.html",
    "report.md",
    "leaderboard.html",
    "leaderboard.md",
    "leaderboard.csv",
)
DERIVED_GLOBS = ("grid_*.png", "*.png", "report*.html", "checkpoint*")
EVAL_FILES = ("metrics.json", "samples.jsonl", "report.html", "report.md")


def _inside(path: Path, folder: Path) -> bool:
    """``path`` is ``folder`` or lies under it (both resolved)."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def _lives_in(path: str | os.PathLike[str], folder: Path) -> bool:
    """``path`` lies in ``folder`` as written (``out/model`` may be a link) or once resolved."""
    written = Path(os.path.abspath(path))
    return written.is_relative_to(os.path.abspath(folder)) or _inside(Path(path), folder)


def input_roots(model: str | os.PathLike[str]) -> list[Path]:
    """The local folders a model comes from: its folder, its run folder (the parent of a
    ``model/`` folder) and, for a PEFT adapter, its base model's."""
    p = Path(model)
    if not p.is_dir():
        return []
    roots = [p]
    if p.name == "model":
        roots.append(p.parent)
    if (p / "adapter_config.json").is_file():
        from obliviate.models.adapters import adapter_base

        try:
            base = Path(adapter_base(p))
        except FileNotFoundError:
            base = None
        if base is not None and base.is_dir():
            roots += [r for r in input_roots(base) if r not in roots]
    return roots


def check_not_input(out: Path, inputs: Iterable[str | os.PathLike[str] | None]) -> None:
    """Refuse an output folder that equals, contains or lies in an input model's folder."""
    for model in inputs:
        if model is None:
            continue
        for root in input_roots(model):
            if _inside(out, root) or _inside(root, out):
                raise ValueError(
                    f"--out {out} overlaps {root}, the folder (or run folder) of the input "
                    f"model {model}: writing there would overwrite the input; choose an output "
                    "folder outside it"
                )


def finished_files(out: Path) -> list[str]:
    """The markers of a finished run that ``out`` holds."""
    return [name for name in FINISHED if (out / name).exists()] if out.is_dir() else []


def remove_derived(out: Path, names: Iterable[str] = DERIVED, globs: Iterable[str] = ()) -> int:
    """Delete the derived files and folders of a run folder; returns the bytes removed."""
    freed = 0
    targets = [out / n for n in names] + [p for g in globs for p in out.glob(g)]
    for target in targets:
        if target.is_dir() and not target.is_symlink():
            freed += folder_size(target)
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            freed += target.lstat().st_size
            target.unlink()
    return freed


def folder_size(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def prepare_run_dir(
    out: str | os.PathLike[str],
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    overwrite: bool = False,
) -> Path:
    """Check (and with ``overwrite`` clear) the run folder a command is about to write."""
    out = Path(out)
    check_not_input(out, inputs)
    found = finished_files(out)
    if found:
        if not overwrite:
            raise ValueError(
                f"{out} already holds a run ({', '.join(found)}); pass --overwrite "
                "(overwrite=True) to replace it, or choose another --out"
            )
        remove_derived(out, DERIVED, DERIVED_GLOBS)
    return out


def prepare_eval_dir(
    out: str | os.PathLike[str],
    model_path: str | None,
    fingerprint: str,
    overwrite: bool = False,
    recorded_path: str | None = None,
) -> Path:
    """Check the folder ``evaluate(out=...)`` writes ``metrics.json`` to (see the module
    docstring). ``model_path`` is the evaluated model's folder (None in memory, then
    ``recorded_path`` is the folder it was saved to, when known)."""
    from obliviate.io import read_json

    out = Path(out)
    evaluated = model_path or recorded_path
    if not out.is_dir() or (evaluated and Path(evaluated).is_dir() and _lives_in(evaluated, out)):
        return out
    if model_path is not None and (out / "model").is_dir():
        raise ValueError(
            f"{out} holds the model of another run ({out / 'model'}); evaluate that model, or "
            "write the evaluation to another --out"
        )
    if not (out / "metrics.json").is_file():
        return out
    try:
        info = read_json(out / "metrics.json")
    except (OSError, ValueError):
        info = {}
    rec: dict[str, Any] = info.get("model") or {} if isinstance(info, dict) else {}
    rec_path = rec.get("path")
    same_path = bool(
        evaluated and rec_path and Path(rec_path).resolve() == Path(evaluated).resolve()
    )
    if same_path or rec.get("fingerprint") == fingerprint:
        return out
    if not overwrite:
        raise ValueError(
            f"{out} already holds the evaluation of another model "
            f"({rec_path or rec.get('fingerprint') or 'unknown'}); pass --overwrite "
            "(overwrite=True) to replace it, or choose another --out"
        )
    remove_derived(out, EVAL_FILES)
    return out


def retain_cache_dir(model_path: str) -> Path:
    """Where a retain model's evaluations are cached: ``<run>/evals`` for a run's ``model/``
    folder, ``<model folder>/evals`` for a bare local model folder, and the obliviate cache
    folder for a hub model."""
    p = Path(model_path)
    if p.is_dir():
        return (p.parent if p.name == "model" else p) / "evals"
    from obliviate.cache import cache_root

    return cache_root() / "evals" / model_path.replace("/", "--")


def run_labels(model_path: str | None) -> dict[str, Any]:
    """The ``role`` (and ``method``) of an evaluation whose caller named none, from the run
    configuration next to the model: ``unlearn`` runs are ``unlearned`` (with their method),
    ``finetune`` on a ``retain*`` split is ``retain``, anything else ``target``; an in-memory
    model without a known folder is ``unlearned``."""
    if model_path is None:
        return {"role": "unlearned"}
    config = Path(model_path).parent / "config.yaml"
    if Path(model_path).name != "model" or not config.is_file():
        return {"role": "target"}
    import yaml

    try:
        cfg = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        cfg = None
    if not isinstance(cfg, dict):
        return {"role": "target"}
    if cfg.get("command") == "finetune":
        return {"role": "retain" if str(cfg.get("split", "")).startswith("retain") else "target"}
    if cfg.get("method"):
        return {"role": "unlearned", "method": str(cfg["method"])}
    return {"role": "target"}
