"""One generic registry for every extension point (methods, metrics, benchmarks, erasers...).

Every built-in entry is registered exactly once, lazily, by module path: either in a table
``name -> "module:attr"`` at the bottom of this file (code objects: methods, terms, wrappers,
erasers, benchmarks), or by a *catalogue* module listed here whose import registers data-like
entries (metric definitions). Looking a name up imports only what it needs, so nothing depends on
which package happened to be imported first, and ``import obliviate`` stays cheap. An entry's
description and paper are read on first use from the object's ``description``/``paper``
attributes (or its docstring's first line).

Your own entries register the same way, from any module::

    from obliviate.registry import METHODS
    METHODS.register("my_method", "my_package.my_module:MY_METHOD")   # lazy
    # or as a decorator on the object itself: @FORGET_TERMS.register("my_term")

Name such modules in ``OBLIVIATE_PLUGINS`` (comma-separated module names) and every registry
imports them before its first lookup, in any process (``obliviate`` commands, ``torchrun``
workers), so ``OBLIVIATE_PLUGINS=my_module obliviate ls methods`` lists your entries.

A name may be a *family pattern* with ``{placeholders}`` (``fluency_{split}_perplexity``):
:meth:`Registry.entry` matches concrete names (``fluency_forget_perplexity``) against it when no
exact entry exists. docs/contributing.md walks through adding a method, a metric and a benchmark.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")


class UnknownEntryError(KeyError):
    """Raised when a name is not registered; the message suggests close matches."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def resolve(target: str) -> Any:
    """The object a ``"module:attr"`` string names (``attr`` may be dotted)."""
    module, _, attr = target.partition(":")
    if not attr:
        raise ValueError(f"{target!r} is not of the form 'module:attr'")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


PLUGINS_ENV = "OBLIVIATE_PLUGINS"


def load_plugins() -> None:
    """Import the modules named in ``$OBLIVIATE_PLUGINS`` (comma- or space-separated); a plugin
    registers its entries when imported. An imported module is not imported again."""
    for name in os.environ.get(PLUGINS_ENV, "").replace(",", " ").split():
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(
                f"{PLUGINS_ENV}: cannot import plugin module {name!r} ({exc}); "
                "install it or put its folder on PYTHONPATH"
            ) from exc


def _first_line(text: str | None) -> str:
    return ((text or "").strip().splitlines() or [""])[0]


@dataclass
class Entry(Generic[T]):
    """A registered object plus its metadata (one-line description, paper, kind...).

    ``target`` is the object or a lazy ``"module:attr"`` string; description and paper default
    to the object's ``description``/``paper`` attributes (or its docstring's first line).
    """

    name: str
    target: T | str
    _description: str = ""
    _paper: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self) -> T:
        """The registered object (a lazy ``"module:attr"`` target is imported on first use)."""
        if isinstance(self.target, str):
            self.target = resolve(self.target)
        return cast("T", self.target)

    @property
    def description(self) -> str:
        if not self._description:
            obj = self.load()
            desc = getattr(obj, "description", None)
            self._description = desc if isinstance(desc, str) and desc else _first_line(obj.__doc__)
        return self._description

    @property
    def paper(self) -> str:
        if not self._paper:
            paper = getattr(self.load(), "paper", None)
            self._paper = paper if isinstance(paper, str) else ""
        return self._paper


