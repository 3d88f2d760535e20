"""Run folders (docs/run-format.md): the one module that writes and reads them.

Writing (:func:`write_config`, :func:`write_eval`) is atomic; :func:`load_eval` gives back an
:class:`~obliviate.evaluation.EvalResult` for resuming. Reading for reports
(:func:`load_run`, :func:`load_group`, :func:`load_runs`) gives plain Python objects
(:class:`Run`, :class:`Metric`) and never loads a model: this module imports nothing heavy.
Every problem with a file raises :class:`~obliviate.data.types.DataError` naming the file (and
the line, for JSON Lines) and what to fix.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obliviate.data.types import DataError
from obliviate.io import atomic_write_text, read_json, read_jsonl, write_json, write_jsonl
from obliviate.version import __version__

SCHEMA = 1


def library_versions() -> dict[str, str]:
    """Versions of the libraries every result depends on (docs/metrics.md)."""
    from importlib import metadata

    out = {"obliviate": __version__, "python": platform.python_version()}
    for name in (
        "torch",
        "transformers",
        "accelerate",
        "peft",
        "datasets",
        "rouge-score",
        "scipy",
        "numpy",
        "diffusers",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
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
        "unavailable": dict(getattr(result, "unavailable", {})),
        "notes": list(getattr(result, "notes", [])),
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
    return EvalResult(
        doc["metrics"],
        read_jsonl(run_dir / "samples.jsonl"),
        doc["eval_key"],
        doc.get("timing", {}),
        dict(doc.get("unavailable") or {}),
        list(doc.get("notes") or []),
    )


def data_names(data: Any, forget: Any = None, retain: Any = None, holdout: Any = None) -> dict:
    """How a run names its data: the benchmark source (``data``) or, for the user's own
    files, their file names (``data``) and paths (``forget``/``retain``/``holdout``); items
    given in memory are named by their count."""

    def name(x: Any) -> str:
        if isinstance(x, (str, os.PathLike)):
            return Path(x).name or str(x)
        return f"{len(x)} items in memory" if hasattr(x, "__len__") else type(x).__name__

    if forget is None:
        return {"data": data}
    files = {k: v for k, v in (("forget", forget), ("retain", retain), ("holdout", holdout))}
    given = {k: v for k, v in files.items() if v is not None}
    out: dict[str, Any] = {"data": ", ".join(f"{k}: {name(v)}" for k, v in given.items())}
    out.update({k: str(v) for k, v in given.items() if isinstance(v, (str, os.PathLike))})
    return out


def resolve_model_dir(path: str | Path) -> str:
    """Accept a run folder (with ``model/``) or a model folder or a hub name; anything else
    fails at once with a did-you-mean (:func:`obliviate.models.locate.check_model_path`)."""
    from obliviate.models.locate import check_model_path

    p = Path(path)
    if (p / "model").is_dir() and not (p / "config.json").exists():
        return str(p / "model")
    check_model_path(str(path))
    return str(path)


# ----------------------------------------------------------------------------- reading

ROLES = ("target", "retain", "unlearned")
DIRECTIONS = ("higher", "lower", "zero")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Metric:
    """One aggregate metric of ``metrics.json``: its value (``None`` when not computed)."""

    value: float | None
    direction: str  # "higher" | "lower" | "zero" (closest to 0 is best)
    version: Any = None
    ideal: float | None = None  # optional best value (e.g. 0.5 for an MIA AUC)


@dataclass
class Run:
    """One evaluated model: the contents of a run folder."""

    path: Path
    name: str
    role: str
    method: str | None
    benchmark: str | None
    split: str | None
    metrics: dict[str, Metric]
    timing: dict[str, float]
    info: dict[str, Any]  # the whole metrics.json, for metadata (model, seed, versions...)
    samples: list[dict[str, Any]] = field(default_factory=list)
    train_log: list[dict[str, Any]] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    group: str | None = None  # name of the group folder the run was loaded from, if any

    def value(self, metric: str) -> float | None:
        """The metric's value, or ``None`` when absent, null or NaN."""
        m = self.metrics.get(metric)
        if m is None or m.value is None or math.isnan(m.value):
            return None
        return m.value

    def samples_of(self, split: str) -> list[dict[str, Any]]:
        return [s for s in self.samples if s["split"] == split]


def _read_json_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None


