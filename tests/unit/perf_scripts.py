"""Import a script of the speed-script folder (``perf/``, not a package) as a module, so that
tests can call its functions."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

PERF = Path(__file__).parents[2] / "perf"


def load_perf_script(name: str) -> ModuleType:
    """``perf/<name>.py`` as a fresh module."""
    spec = importlib.util.spec_from_file_location(name, PERF / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
