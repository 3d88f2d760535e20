"""The forget/retain objective interface of composed gradient methods (docs/methods.md):
``L = gamma * forget_term(D_f) + alpha * retain_term(D_r)``. Built-in terms are listed in
:data:`obliviate.registry.FORGET_TERMS` / :data:`~obliviate.registry.RETAIN_TERMS`."""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from obliviate.config import TrainConfig, check_keys
from obliviate.data.templates import Encoded
from obliviate.methods.job import UnlearnJob, forward


class Term:
    """A forget or retain objective. Subclasses set ``name``/``description``/``paper``, take
    their hyper-parameters as typed keyword arguments (whose defaults are the method defaults:
    :func:`term_params`), and compute either ``loss_from_logits(logits, batch, job)``, when the
    loss needs nothing but the model's logits on ``batch``, or ``__call__(model, batch, job)``.

    A term of the first kind :meth:`shares_forward`: the trainer may then compute the logits of
    the forget and the retain batch in one forward pass (``train.one_forward``,
    docs/methods.md, "Training speed")."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""  # one line, shown by `obliviate ls`
    paper: ClassVar[str] = ""
    needs_reference: ClassVar[bool] = False  # needs the frozen reference model at every step

    def setup(self, job: UnlearnJob, forget: list[Encoded], cfg: TrainConfig) -> None:
        """Precompute what is fixed for the whole run (e.g. reference log-probs of D_f)."""

    def loss_from_logits(self, logits: Any, batch: dict[str, Any], job: UnlearnJob) -> Any:
        """The loss given the logits ``(B, T, V)`` of the model on ``batch``."""
        raise NotImplementedError

    def __call__(self, model: Any, batch: dict[str, Any], job: UnlearnJob) -> Any:
        if type(self).loss_from_logits is Term.loss_from_logits:
            raise NotImplementedError(
                f"{type(self).__name__} defines neither __call__ nor loss_from_logits"
            )
        return self.loss_from_logits(forward(model, batch).logits, batch, job)

    def shares_forward(self) -> bool:
        """True when the loss is :meth:`loss_from_logits` of one plain forward pass on the batch
        (the class defines it and does not replace ``__call__``)."""
        cls = type(self)
        return cls.loss_from_logits is not Term.loss_from_logits and cls.__call__ is Term.__call__


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
