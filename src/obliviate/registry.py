"""One generic registry for every extension point (methods, metrics, benchmarks, erasers).

Entries are registered with a decorator or lazily as ``"module:attr"`` strings, so that
``import obliviate`` stays cheap: nothing heavy is imported until an entry is looked up.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownEntryError(KeyError):
    """Raised when a name is not registered; the message suggests close matches."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


@dataclass
class Entry(Generic[T]):
    """A registered object plus its metadata (one-line description, paper, kind...)."""

    name: str
    target: T | str
    description: str = ""
    paper: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self) -> T:
        """Resolve a lazy ``"module:attr"`` target on first use."""
        if isinstance(self.target, str):
            module, _, attr = self.target.partition(":")
            self.target = getattr(importlib.import_module(module), attr)
        return self.target  # type: ignore[return-value]


class Registry(Generic[T]):
    """Name -> object mapping with did-you-mean errors.

    Example::

        METHODS = Registry("method")

        @METHODS.register("ga", description="Gradient ascent", paper="arXiv 2210.01504")
        class GradientAscent: ...
    """

    def __init__(self, kind: str, loaders: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        # modules whose import registers entries; imported on first lookup
        self._loaders = list(loaders)

    def _populate(self) -> None:
        while self._loaders:
            importlib.import_module(self._loaders.pop(0))

    def register(
        self,
        name: str,
        target: T | str | None = None,
        *,
        description: str = "",
        paper: str = "",
        **meta: Any,
    ) -> Callable[[T], T] | T | str:
        """Register ``target`` under ``name``; without ``target`` act as a decorator."""

        def add(obj: T | str) -> T | str:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            desc = description
            if not desc and not isinstance(obj, str):
                desc = ((getattr(obj, "__doc__", None) or "").strip().splitlines() or [""])[0]
            self._entries[name] = Entry(name, obj, desc, paper, dict(meta))
            return obj

        if target is not None:
            return add(target)
        return add  # type: ignore[return-value]

    def entry(self, name: str) -> Entry[T]:
        self._populate()
        if name not in self._entries:
            close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            known = ", ".join(sorted(self._entries))
            raise UnknownEntryError(f"unknown {self.kind} {name!r}.{hint} Known: {known}")
        return self._entries[name]

    def get(self, name: str) -> T:
        return self.entry(name).load()

    def names(self) -> list[str]:
        self._populate()
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        self._populate()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


# The extension points. Each lists the modules whose import registers its entries.
METHODS: Registry[Any] = Registry("method", ("obliviate.methods",))
METRICS: Registry[Any] = Registry("metric", ("obliviate.metrics",))
BENCHMARKS: Registry[Any] = Registry("benchmark", ("obliviate.benchmarks",))
ERASERS: Registry[Any] = Registry("diffusion eraser", ("obliviate.diffusion.methods",))
# Building blocks of composed gradient methods (design.md "Methods"): L = gamma*forget + alpha*retain.
FORGET_TERMS: Registry[Any] = Registry("forget objective", ("obliviate.methods",))
RETAIN_TERMS: Registry[Any] = Registry("retain objective", ("obliviate.methods",))
