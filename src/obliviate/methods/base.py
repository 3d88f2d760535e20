"""The method interface and the one composition of gradient methods.

Every method registered in :data:`obliviate.registry.METHODS` is a :class:`MethodPreset` whose
``build(**overrides)`` returns an object with ``unlearn(job) -> UnlearnOutput``. Gradient
methods are all ``L = gamma * forget_term + alpha * retain_term`` (design.md "Methods"): the
terms live in :data:`FORGET_TERMS` / :data:`RETAIN_TERMS`, and a paper method is a preset of
term names, weights, term parameters and training defaults. Methods that are not losses
(task vectors, SISA, editing, in-context, guardrails) implement ``unlearn`` directly.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from obliviate.config import TrainConfig, check_keys, from_dict, to_dict
from obliviate.data.collate import pad_id_of
from obliviate.data.templates import Encoded, PromptTemplate, encode
from obliviate.data.types import QAItem, UnlearningRequest
from obliviate.registry import FORGET_TERMS, METHODS, RETAIN_TERMS


# ----------------------------------------------------------------------------- the job


@dataclass
class UnlearnJob:
    """Everything a method needs: the model to change, its tokenizer, the request and where to
    write. ``model`` is changed in place by gradient methods."""

    model: Any
    tokenizer: Any
    request: UnlearningRequest
    template: PromptTemplate = field(default_factory=PromptTemplate)
    run_dir: Path | None = None
    accelerator: Any = None
    progress: bool = True
    model_path: str | None = None  # where the target came from, when loaded from disk

    _ref_model: Any = None

    def encode_items(self, items: list[QAItem], max_length: int = 512) -> list[Encoded]:
        return [encode(self.tokenizer, it.question, it.answer, self.template, max_length) for it in items]

    def reference_model(self) -> Any:
        """A frozen copy of the model as it was before unlearning (built once, on demand)."""
        if self._ref_model is None:
            ref = copy.deepcopy(_unwrap(self.model))
            ref.eval()
            for p in ref.parameters():
                p.requires_grad_(False)
            self._ref_model = ref
        return self._ref_model


@dataclass
class UnlearnOutput:
    """What a method returns: a model-like object ``evaluate()`` accepts, plus bookkeeping."""

    model: Any
    train_log: list[dict[str, float]] = field(default_factory=list)
    trainable_params: int = 0
    stopped: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _unwrap(model: Any) -> Any:
    return getattr(model, "module", model)


def forward(model: Any, batch: dict[str, Any], **kwargs: Any) -> Any:
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs)


# ----------------------------------------------------------------------------- terms


class Term:
    """A forget or retain objective. Subclasses set ``name``/``paper``, take their
    hyper-parameters as keyword arguments, and compute ``__call__(model, batch, job)``."""

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    needs_reference: ClassVar[bool] = False  # needs the frozen reference model at every step

    def setup(self, job: UnlearnJob, forget: list[Encoded], cfg: TrainConfig) -> None:
        """Precompute what is fixed for the whole run (e.g. reference log-probs of D_f)."""

    def __call__(self, model: Any, batch: dict[str, Any], job: UnlearnJob) -> Any:
        raise NotImplementedError


def term_params(cls: type) -> dict[str, Any]:
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


# ----------------------------------------------------------------------------- composition


class ComposedMethod:
    """``L = gamma * forget_term(D_f) + alpha * retain_term(D_r)`` trained by the one trainer.

    Options every gradient method gets: ``trainable`` (regex of parameter names to train; the
    rest is frozen), ``peft`` (train a LoRA/PEFT adapter instead of full weights: a dict of
    ``peft.LoraConfig`` fields, e.g. ``{"r": 8, "lora_alpha": 16}``) and ``saliency`` (keep only
    the top fraction of weights by ``|grad of the forget loss|`` trainable, SalUn-style).
    """

    def __init__(
        self,
        forget: Term,
        retain: Term | None,
        gamma: float,
        alpha: float,
        train: TrainConfig,
        trainable: str | None = None,
        peft: dict[str, Any] | None = None,
        hooks_factory: Callable[[UnlearnJob, list[Encoded], TrainConfig], list[Any]] | None = None,
        saliency: float | None = None,
    ) -> None:
        self.forget, self.retain = forget, retain
        self.gamma, self.alpha = gamma, alpha
        self.train = train
        self.trainable = trainable
        self.peft = peft
        self.hooks_factory = hooks_factory
        self.saliency = saliency

    def loss(self, model: Any, fb: dict, rb: dict | None, job: UnlearnJob) -> tuple[Any, dict[str, float]]:
        lf = self.forget(model, fb, job)
        logs = {"forget_loss": float(lf.detach())}
        loss = self.gamma * lf
        if self.retain is not None and self.alpha and rb is not None:
            lr = self.retain(model, rb, job)
            logs["retain_loss"] = float(lr.detach())
            loss = loss + self.alpha * lr
        return loss, logs

    def unlearn(self, job: UnlearnJob) -> UnlearnOutput:
        from obliviate.models.selection import apply_peft, select_trainable
        from obliviate.training import train_loop

        cfg = self.train
        forget = job.encode_items(job.request.forget, cfg.max_length)
        retain = job.encode_items(job.request.retain, cfg.max_length) if job.request.retain else None
        if self.retain is not None and self.alpha and not retain:
            raise ValueError(
                "this method has a retain term but the request has no retain set; give one or "
                "set alpha=0"
            )
        # terms precompute with the untouched target (reference log-probs)
        needs_ref = self.forget.needs_reference or (self.retain is not None and self.retain.needs_reference)
        if needs_ref:
            job.reference_model()
        self.forget.setup(job, forget, cfg)
        if self.retain is not None:
            self.retain.setup(job, retain or [], cfg)
        if self.peft:
            job.model = apply_peft(job.model, self.peft)
        if self.trainable:
            select_trainable(job.model, self.trainable)
        n_train = sum(p.numel() for p in job.model.parameters() if p.requires_grad)
        hooks = self.hooks_factory(job, forget, cfg) if self.hooks_factory else []
        if self.saliency:
            from obliviate.methods.saliency import saliency_hooks

            hooks = hooks + saliency_hooks(job, self, forget, float(self.saliency))
        log_path = job.run_dir / "train_log.jsonl" if job.run_dir else None
        result = train_loop(
            job.model,
            lambda m, fb, rb, step: self.loss(m, fb, rb, job),
            forget,
            cfg,
            pad_id_of(job.tokenizer),
            retain_set=retain,
            accelerator=job.accelerator,
            hooks=hooks,
            log_path=log_path,
            desc="unlearning",
            progress=job.progress,
            checkpoint_dir=job.run_dir / "checkpoint" if job.run_dir and cfg.checkpoint else None,
        )
        if self.peft:
            from obliviate.models.selection import finish_adapter

            job.model = finish_adapter(job.model)
        return UnlearnOutput(
            job.model, result.log, n_train, result.stopped,
            {"steps": result.steps, "train_s": result.wall_s},
        )


# ----------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class MethodPreset:
    """A registered method: either a composition of terms (``forget`` set) or a ``builder``
    for methods that are not a single loss. ``params`` hold the community defaults (docs/methods.md)
    under one canonical name each."""

    name: str
    description: str
    paper: str
    forget: str | None = None
    retain: str | None = None
    gamma: float = 1.0
    alpha: float = 1.0
    forget_params: dict[str, Any] = field(default_factory=dict)
    retain_params: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    builder: Callable[..., Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)  # builder defaults
    kind: str = "trainer"
    hooks_factory: Callable[..., list[Any]] | None = None

    def defaults(self) -> dict[str, Any]:
        """The full resolved default configuration (what `obliviate ls` and config.yaml show)."""
        out: dict[str, Any] = {"method": self.name}
        if self.forget:
            out.update(forget=self.forget, retain=self.retain, gamma=self.gamma, alpha=self.alpha,
                       forget_params=dict(self.forget_params), retain_params=dict(self.retain_params),
                       trainable=None, peft=None, saliency=None)
        out.update(self.options)
        out["train"] = to_dict(from_dict(TrainConfig, self.train))
        return out

    def build(self, overrides: dict[str, Any] | None = None) -> Any:
        """Instantiate the method with ``overrides`` (flat keys of :meth:`defaults`; ``train``
        and ``*_params`` as nested dicts). Unknown keys are errors."""
        overrides = dict(overrides or {})
        cfg = self.defaults()
        check_keys(overrides, [k for k in cfg if k != "method"], f"method {self.name!r}")
        train = dict(self.train)
        train.update(overrides.pop("train", {}) or {})
        train_cfg = from_dict(TrainConfig, train, "train")
        if self.builder is not None:
            opts = {**self.options, **overrides}
            return self.builder(train=train_cfg, **opts)
        fp = {**self.forget_params, **(overrides.pop("forget_params", {}) or {})}
        rp = {**self.retain_params, **(overrides.pop("retain_params", {}) or {})}
        forget_name = overrides.pop("forget", self.forget)
        retain_name = overrides.pop("retain", self.retain)
        forget = make_term(FORGET_TERMS, forget_name, fp)
        retain = make_term(RETAIN_TERMS, retain_name, rp) if retain_name else None
        return ComposedMethod(
            forget, retain,
            gamma=float(overrides.pop("gamma", self.gamma)),
            alpha=float(overrides.pop("alpha", self.alpha)) if retain else 0.0,
            train=train_cfg,
            trainable=overrides.pop("trainable", None),
            peft=overrides.pop("peft", None),
            hooks_factory=self.hooks_factory,
            saliency=overrides.pop("saliency", None),
        )


def register_preset(preset: MethodPreset) -> MethodPreset:
    METHODS.register(preset.name, preset, description=preset.description, paper=preset.paper,
                     kind=preset.kind)
    return preset


def build_method(name: str, overrides: dict[str, Any] | None = None) -> Any:
    return METHODS.get(name).build(overrides)
