"""Search spaces of `obliviate sweep` (docs/sweep.md, "Search spaces").

A dimension is one override key of a method (``train.lr``, ``alpha``, ``forget_params.beta``;
the keys of ``obliviate ls methods NAME``) and a spec string, the syntax of ``--space`` and of
:attr:`obliviate.methods.base.MethodPreset.space`:

- ``LOW:HIGH`` a float range, ``LOW:HIGH:log`` a log-uniform one (LOW > 0);
- ``LOW:HIGH:int`` an integer range (``LOW:HIGH:int-log`` log-uniform);
- ``A,B,C`` a choice among values (YAML-parsed: numbers, booleans, null, words).

Pure parsing and sampling: Optuna is only touched through the ``trial`` passed to
:func:`suggest`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("float", "int", "choice")


@dataclass(frozen=True)
class Dimension:
    key: str
    kind: str  # float | int | choice
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()

    def spec(self) -> str:
        """The dimension back in ``--space`` syntax."""
        if self.kind == "choice":
            return ",".join(_fmt(c) for c in self.choices)
        tail = {"float": ":log" if self.log else "", "int": ":int-log" if self.log else ":int"}
        return f"{_fmt(self.low)}:{_fmt(self.high)}{tail[self.kind]}"

    def grid(self, points: int = 3) -> list[Any]:
        """Values for the grid sampler: the choices, or ``points`` values from LOW to HIGH
        (evenly spaced, geometrically with ``log``; integers rounded, duplicates dropped)."""
        if self.kind == "choice":
            return list(self.choices)
        if points < 1:
            raise ValueError(f"grid points must be >= 1, got {points}")
        if points == 1:
            values = [self.low]
        elif self.log:
            ratio = (self.high / self.low) ** (1 / (points - 1))
            values = [self.low * ratio**i for i in range(points)]
            values[-1] = self.high
        else:
            step = (self.high - self.low) / (points - 1)
            values = [self.low + step * i for i in range(points)]
        if self.kind == "int":
            return sorted({round(v) for v in values})
        return [float(f"{v:.6g}") for v in values]


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: {text!r} must be finite")
    return value


def parse_dimension(key: str, spec: str) -> Dimension:
    """One dimension from its spec; a bad one is a one-sentence error naming the fix."""
    from obliviate.config import parse_value

    where = f"search space {key}={spec}"
    key, spec = key.strip(), str(spec).strip()
    if not key or any(not part for part in key.split(".")):
        raise ValueError(f"{where}: the key must be a setting such as train.lr or alpha")
    if not spec:
        raise ValueError(f"{where}: give LOW:HIGH[:log|:int] or comma-separated values")
    if ":" in spec:
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"{where}: a range is LOW:HIGH, LOW:HIGH:log, LOW:HIGH:int")
        mode = parts[2].strip() if len(parts) == 3 else ""
        if mode not in ("", "log", "int", "int-log"):
            raise ValueError(f"{where}: unknown range mode {mode!r}; use log, int or int-log")
        low, high = _number(parts[0], where), _number(parts[1], where)
        if not low < high:
            raise ValueError(f"{where}: LOW must be smaller than HIGH")
        log = mode in ("log", "int-log")
        if log and low <= 0:
            raise ValueError(f"{where}: a log range needs LOW > 0")
        if mode.startswith("int"):
            if low != int(low) or high != int(high):
                raise ValueError(f"{where}: an integer range needs integer bounds")
            return Dimension(key, "int", int(low), int(high), log)
        return Dimension(key, "float", low, high, log)
    values = tuple(parse_value(v.strip()) for v in spec.split(","))
    if any(isinstance(v, (list, dict)) for v in values) or any(v == "" for v in values):
        raise ValueError(f"{where}: choices are plain values separated by commas")
    if len(set(map(repr, values))) != len(values):
        raise ValueError(f"{where}: a value is listed twice")
    return Dimension(key, "choice", choices=values)


def parse_space(items: list[str] | Mapping[str, str] | None) -> dict[str, Dimension]:
    """``["train.lr=1e-5:1e-3:log", "forget_params.beta=0.05,0.1"]`` (or a dict) ->
    ``{key: Dimension}``, in the given order; a key given twice is an error."""
    out: dict[str, Dimension] = {}
    pairs: list[tuple[str, str]] = []
    if isinstance(items, Mapping):
        pairs = [(k, str(v)) for k, v in items.items()]
    else:
        for item in items or []:
            if "=" not in item:
                raise ValueError(f"search space {item!r} must look like key=LOW:HIGH or key=A,B")
            key, _, spec = item.partition("=")
            pairs.append((key.strip(), spec))
    for key, spec in pairs:
        if key in out:
            raise ValueError(f"search space: {key} is given twice")
        out[key] = parse_dimension(key, spec)
    return out


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"train.lr": 1e-4, "alpha": 2}`` -> ``{"train": {"lr": 1e-4}, "alpha": 2}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise ValueError(f"search space: {key} conflicts with the setting {p}")
            node = child
        node[parts[-1]] = value
    return out


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The inverse of :func:`nest` (dicts become dotted keys)."""
    out: dict[str, Any] = {}
    for k, v in nested.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def suggest(trial: Any, space: Mapping[str, Dimension]) -> dict[str, Any]:
    """Ask an Optuna ``trial`` for one value per dimension: ``{key: value}`` (flat)."""
    out: dict[str, Any] = {}
    for key, d in space.items():
        if d.kind == "float":
            out[key] = trial.suggest_float(key, d.low, d.high, log=d.log)
        elif d.kind == "int":
            out[key] = trial.suggest_int(key, int(d.low), int(d.high), log=d.log)
        else:
            out[key] = trial.suggest_categorical(key, list(d.choices))
    return out


def start_point(space: Mapping[str, Dimension], values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` (flat) that are points of ``space``, an int dimension's value
    rounded; a value outside its range or not among the choices is left out (sampled)."""
    out: dict[str, Any] = {}
    for key, d in space.items():
        v = values.get(key)
        if d.kind == "choice":
            if v in d.choices:
                out[key] = v
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and d.low <= v <= d.high:
            out[key] = round(v) if d.kind == "int" else float(v)
    return out


def grid_size(space: Mapping[str, Dimension], points: int) -> int:
    return math.prod(len(d.grid(points)) for d in space.values())


def resolve_space(
    default: Mapping[str, str],
    given: list[str] | Mapping[str, str] | None,
    fixed: Mapping[str, Any],
    use_default: bool = True,
) -> dict[str, Dimension]:
    """The search space of a sweep: the method's ``default`` dimensions (unless not
    ``use_default``), replaced or extended by ``given`` ones, minus the keys fixed by ``--set``
    (``fixed``, nested overrides). Empty is an error."""
    space = parse_space(dict(default)) if use_default else {}
    extra = parse_space(given)
    fixed_keys = set(flatten(fixed))
    both = sorted(fixed_keys & set(extra))
    if both:
        raise ValueError(f"{both[0]} is both searched (--space) and fixed (--set): keep one")
    space.update(extra)
    for key in fixed_keys & set(space):
        del space[key]  # a default dimension the user fixed
    if not space:
        raise ValueError(
            "the search space is empty: give dimensions with --space KEY=LOW:HIGH (e.g. "
            "--space train.lr=1e-5:1e-3:log)"
        )
    return space