def _pattern_regex(name: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", name)
    out = []
    for i, part in enumerate(parts):
        out.append(re.escape(part) if i % 2 == 0 else rf"(?P<{part}>[A-Za-z0-9_.\-]+?)")
    return re.compile("".join(out) + r"\Z")


class Registry(Generic[T]):
    """Name -> object mapping with lazy entries, family patterns and did-you-mean errors.

    ``builtins`` maps names to ``"module:attr"`` targets (one registration per entry);
    ``catalogues`` are modules whose import registers entries, imported on first lookup.
    """

    def __init__(
        self, kind: str, builtins: Mapping[str, str] | None = None, catalogues: tuple[str, ...] = ()
    ) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._patterns: dict[str, re.Pattern[str]] = {}
        self._catalogues = list(catalogues)
        for name, target in (builtins or {}).items():
            self._add(name, target, "", "", {})

    def _populate(self) -> None:
        load_plugins()
        while self._catalogues:
            importlib.import_module(self._catalogues.pop(0))

    def _add(self, name: str, obj: Any, description: str, paper: str, meta: dict[str, Any]) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, obj, description, paper, meta)
        if "{" in name:
            self._patterns[name] = _pattern_regex(name)

    def register(
        self,
        name: str,
        target: T | str | None = None,
        *,
        description: str = "",
        paper: str = "",
        **meta: Any,
    ) -> Any:
        """Register ``target`` (an object or a lazy ``"module:attr"``) under ``name``; without
        ``target`` act as a decorator that registers the decorated object."""

        def add(obj: Any) -> Any:
            self._add(name, obj, description, paper, dict(meta))
            return obj

        if target is not None:
            return add(target)
        return add

    def unregister(self, name: str) -> None:
        """Remove an entry (for tests and plugins that replace a built-in)."""
        self._entries.pop(name, None)
        self._patterns.pop(name, None)

    def find(self, name: str) -> Entry[T] | None:
        """The entry registered as ``name``, or the family pattern it matches, or None."""
        self._populate()
        if name in self._entries:
            return self._entries[name]
        for pattern, regex in self._patterns.items():
            if regex.match(name):
                return self._entries[pattern]
        return None

    def entry(self, name: str) -> Entry[T]:
        found = self.find(name)
        if found is None:
            close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            known = ", ".join(sorted(self._entries))
            raise UnknownEntryError(f"unknown {self.kind} {name!r}.{hint} Known: {known}")
        return found

    def get(self, name: str) -> T:
        return self.entry(name).load()

    def names(self) -> list[str]:
        self._populate()
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.find(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


# ---------------------------------------------------------------------------------------------
# The extension points and their built-in entries. Each built-in is registered here once: its
# object lives in its family module and its line is below (docs/methods.md, "Adding a method").

METHODS: Registry[Any] = Registry(
    "method",
    builtins={
        "altpo": "obliviate.methods.preference:ALTPO",
        "ceu": "obliviate.methods.gradient:CEU",
        "demem": "obliviate.methods.quark:DEMEM",
        "depn": "obliviate.methods.neurons:DEPN_METHOD",
        "distill": "obliviate.methods.distillation:DISTILL",
        "dpo": "obliviate.methods.preference:DPO",
        "eco": "obliviate.methods.inference:ECO",
        "eul": "obliviate.methods.eul:EUL",
        "ext_sub": "obliviate.methods.ext_sub:EXT_SUB",
        "ga": "obliviate.methods.gradient:GA",
        "ga_kl": "obliviate.methods.gradient:GA_KL",
        "graddiff": "obliviate.methods.gradient:GRADDIFF",
        "guardrail": "obliviate.methods.inference:GUARDRAIL",
        "icul": "obliviate.methods.inference:ICUL",
        "idk": "obliviate.methods.preference:IDK",
        "llmu": "obliviate.methods.gradient:LLMU",
        "memit": "obliviate.methods.editing:MEMIT",
        "npo": "obliviate.methods.preference:NPO",
        "npo_kl": "obliviate.methods.preference:NPO_KL",
        "pdu": "obliviate.methods.gradient:PDU",
        "rmu": "obliviate.methods.representation:RMU",
        "rmu_adaptive": "obliviate.methods.representation:RMU_ADAPTIVE",
        "rome": "obliviate.methods.editing:ROME",
        "salun": "obliviate.methods.salun:SALUN",
        "satimp": "obliviate.methods.gradient:SATIMP",
        "selective_pruning": "obliviate.methods.neurons:SELECTIVE_PRUNING",
        "seul": "obliviate.methods.seul:SEUL",
        "simnpo": "obliviate.methods.preference:SIMNPO",
        "sisa": "obliviate.methods.sisa:SISA",
        "soft_prompt": "obliviate.methods.soft_prompt:SOFT_PROMPT",
        "task_vector": "obliviate.methods.task_vector:TASK_VECTOR",
        "undial": "obliviate.methods.gradient:UNDIAL",
        "wga": "obliviate.methods.gradient:WGA",
        "whp": "obliviate.methods.whp:WHP",
        "whp_logits": "obliviate.methods.inference:WHP_LOGITS",
    },
)
FORGET_TERMS: Registry[Any] = Registry(
    "forget objective",
    builtins={
        "altpo": "obliviate.methods.preference:AltPOTerm",
        "bad_teacher": "obliviate.methods.distillation:BadTeacherTerm",
        "ceu": "obliviate.methods.gradient:CEUTerm",
        "dpo": "obliviate.methods.preference:IdkDPOTerm",
        "ga": "obliviate.methods.gradient:GradientAscentTerm",
        "idk": "obliviate.methods.preference:IdkNLLTerm",
        "llmu": "obliviate.methods.gradient:LLMUTerm",
        "npo": "obliviate.methods.preference:NPOTerm",
        "pdu": "obliviate.methods.gradient:PDUForgetTerm",
        "random_answer": "obliviate.methods.salun:RandomAnswerTerm",
        "satimp": "obliviate.methods.gradient:SatImpTerm",
        "seul": "obliviate.methods.seul:SeULTerm",
        "simnpo": "obliviate.methods.preference:SimNPOTerm",
        "undial": "obliviate.methods.gradient:UNDIALTerm",
        "wga": "obliviate.methods.gradient:WGATerm",
        "whp": "obliviate.methods.whp:WHPTerm",
    },
)
RETAIN_TERMS: Registry[Any] = Registry(
    "retain objective",
    builtins={
        "kd": "obliviate.methods.distillation:DistillRetainTerm",
        "kl": "obliviate.methods.retain:RetainKL",
        "nll": "obliviate.methods.retain:RetainNLL",
        "pdu": "obliviate.methods.gradient:PDURetainTerm",
    },
)
WRAPPERS: Registry[Any] = Registry(
    "inference wrapper",
    builtins={
        "eul": "obliviate.inference.eul_model:EULModel",
        "guardrail": "obliviate.inference.guardrail:GuardrailWrapper",
        "icul": "obliviate.inference.icul:ICULWrapper",
        "logit_offset": "obliviate.inference.offset:LogitOffsetWrapper",
        "sisa": "obliviate.methods.sisa_ensemble:SISAEnsemble",
        "soft_prompt": "obliviate.inference.soft_prompt:SoftPromptModel",
    },
)
# methods designed for vision-language models (docs/multimodal.md); the text gradient methods
# run on them too (obliviate.multimodal.methods.GRADIENT_METHODS)
VLM_METHODS: Registry[Any] = Registry(
    "vision-language method",
    builtins={"mmunlearner": "obliviate.multimodal.mmunlearner:MMUnlearner"},
)
METRICS: Registry[Any] = Registry("metric", catalogues=("obliviate.metrics.catalogue",))
OBJECTIVES: Registry[Any] = Registry(
    "sweep objective",
    builtins={
        "forget_prob_gap": "obliviate.sweep.objectives:FORGET_PROB_GAP",
        "mia": "obliviate.sweep.objectives:MIA",
        "oracle": "obliviate.sweep.objectives:ORACLE",
        "utility_drop": "obliviate.sweep.objectives:UTILITY_DROP",
    },
)
BENCHMARKS: Registry[Any] = Registry("benchmark", catalogues=("obliviate.benchmarks",))
ERASERS: Registry[Any] = Registry(
    "diffusion eraser",
    builtins={
        "ca": "obliviate.diffusion.methods:ConceptAblation",
        "esd-u": "obliviate.diffusion.methods:ESDU",
        "erasediff": "obliviate.diffusion.erasediff:EraseDiff",
        "esd-x": "obliviate.diffusion.methods:ESD",
        "fmn": "obliviate.diffusion.methods:ForgetMeNot",
        "sa": "obliviate.diffusion.amnesia:SelectiveAmnesia",
        "salun": "obliviate.diffusion.methods:SalUn",
        "spm": "obliviate.diffusion.spm:SPM",
        "uce": "obliviate.diffusion.methods:UCE",
    },
)
