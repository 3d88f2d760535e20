"""Reading and writing run folders (docs/run-format.md). Writes are atomic."""

from __future__ import annotations

import datetime as _dt
import platform
from pathlib import Path
from typing import Any

from obliviate.io import atomic_write_text, read_json, read_jsonl, write_json, write_jsonl

SCHEMA = 1


def library_versions() -> dict[str, str]:
    """Versions of the libraries every result depends on (docs/metrics.md)."""
    from importlib import metadata

    from obliviate import __version__

    out = {"obliviate": __version__, "python": platform.python_version()}
    for name in ("torch", "transformers", "accelerate", "peft", "datasets", "rouge-score", "scipy",
                 "numpy", "diffusers"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_config(run_dir: str | Path, config: dict[str, Any]) -> Path:
    import yaml

    return atomic_write_text(Path(run_dir) / "config.yaml", yaml.safe_dump(config, sort_keys=False))


def write_eval(run_dir: str | Path, result: Any, meta: dict[str, Any]) -> Path:
    """Write ``samples.jsonl`` then ``metrics.json`` (the latter last: its presence marks a
    finished evaluation)."""
    run_dir = Path(run_dir)
    write_jsonl(run_dir / "samples.jsonl", result.samples)
    doc = {
        "schema": SCHEMA,
        **meta,
        "metrics": result.metrics,
        "timing": {**meta.get("timing", {}), **result.timing},
        "eval_key": result.key,
        "versions": library_versions(),
        "created": now(),
    }
    return write_json(run_dir / "metrics.json", doc)


def load_eval(run_dir: str | Path) -> Any:
    """An :class:`~obliviate.evaluation.EvalResult` from a run folder, or None if unfinished."""
    from obliviate.evaluation import EvalResult

    run_dir = Path(run_dir)
    mpath = run_dir / "metrics.json"
    if not mpath.exists() or not (run_dir / "samples.jsonl").exists():
        return None
    doc = read_json(mpath)
    if "eval_key" not in doc:
        raise ValueError(f"{mpath} has no eval_key: not written by this version of obliviate")
    return EvalResult(doc["metrics"], read_jsonl(run_dir / "samples.jsonl"), doc["eval_key"],
                      doc.get("timing", {}))


def resolve_model_dir(path: str | Path) -> str:
    """Accept a run folder (with ``model/``) or a model folder or a hub name."""
    p = Path(path)
    if (p / "model").is_dir() and not (p / "config.json").exists():
        return str(p / "model")
    return str(path)
