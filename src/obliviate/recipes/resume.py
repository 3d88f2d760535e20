"""One resume logic for every recipe (docs/run-format.md, "Resuming").

A stage's run folder holds ``stage.json`` once the stage has finished: the stage's
configuration, its fingerprint (sha256 of the canonical JSON) and what the recipe needs to skip
it (training time...). On a re-run :func:`stage` answers:

- the stage is finished with the same fingerprint: reuse it (returns the stored record);
- it is finished with another configuration: an error naming the differing keys, unless
  ``overwrite`` is set (then it is run again);
- it is not finished (no ``stage.json``, or the files it marks as done are missing): run it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from obliviate.io import read_json, write_json

STAGE_FILE = "stage.json"


class ConfigMismatchError(ValueError):
    """A finished stage was run with another configuration."""


def fingerprint(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``config`` (key order does not matter)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _canonical(config: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def stage(
    run_dir: str | Path, config: dict[str, Any], done: Sequence[str] = (), overwrite: bool = False
) -> dict[str, Any] | None:
    """The stored record of a finished stage with this ``config`` (reuse it), or None (run it).

    ``done``: files or folders under ``run_dir`` that must exist for the stage to count as
    finished (e.g. ``model/config.json``, ``metrics.json``). A finished stage with another
    configuration raises :class:`ConfigMismatchError` unless ``overwrite``.
    """
    run_dir = Path(run_dir)
    path = run_dir / STAGE_FILE
    if not path.exists() or not all((run_dir / d).exists() for d in done):
        return None
    record = read_json(path)
    if record.get("fingerprint") == fingerprint(config):
        return record
    if overwrite:
        return None
    old = record.get("config", {})
    new = _canonical(config)
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    raise ConfigMismatchError(
        f"{run_dir} holds a finished run with another configuration (differs in "
        f"{', '.join(keys) or 'its fingerprint'}); choose a new output folder or ask to "
        "overwrite it (--overwrite)"
    )


def finish(run_dir: str | Path, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Mark a stage finished: write ``stage.json`` (last, after the stage's own files)."""
    record = {"config": _canonical(config), "fingerprint": fingerprint(config), **extra}
    write_json(Path(run_dir) / STAGE_FILE, record)
    return record


def claim_comparison(out: str | Path, benchmark: str, overwrite: bool = False) -> None:
    """Refuse to write a comparison into ``out`` when its ``comparison.json`` belongs to another
    benchmark (e.g. the diffusion demo into the TOFU demo's folder): the two would mix and one
    would overwrite the other. ``overwrite`` allows it."""
    path = Path(out) / "comparison.json"
    if overwrite or not path.is_file():
        return
    held = read_json(path).get("benchmark")
    if held is not None and held != benchmark:
        raise ValueError(
            f"{out} holds the comparison of another benchmark ({held}, not {benchmark}); "
            "choose another output folder (--out)"
        )
