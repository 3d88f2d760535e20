"""``--no-progress``: no progress bar and no library chatter on stderr, only obliviate's own
messages (results, a clear error). Progress bars of transformers, huggingface_hub, datasets,
diffusers and tqdm itself are disabled, their loggers set to errors only, and Python warnings
(deprecations and other notes addressed to library authors, not to the user) are ignored.
Everything is restored afterwards, so an in-process caller keeps its own settings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator

ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "DATASETS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "ACCELERATE_LOG_LEVEL": "error",
}
LOGGERS = (
    "transformers",
    "huggingface_hub",
    "datasets",
    "diffusers",
    "accelerate",
    "peft",
    "torch",
    "filelock",
    "urllib3",
)


def _library_switches() -> list[tuple[str, str, str]]:
    """(module, disable function, enable function) of the libraries that keep their own
    progress-bar switch once imported."""
    return [
        ("transformers.utils.logging", "disable_progress_bar", "enable_progress_bar"),
        ("huggingface_hub.utils", "disable_progress_bars", "enable_progress_bars"),
        ("datasets.utils.logging", "disable_progress_bar", "enable_progress_bar"),
        ("diffusers.utils.logging", "disable_progress_bar", "enable_progress_bar"),
    ]


def _bars_on(mod: object) -> bool:
    """Whether a library's progress bars are on now (so that they are switched back on)."""
    if hasattr(mod, "is_progress_bar_enabled"):
        return bool(mod.is_progress_bar_enabled())
    if hasattr(mod, "are_progress_bars_disabled"):
        return not mod.are_progress_bars_disabled()
    return False


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence progress bars and library warnings for the duration of one command."""
    saved_env = {k: os.environ.get(k) for k in ENV}
    saved_levels = {name: logging.getLogger(name).level for name in LOGGERS}
    os.environ.update(ENV)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    switched = []
    for module, off, on in _library_switches():
        mod = sys.modules.get(module)
        if mod is not None and hasattr(mod, off) and _bars_on(mod):
            getattr(mod, off)()
            switched.append((mod, on))
    tlog = sys.modules.get("transformers.utils.logging")
    t_level = tlog.get_verbosity() if tlog is not None else None
    if tlog is not None:
        tlog.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)
        for mod, on in switched:
            getattr(mod, on)()
        if tlog is not None and t_level is not None:
            tlog.set_verbosity(t_level)
