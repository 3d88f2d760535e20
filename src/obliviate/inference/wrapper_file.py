"""The file that marks a saved inference wrapper, and :func:`load_wrapper` that reads it.

A folder holding :data:`WRAPPER_FILE` is an obliviate inference wrapper (in-context unlearning,
guardrails, logit offsets, SISA ensembles...): its JSON names the wrapper kind (a key of
:data:`obliviate.registry.WRAPPERS`), the schema version and the base model(s).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from obliviate.registry import WRAPPERS

WRAPPER_FILE = "obliviate_wrapper.json"
WRAPPER_SCHEMA = 1


def load_wrapper(path: str | Path) -> Any:
    """Load a wrapper saved by ``save_pretrained`` (a folder holding ``obliviate_wrapper.json``).

    The base model(s) are loaded from the paths the file names (relative paths are relative to
    the folder), safetensors only, no remote code.
    """
    from obliviate.data.types import DataError
    from obliviate.io import read_json

    folder = Path(path)
    spec_path = folder / WRAPPER_FILE
    if not spec_path.exists():
        raise FileNotFoundError(f"{folder}: no {WRAPPER_FILE}; is it a saved obliviate wrapper?")
    spec = read_json(spec_path)
    if not isinstance(spec, dict) or "wrapper" not in spec:
        raise DataError(f"{spec_path}: expected a JSON object with a 'wrapper' key")
    if spec.get("schema") != WRAPPER_SCHEMA:
        raise DataError(
            f"{spec_path}: schema {spec.get('schema')!r} is not supported (expected "
            f"{WRAPPER_SCHEMA}); re-save the wrapper with this version of obliviate"
        )
    cls = WRAPPERS.get(spec["wrapper"])
    return cls.from_pretrained(folder, spec)
