"""Silence the progress bars and info logs of diffusers/transformers while loading."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    d_level, t_level = dlog.get_verbosity(), tlog.get_verbosity()
    d_bar = dlog.is_progress_bar_enabled()
    t_bar = tlog.is_progress_bar_enabled()
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        dlog.set_verbosity(d_level)
        tlog.set_verbosity(t_level)
        if d_bar:
            dlog.enable_progress_bar()
        if t_bar:
            tlog.enable_progress_bar()
