"""The method interface and the one composition of gradient methods.

Every method registered in :data:`obliviate.registry.METHODS` is a :class:`MethodPreset` whose
``build(**overrides)`` returns an object with ``unlearn(job) -> UnlearnOutput``. Gradient
methods are all ``L = gamma * forget_term + alpha * retain_term`` (docs/methods.md): the
terms live in :data:`FORGET_TERMS` / :data:`RETAIN_TERMS`, and a paper method is a preset of
term names, weights, the term parameters it changes and training defaults. Methods that are not losses
(task vectors, SISA, editing, in-context, guardrails) implement ``unlearn`` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from obliviate.config import TrainConfig, check_keys, coerce_like, from_dict, to_dict
from obliviate.data.collate import pad_id_of
from obliviate.methods.job import UnlearnJob, UnlearnOutput, forward
from obliviate.methods.terms import Term, make_term, term_params
from obliviate.registry import FORGET_TERMS, METHODS, RETAIN_TERMS

__all__ = [
    "ComposedMethod",
    "MethodPreset",
    "Term",
    "UnlearnJob",
    "UnlearnOutput",
    "build_method",
    "forward",
    "joint_logits",
    "make_term",
    "term_params",
]


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
        saliency: float | None = None,
    ) -> None:
        self.forget, self.retain = forget, retain
        self.gamma, self.alpha = gamma, alpha
        self.train = train
        self.trainable = trainable
        self.peft = peft
        self.saliency = saliency

    def loss(self, model: Any, fb: dict, rb: dict | None, job: UnlearnJob) -> tuple[Any, dict]:
        """The loss of one micro-batch and its parts (detached tensors: the trainer reads them
        from the device once per optimiser step).

        Terms that :meth:`~Term.shares_forward` get their logits from one forward pass over
        both batches with ``train.pack`` (packed rows, :func:`obliviate.packing.packed_logits`)
        or ``train.one_forward`` (stacked, :func:`joint_logits`); otherwise each term runs the
        model on its own batch. All give the same loss up to float rounding."""
        retain = self.retain if self.alpha and rb is not None else None
        logits = self._shared_logits(model, fb, rb if retain is not None else None, job)
        if logits is None:
            lf = self.forget(model, fb, job)
        else:
            lf = self.forget.loss_from_logits(logits[0], fb, job)
        logs = {"forget_loss": lf.detach()}
        loss = self.gamma * lf
        if retain is not None and rb is not None:
            if logits is not None and len(logits) == 2:
                lr = retain.loss_from_logits(logits[1], rb, job)
            else:
                lr = retain(model, rb, job)
            logs["retain_loss"] = lr.detach()
            loss = loss + self.alpha * lr
        return loss, logs

    def _shared_logits(
        self, model: Any, fb: dict, rb: dict | None, job: UnlearnJob
    ) -> list[Any] | None:
        """The logits of the forget batch (and of the retain batch, when its term shares the
        forward pass too) from one pass, or ``None``: each term runs the model itself."""
        if not self.forget.shares_forward():
            return None
        both = rb is not None and self.retain is not None and self.retain.shares_forward()
        batches = [fb, rb] if both and rb is not None else [fb]
        pad = pad_id_of(job.tokenizer)
        if self.train.pack:
            from obliviate.packing import checked_packed_logits

            return checked_packed_logits(model, batches, pad)
        if self.train.one_forward and len(batches) == 2:
            return list(joint_logits(model, fb, batches[1], pad))
        return None

    def unlearn(self, job: UnlearnJob) -> UnlearnOutput:
        from obliviate.models.selection import apply_peft, select_trainable
        from obliviate.seeding import seed_everything
        from obliviate.training import train_loop

        cfg = self.train
        if cfg.shard == "zero3" and self.saliency:
            raise ValueError(
                f"saliency={self.saliency!r} does not work with train.shard=zero3 (DeepSpeed "
                "keeps the gradients to itself): use train.shard=fsdp or leave saliency out"
            )
        forget = job.encode_items(job.request.forget, cfg.max_length)
        retain = (
            job.encode_items(job.request.retain, cfg.max_length) if job.request.retain else None
        )
        if self.retain is not None and self.alpha and not retain:
            raise ValueError(
                "this method has a retain term but the request has no retain set; give one or "
                "set alpha=0"
            )
        # terms precompute with the untouched target (reference log-probs)
        needs_ref = self.forget.needs_reference or (
            self.retain is not None and self.retain.needs_reference
        )
        if needs_ref:
            job.reference_model()
        self.forget.setup(job, forget, cfg)
        if self.retain is not None:
            self.retain.setup(job, retain or [], cfg)
        seed_everything(cfg.seed)  # before any parameter (an adapter) is created
        if self.peft:
            job.model = apply_peft(job.model, self.peft)
        if self.trainable:
            select_trainable(job.model, self.trainable)
        n_train = sum(p.numel() for p in job.model.parameters() if p.requires_grad)
        hooks: list[Any] = []
        if self.saliency:
            from obliviate.methods.saliency import saliency_hooks

            hooks = hooks + saliency_hooks(job, self, forget, float(self.saliency))
        log_path = job.run_dir / "train_log.jsonl" if job.run_dir else None
        monitor = None
        if cfg.early_stop is not None:
            from obliviate.early_stop import EarlyStopper

            holdout = job.encode_items(job.request.holdout, cfg.max_length)
            pad = pad_id_of(job.tokenizer)
            monitor = EarlyStopper(cfg.early_stop, forget, holdout, retain or [], pad)
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
            # the early-stopping record is not checkpointed: such a run restarts when interrupted
            checkpoint_dir=job.checkpoint_dir("unlearn", cfg.checkpoint and monitor is None),
            monitor=monitor,
        )
        job.model = result.model  # a consolidated copy when the training was sharded
        if self.peft:
            from obliviate.models.selection import finish_adapter

            job.model = finish_adapter(job.model)
        info: dict[str, Any] = {"steps": result.steps, "train_s": result.wall_s}
        if monitor is not None:
            info["early_stop"] = monitor.record()
        return UnlearnOutput(job.model, result.log, n_train, result.stopped, info)


def joint_logits(model: Any, fb: dict, rb: dict, pad_id: int) -> tuple[Any, Any]:
    """The logits of a forget and a retain batch from one forward pass over both.

    The two right-padded batches are stacked (the narrower one padded to the wider width with
    ``pad_id`` and attention mask 0), and the logits are split again and cut back to each
    batch's own width, so that each equals the logits of a forward pass on that batch alone up
    to float rounding: a causal model never lets a position attend to a later or masked one.
    Dropout, if the model has any, draws its masks once for both batches."""
    import torch

    width = max(fb["input_ids"].shape[1], rb["input_ids"].shape[1])

    def both(key: str, fill: int) -> Any:
        parts = [b[key] for b in (fb, rb)]
        parts = [torch.nn.functional.pad(t, (0, width - t.shape[1]), value=fill) for t in parts]
        return torch.cat(parts)

    logits = model(input_ids=both("input_ids", pad_id), attention_mask=both("attention_mask", 0))
    logits = logits.logits
    n = fb["input_ids"].shape[0]
    return logits[:n, : fb["input_ids"].shape[1]], logits[n:, : rb["input_ids"].shape[1]]


# ----------------------------------------------------------------------------- presets

# Default search spaces of `obliviate sweep` (docs/sweep.md), in its `--space` syntax
# (LOW:HIGH[:log|:int], or comma-separated choices). Tiny CPU models trained from scratch need
# larger steps than real models (the methods' TINY_TRAIN, lr 2.5e-4, against the community's
# 1e-5 for 7B models, docs/methods.md); the epochs range brackets each scale's default. The tiny
# range reaches 40 epochs: the built-in models learn each answer in two phrasings, and the
# settings that forget them within the utility floors need 20-30 epochs (docs/sweep.md).
TRAIN_SPACES: dict[str, dict[str, str]] = {
    "tiny": {"train.lr": "1e-4:3e-3:log", "train.epochs": "4:40:int"},
    "real": {"train.lr": "1e-6:1e-4:log", "train.epochs": "1:10:int"},
}
RETAIN_WEIGHT_SPACE = "0.1:10:log"  # alpha, the retain term's weight


@dataclass(frozen=True)
class MethodPreset:
    """A registered method, declared once in its family module and listed once in
    :data:`obliviate.registry.METHODS`: either a composition of terms (``forget`` set) or a
    ``builder`` for methods that are not a single loss (its defaults in ``options``).

    A term's hyper-parameter defaults are its ``__init__`` keyword defaults (typed, in one place);
    ``forget_params``/``retain_params`` hold only the values a method changes, and
    :meth:`defaults` shows the resolved set (docs/methods.md)."""

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
    saliency: float | None = None  # default SalUn mask fraction of a composed method
    # the method's own search dimensions for `obliviate sweep` (e.g. NPO's beta), in its
    # --space syntax; :meth:`search_space` adds the training and retain-weight ones
    space: dict[str, str] = field(default_factory=dict)
    # a builder whose method is a ComposedMethod trained by the one training loop (RMU): it
    # runs under train.shard like the compositions of terms
    shardable: bool = False

    def _params(self, registry: Any, term: str | None, given: dict[str, Any]) -> dict[str, Any]:
        return {**term_params(registry.get(term)), **given} if term else dict(given)

    def defaults(self) -> dict[str, Any]:
        """The full resolved default configuration (what `obliviate ls` and config.yaml show)."""
        out: dict[str, Any] = {"method": self.name}
        if self.forget:
            out.update(
                forget=self.forget,
                retain=self.retain,
                gamma=self.gamma,
                alpha=self.alpha,
                forget_params=self._params(FORGET_TERMS, self.forget, self.forget_params),
                retain_params=self._params(RETAIN_TERMS, self.retain, self.retain_params),
                trainable=None,
                peft=None,
                saliency=self.saliency,
            )
        out.update(self.options)
        out["train"] = to_dict(from_dict(TrainConfig, self.train))
        return out

    def search_space(self, scale: str = "tiny") -> dict[str, str]:
        """The default `obliviate sweep` search space, ``{override key: --space spec}``: for a
        composed method the learning rate and epochs of ``scale`` ("tiny" or "real"), the
        retain weight ``alpha`` when it has a retain term, then the method's own ``space``."""
        if scale not in TRAIN_SPACES:
            raise ValueError(f"search-space scale {scale!r}: choose tiny or real")
        out: dict[str, str] = {}
        if self.forget:
            out.update(TRAIN_SPACES[scale])
            if self.retain:
                out["alpha"] = RETAIN_WEIGHT_SPACE
        out.update(self.space)
        return out

    def build(self, overrides: dict[str, Any] | None = None) -> Any:
        """Instantiate the method with ``overrides`` (flat keys of :meth:`defaults`; ``train``
        and ``*_params`` as nested dicts). Unknown keys are errors."""
        overrides = dict(overrides or {})
        cfg = self.defaults()
        check_keys(overrides, [k for k in cfg if k != "method"], f"method {self.name!r}")
        overrides = {
            k: coerce_like(cfg[k], v, k, f"method {self.name!r}") for k, v in overrides.items()
        }
        train = dict(self.train)
        train.update(overrides.pop("train", {}) or {})
        train_cfg = from_dict(TrainConfig, train, "train")
        if self.builder is not None and train_cfg.early_stop is not None:
            raise ValueError(
                f"method {self.name!r} is not a composed gradient method: train.early_stop "
                "works with the methods of docs/methods.md built from forget/retain terms"
            )
        if self.builder is not None and not self.shardable and train_cfg.shard != "none":
            raise ValueError(
                f"method {self.name!r} is not a composed gradient method: train.shard="
                f"{train_cfg.shard} works with fine-tuning and the methods built from "
                "forget/retain terms (docs/scale-out.md); use train.shard=none"
            )
        if self.builder is not None:
            opts = {**self.options, **overrides}
            return self.builder(train=train_cfg, **opts)
        forget_name = overrides.pop("forget", self.forget)
        retain_name = overrides.pop("retain", self.retain)
        # the method's own term values apply to its own terms; a replaced term starts from its
        # defaults
        fp = {
            **(self.forget_params if forget_name == self.forget else {}),
            **(overrides.pop("forget_params", {}) or {}),
        }
        rp = {
            **(self.retain_params if retain_name == self.retain else {}),
            **(overrides.pop("retain_params", {}) or {}),
        }
        forget = make_term(FORGET_TERMS, forget_name, fp)
        retain = make_term(RETAIN_TERMS, retain_name, rp) if retain_name else None
        return ComposedMethod(
            forget,
            retain,
            gamma=float(overrides.pop("gamma", self.gamma)),
            alpha=float(overrides.pop("alpha", self.alpha)) if retain else 0.0,
            train=train_cfg,
            trainable=overrides.pop("trainable", None),
            peft=overrides.pop("peft", None),
            saliency=overrides.pop("saliency", self.saliency),
        )


def build_method(name: str, overrides: dict[str, Any] | None = None) -> Any:
    return METHODS.get(name).build(overrides)
