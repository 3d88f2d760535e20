"""Display formatting of numbers in reports and tables: values, signed deltas, durations."""

from __future__ import annotations

import math
from typing import Any


def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or math.isnan(x):
        return None
    return float(x)


def format_value(v: Any) -> str:
    """Short display of a number: integers with separators, 4 significant digits, and
    scientific notation below 1e-3 (forget quality p-values reach 1e-20)."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        if v != 0 and abs(v) < 1e-3:
            return f"{v:.2e}"
        if abs(v) >= 1e5:
            return f"{v:,.0f}"
        return f"{v:.4g}"
    return str(v)


def format_delta(d: float | None) -> str:
    """A signed difference: ``+0.12``, ``−3.4e-05``, ``0``."""
    if d is None or math.isnan(d):
        return "—"
    if d == 0:
        return "0"
    return ("+" if d > 0 else "−") + format_value(abs(float(d)))


def format_seconds(s: float | None) -> str:
    """``21.5 s``, ``3 min 12 s``, ``1 h 05 min``."""
    if s is None or math.isnan(s):
        return "—"
    if s < 60:
        return f"{s:.3g} s"
    t = int(round(s))  # noqa: RUF046 (s may be a numpy scalar)
    if t < 3600:
        return f"{t // 60} min {t % 60:02d} s"
    m = int(round(s / 60))  # noqa: RUF046 (s may be a numpy scalar)
    return f"{m // 60} h {m % 60:02d} min"
