"""The forget/retain objective interface of composed gradient methods (docs/methods.md):
``L = gamma * forget_term(D_f) + alpha * retain_term(D_r)``. Built-in terms are listed in
:data:`obliviate.registry.FORGET_TERMS` / :data:`~obliviate.registry.RETAIN_TERMS`."""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from obliviate.config import TrainConfig, check_keys
from obliviate.data.templates import Encoded
from obliviate.methods.job import UnlearnJob


class Term:
    """A forget or retain objective. Subclasses set ``name``/``description``/``paper``, take
    their hyper-parameters as typed keyword arguments (whose defaults are the method defaults:
    :func:`term_params`), and compute ``__call__(model, batch, job)``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""  # one line, shown by `obliviate ls`
    paper: ClassVar[str] = ""
    needs_reference: ClassVar[bool] = False  # needs the frozen reference model at every step

    def setup(self, job: UnlearnJob, forget: list[Encoded], cfg: TrainConfig) -> None:
        """Precompute what is fixed for the whole run (e.g. reference log-probs of D_f)."""

    def __call__(self, model: Any, batch: dict[str, Any], job: UnlearnJob) -> Any:
        raise NotImplementedError


def term_params(cls: type[Any]) -> dict[str, Any]:
    """The keyword hyper-parameters (and defaults) a term class accepts."""
    sig = inspect.signature(cls.__init__)
    return {
        k: p.default
        for k, p in sig.parameters.items()
        if k != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


def make_term(registry: Any, name: str, params: dict[str, Any]) -> Term:
    cls = registry.get(name)
    check_keys(params, list(term_params(cls)), f"{registry.kind} {name!r}")
    return cls(**params)