def _read_jsonl_file(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; every line must be a JSON object."""
    rows = []
    try:
        fh = open(path, encoding="utf-8")  # noqa: SIM115 (closed by the with below)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    with fh:
        try:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(
                        f"{path}, line {lineno}: invalid JSON at column {exc.colno}: {exc.msg}"
                    ) from None
                if not isinstance(obj, dict):
                    raise DataError(
                        f"{path}, line {lineno}: expected a JSON object, got {type(obj).__name__}"
                    )
                rows.append((lineno, obj))
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return rows


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _parse_metrics(path: Path, raw: Any) -> dict[str, Metric]:
    if not isinstance(raw, dict):
        raise DataError(f"{path}: 'metrics' must be an object of name -> {{value, direction}}")
    out = {}
    for name, m in raw.items():
        where = f"{path}: metrics.{name}"
        if not isinstance(m, dict):
            raise DataError(
                f'{where} must be an object like {{"value": 0.5, "direction": '
                f'"higher"}}, got {json.dumps(m)}'
            )
        value = m.get("value")
        if value is not None and not _is_number(value):
            raise DataError(f"{where}.value must be a number or null, got {json.dumps(value)}")
        direction = m.get("direction")
        if direction not in DIRECTIONS:
            raise DataError(
                f"{where}.direction is {json.dumps(direction)}; expected one of "
                + ", ".join(repr(d) for d in DIRECTIONS)
            )
        ideal = m.get("ideal")
        if ideal is not None and not _is_number(ideal):
            raise DataError(f"{where}.ideal must be a number or absent, got {json.dumps(ideal)}")
        out[name] = Metric(
            None if value is None else float(value),
            direction,
            m.get("version"),
            None if ideal is None else float(ideal),
        )
    return out


def _parse_images(run_dir: Path, path: Path, raw: Any) -> list[Path]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise DataError(f"{path}: 'images' must be a list of PNG file names in the run folder")
    images = []
    root = run_dir.resolve()
    for name in raw:
        img = (run_dir / name).resolve()
        if Path(name).is_absolute() or root not in img.parents:
            raise DataError(
                f"{path}: image {name!r} is outside the run folder; "
                "list files of the run folder by relative name"
            )
        if not img.is_file():
            raise DataError(f"{path}: lists image {name!r}, but {run_dir / name} does not exist")
        with open(img, "rb") as fh:
            if fh.read(8) != PNG_MAGIC:
                raise DataError(f"{run_dir / name}: not a PNG file (listed in {path})")
        images.append(img)
    return images


def _parse_samples(path: Path) -> list[dict[str, Any]]:
    samples = []
    seen: dict[tuple[str, int], int] = {}
    for lineno, s in _read_jsonl_file(path):
        split, index = s.get("split"), s.get("index")
        if not isinstance(split, str) or not split:
            raise DataError(
                f"{path}, line {lineno}: 'split' must be a non-empty string "
                f"(forget, retain, holdout...), got {json.dumps(split)}"
            )
        if not isinstance(index, int) or isinstance(index, bool):
            raise DataError(
                f"{path}, line {lineno}: 'index' must be an integer, got {json.dumps(index)}"
            )
        key = (split, index)
        if key in seen:
            raise DataError(
                f"{path}, line {lineno}: duplicate sample split={split!r} "
                f"index={index} (first on line {seen[key]})"
            )
        seen[key] = lineno
        for k in ("question", "answer", "generation"):
            if k in s and s[k] is not None and not isinstance(s[k], str):
                raise DataError(f"{path}, line {lineno}: {k!r} must be a string")
        samples.append(s)
    return samples


def _parse_train_log(path: Path) -> list[dict[str, Any]]:
    rows = []
    for lineno, r in _read_jsonl_file(path):
        if not _is_number(r.get("step")):
            raise DataError(
                f"{path}, line {lineno}: 'step' must be a number, got {json.dumps(r.get('step'))}"
            )
        rows.append(r)
    return rows


def is_run_dir(path: Path) -> bool:
    return (path / "metrics.json").is_file()


def load_run(path: str | os.PathLike[str], group: str | None = None) -> Run:
    """Read one run folder: ``metrics.json`` (required), ``samples.jsonl`` and
    ``train_log.jsonl`` (optional) and the PNG grids listed under ``images``."""
    run_dir = Path(path)
    mpath = run_dir / "metrics.json"
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: no such run folder")
    if not mpath.is_file():
        raise DataError(
            f"{mpath}: file not found; a run folder holds metrics.json (see docs/run-format.md)"
        )
    info = _read_json_file(mpath)
    if not isinstance(info, dict):
        raise DataError(f"{mpath}: expected a JSON object, got {type(info).__name__}")
    if info.get("schema", 1) != 1:
        raise DataError(
            f"{mpath}: schema {info.get('schema')!r} is not supported (this version reads schema 1)"
        )
    for key in ("name", "role", "metrics"):
        if key not in info:
            raise DataError(f"{mpath}: missing required key {key!r}")
    if not isinstance(info["name"], str) or not info["name"]:
        raise DataError(f"{mpath}: 'name' must be a non-empty string")
    if info["role"] not in ROLES:
        raise DataError(
            f"{mpath}: 'role' is {json.dumps(info['role'])}; expected one of "
            + ", ".join(repr(r) for r in ROLES)
        )
    for key in ("method", "benchmark", "split"):
        if info.get(key) is not None and not isinstance(info[key], str):
            raise DataError(f"{mpath}: {key!r} must be a string or null")
    timing = info.get("timing") or {}
    if not isinstance(timing, dict) or not all(v is None or _is_number(v) for v in timing.values()):
        raise DataError(f"{mpath}: 'timing' must be an object of name -> seconds")
    spath, lpath = run_dir / "samples.jsonl", run_dir / "train_log.jsonl"
    return Run(
        path=run_dir,
        name=info["name"],
        role=info["role"],
        method=info.get("method"),
        benchmark=info.get("benchmark"),
        split=info.get("split"),
        metrics=_parse_metrics(mpath, info["metrics"]),
        timing={k: float(v) for k, v in timing.items() if v is not None},
        info=info,
        samples=_parse_samples(spath) if spath.is_file() else [],
        train_log=_parse_train_log(lpath) if lpath.is_file() else [],
        images=_parse_images(run_dir, mpath, info.get("images")),
        group=group,
    )


_ROLE_ORDER = {"target": 0, "retain": 1, "unlearned": 2}


def load_group(path: str | os.PathLike[str]) -> list[Run]:
    """Read a group folder: its sub-folders that hold ``metrics.json``.

    The order is that of ``comparison.json``'s ``runs`` when the file exists, otherwise
    target, retain, then the other runs by folder name.
    """
    group = Path(path)
    cpath = group / "comparison.json"
    if cpath.is_file():
        comp = _read_json_file(cpath)
        names = comp.get("runs") if isinstance(comp, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError(f"{cpath}: expected an object with 'runs': a list of run folder names")
        for n in names:
            if not is_run_dir(group / n):
                raise DataError(
                    f"{cpath}: lists run {n!r}, but {group / n / 'metrics.json'} does not exist"
                )
        runs = [load_run(group / n, group=group.name) for n in names]
    else:
        subdirs = sorted(p for p in group.iterdir() if p.is_dir() and is_run_dir(p))
        runs = [load_run(p, group=group.name) for p in subdirs]
        runs.sort(key=lambda r: _ROLE_ORDER[r.role])  # stable: by name within a role
    if not runs:
        raise DataError(
            f"{group}: neither a run folder (no metrics.json) nor a group folder "
            "(no sub-folder with metrics.json)"
        )
    return runs


def group_images(path: str | os.PathLike[str]) -> list[Path]:
    """PNG files a group folder's ``comparison.json`` lists under ``images`` (e.g. the
    diffusion demo's side-by-side grid); empty without the file or the key."""
    group = Path(path)
    cpath = group / "comparison.json"
    if not cpath.is_file():
        return []
    comp = _read_json_file(cpath)
    return _parse_images(group, cpath, comp.get("images") if isinstance(comp, dict) else None)


def load_runs(paths: Iterable[str | os.PathLike[str]]) -> list[Run]:
    """Load run folders and group folders (expanded to their runs), in the order given.

    A run reached twice (e.g. as a folder and through its group) is loaded once.
    """
    runs: list[Run] = []
    seen: set[Path] = set()
    paths = list(paths)
    if not paths:
        raise ValueError("no run folder given: pass run folders or a group folder")
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise DataError(f"{p}: no such file or folder")
        if not p.is_dir():
            raise DataError(f"{p}: not a folder; pass a run folder or a group folder")
        loaded = [load_run(p)] if is_run_dir(p) else load_group(p)
        for r in loaded:
            key = r.path.resolve()
            if key not in seen:
                seen.add(key)
                runs.append(r)
    return runs


def find_references(runs: list[Run]) -> dict[str, Run]:
    """The target and retain runs for ``runs``, by role.

    Taken from ``runs`` first; a role still missing is looked up among the sibling folders of
    the given runs (the group folder they belong to) with the same benchmark and split, so
    that the report of a single unlearned run still shows the target's generations and the
    retain model's distributions.
    """
    refs: dict[str, Run] = {}
    for r in runs:
        if r.role in ("target", "retain"):
            refs.setdefault(r.role, r)
    parents = []
    for r in runs:
        parent = r.path.resolve().parent
        if parent not in parents:
            parents.append(parent)
    for parent in parents:
        if len(refs) == 2:
            break
        for sib in sorted(p for p in parent.iterdir() if p.is_dir() and is_run_dir(p)):
            if any(sib.resolve() == r.path.resolve() for r in runs):
                continue
            try:
                info = _read_json_file(sib / "metrics.json")
            except DataError:
                continue  # not a run we were asked about; its own report will say what is wrong
            if not isinstance(info, dict):
                continue
            role = info.get("role")
            same_task = all(
                info.get(k) == getattr(r, k) for r in runs for k in ("benchmark", "split")
            )
            if role in ("target", "retain") and role not in refs and same_task:
                refs[role] = load_run(sib, group=parent.name)
    return refs
