"""The optional data settings shared by :mod:`obliviate.api` and the CLI: the chat template's
system prompt, the field map of the user's files (:mod:`obliviate.data.fields`) and the window
stride of long documents (docs/muse-wmdp.md)."""

from __future__ import annotations

import dataclasses
from typing import Any

from obliviate.data.fields import parse_field_map


def suite_options(system_prompt: str | None, field_map: Any, **more: Any) -> dict[str, Any]:
    """Keyword arguments of a suite builder (``BenchmarkSpec.build``): ``more`` plus the
    system prompt and the parsed field map when given (a plugin's builder that takes neither
    keeps working when they are not)."""
    out = dict(more)
    if system_prompt is not None:
        out["system_prompt"] = system_prompt
    fmap = parse_field_map(field_map)
    if fmap:
        out["field_map"] = fmap
    return out


def config_entries(
    system_prompt: str | None = None, field_map: Any = None, stride: int | None = None
) -> dict[str, Any]:
    """The run-config (``config.yaml``) entries of the settings that were given."""
    out = suite_options(system_prompt, field_map)
    if stride is not None:
        out["stride"] = stride
    return out


def set_stride(suite: Any, stride: int | None) -> None:
    """Give a document suite's evaluation settings the window stride (part of its key)."""
    if stride is None:
        return
    settings = getattr(suite, "settings", None)
    if settings is None or not hasattr(settings, "stride"):
        raise ValueError(
            "--stride (stride=) applies to document benchmarks (documents, builtin-muse, "
            f"muse-news, muse-books), not to {suite.name!r}"
        )
    suite.settings = dataclasses.replace(settings, stride=stride)
