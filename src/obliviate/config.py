"""Frozen configuration dataclasses, dotted ``key=value`` overrides, strict validation.

Every key must be consumed: unknown keys are errors with a did-you-mean hint (docs/metrics.md).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

T = TypeVar("T")

ADAMW_KINDS = ("auto", "fused", "foreach", "plain")
OPTIMIZERS = ("adamw", "soul")
STOP_CRITERIA = ("mia", "forget_prob_gap")
SHARDING = ("none", "fsdp", "zero3")
MIXED_PRECISION = ("no", "bf16")


@dataclass(frozen=True)
class EarlyStopConfig:
    """Early stopping inside a run (docs/sweep.md, "Early stopping").

    Every ``every`` optimiser steps one scoring pass over a fixed sample (``sample`` items each
    of the forget, holdout and retain sets) gives the forget/holdout LOSS-attack AUC and the
    mean forget, holdout and retain probabilities. ``criterion`` is minimised: ``mia`` =
    |AUC - 0.5|, ``forget_prob_gap`` = |forget prob - holdout prob|. Training stops after
    ``patience`` checks without an improvement larger than ``min_delta``, or as soon as the
    retain probability falls below ``min_retain`` x its value before training; with
    ``restore`` the best state seen (step 0 included) is put back at the end.
    """

    every: int = 5
    criterion: str = "mia"
    sample: int = 32
    patience: int = 3
    min_delta: float = 0.0
    min_retain: float = 0.9
    restore: bool = True

    def __post_init__(self) -> None:
        for name in ("every", "sample", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"train setting early_stop.{name}={getattr(self, name)!r}: must be >= 1"
                )
        if self.criterion not in STOP_CRITERIA:
            raise ValueError(
                f"train setting early_stop.criterion={self.criterion!r}: choose one of "
                + ", ".join(STOP_CRITERIA)
            )
        if not 0 <= self.min_retain <= 1:
            raise ValueError(
                f"train setting early_stop.min_retain={self.min_retain!r}: must be in [0, 1] "
                "(a fraction of the retain probability before training)"
            )
        if self.min_delta < 0:
            raise ValueError(f"train setting early_stop.min_delta={self.min_delta!r}: must be >= 0")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by fine-tuning and every gradient-based unlearning method.

    One epoch is one pass over the forget set (unlearning) or the training set (fine-tuning);
    each forget item is paired with a random retain item, a hash of (seed, epoch, the item's
    position in the global batch), so ranks see different retain samples and the draws do not
    depend on the number of processes (:mod:`obliviate.sampling`, docs/scale-out.md).
    """

    lr: float = 1e-5
    epochs: float = 10.0
    batch_size: int = 32
    grad_accum: int = 1
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    scheduler: str = "linear"  # linear | cosine | constant
    max_grad_norm: float = 1.0
    max_steps: int | None = None
    seed: int = 0
    max_length: int = 512
    # collapse guard: stop when the retain NLL exceeds this multiple of its initial value
    retain_guard: float | None = None
    # save the training state after every epoch so an interrupted run resumes (run folders only)
    checkpoint: bool = True
    # also save every N optimiser steps (long epochs); None: end of epoch only
    checkpoint_every: int | None = None
    # keep a model whose weights are non-finite or whose predictions collapsed to one token
    allow_collapse: bool = False
    # speed (docs/methods.md, "Training speed"): forget and retain batches in one forward pass
    # when both terms compute their loss from the logits; false: one forward pass per batch
    one_forward: bool = False
    # speed: forget and retain sequences packed into shared rows without padding, the LM head
    # only at answer positions (obliviate.packing); checked against a padded pass once per model
    pack: bool = False
    # AdamW implementation: auto (the fused kernel where the device has one, else foreach),
    # fused, foreach or plain (a Python loop over the parameters)
    adamw: str = "auto"
    # torch.compile the model for training (compilation takes a while: pays on long runs)
    compile: bool = False
    # adamw, or soul: the second-order clipped update of SOUL (Jia+ 2024, arXiv 2404.18239;
    # obliviate.soul, docs/methods.md "Second-order unlearning (SOUL)") with the soul_* settings
    optimizer: str = "adamw"
    soul_beta1: float = 0.9  # momentum of the gradient
    soul_beta2: float = 0.95  # moving average of the Hessian-diagonal estimate
    soul_rho: float = 0.04  # gamma of the clipped ratio m / max(rho * B * h, eps)
    soul_batch: int = 5120  # B, Sophia's batch factor of the Gauss-Newton estimate
    soul_every: int = 1  # k: the Hessian estimate is refreshed every k optimiser steps
    # early stopping on cheap criteria every k steps (EarlyStopConfig; a dict of its fields)
    early_stop: EarlyStopConfig | None = None
    # scale-out (docs/scale-out.md): none (one replica per process, DDP under a launcher),
    # fsdp (parameters, gradients and optimiser state sharded over the processes, FSDP2) or
    # zero3 (the same with DeepSpeed ZeRO-3, launched with examples/accelerate/zero3.yaml)
    shard: str = "none"
    # no, or bf16: FSDP/ZeRO-3 compute in bf16 and reduce gradients in fp32 (fp32 master
    # weights); unsharded, bf16 autocast
    mixed_precision: str = "no"
    # recompute each decoder layer's activations in the backward pass (less memory, more time)
    activation_checkpointing: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.early_stop, Mapping):
            stop = from_dict(EarlyStopConfig, self.early_stop, "train early_stop")
            object.__setattr__(self, "early_stop", stop)
        elif self.early_stop is not None and not isinstance(self.early_stop, EarlyStopConfig):
            raise ValueError(
                f"train setting early_stop={self.early_stop!r}: give its settings, e.g. "
                "train.early_stop.every=5 (or null)"
            )
        if self.lr <= 0:
            raise ValueError(f"train setting lr={self.lr:g}: lr must be > 0 (e.g. 1e-5)")
        if self.epochs <= 0 and not self.max_steps:
            raise ValueError(
                f"train setting epochs={self.epochs:g}: epochs must be > 0 (or set max_steps)"
            )
        for name in ("batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"train setting {name}={getattr(self, name)!r}: {name} must be >= 1"
                )
        if self.max_steps is not None and self.max_steps < 0:
            raise ValueError(f"train setting max_steps={self.max_steps!r}: must be >= 0")
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise ValueError(
                f"train setting checkpoint_every={self.checkpoint_every!r}: must be >= 1 (or null)"
            )
        if self.adamw not in ADAMW_KINDS:
            raise ValueError(
                f"train setting adamw={self.adamw!r}: choose one of {', '.join(ADAMW_KINDS)}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"train setting optimizer={self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}"
            )
        for name in ("soul_beta1", "soul_beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(
                    f"train setting {name}={getattr(self, name)!r}: must be in [0, 1) (e.g. 0.9)"
                )
        if self.soul_rho <= 0:
            raise ValueError(f"train setting soul_rho={self.soul_rho!r}: must be > 0 (e.g. 0.04)")
        for name in ("soul_batch", "soul_every"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"train setting {name}={getattr(self, name)!r}: {name} must be >= 1"
                )
        if self.shard not in SHARDING:
            raise ValueError(
                f"train setting shard={self.shard!r}: choose one of {', '.join(SHARDING)}"
            )
        if self.mixed_precision is False:  # YAML reads `--set train.mixed_precision=no` as false
            object.__setattr__(self, "mixed_precision", "no")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(
                f"train setting mixed_precision={self.mixed_precision!r}: choose one of "
                + ", ".join(MIXED_PRECISION)
            )
        if self.shard != "none":
            self._check_shardable()
        if self.scheduler not in ("linear", "cosine", "constant"):
            raise ValueError(
                f"scheduler must be linear, cosine or constant, not {self.scheduler!r}"
            )

    def _check_shardable(self) -> None:
        """Refuse, in one sentence, settings that do not work with sharded training yet."""
        refused = {
            "optimizer": (self.optimizer != "adamw", "train.optimizer=adamw"),
            "compile": (self.compile, "train.compile=false"),
            "early_stop": (self.early_stop is not None, "no train.early_stop"),
        }
        for name, (bad, fix) in refused.items():
            if bad:
                raise ValueError(
                    f"train setting {name}={getattr(self, name)!r} does not work with "
                    f"train.shard={self.shard}: use {fix} or train.shard=none"
                )


def parse_value(text: str) -> Any:
    """Parse a CLI override value with YAML rules (numbers, booleans, lists, null)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["lr=1e-4", "method.beta=0.2"]`` -> nested dict."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value")
        key, _, value = item.partition("=")
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = parse_value(value)
    return out


def check_keys(given: Mapping[str, Any], allowed: list[str], what: str) -> None:
    """Reject a key of ``given`` not in ``allowed``, in one sentence with a did-you-mean hint:
    ``unknown <what> setting 'lrr'. Did you mean 'lr'? Known: ...``."""
    for key in given:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=2, cutoff=0.5)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(
                f"unknown {what} setting {key!r}.{hint} Known: {', '.join(sorted(allowed))}"
            )


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def coerce(value: Any, kind: type, key: str, what: str) -> Any:
    """``value`` as ``kind`` (``bool``, ``int`` or ``float``; strings from the CLI are parsed),
    or a one-sentence error: ``<what> setting iterations='many': expected int``."""
    try:
        if kind is bool:
            if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
                return value.lower() in _TRUE
            if isinstance(value, bool):
                return value
            raise ValueError(value)
        if isinstance(value, bool):  # True is an int in Python; not a number here
            raise TypeError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} setting {key}={value!r}: expected {kind.__name__}") from None


def coerce_like(default: Any, value: Any, key: str, what: str) -> Any:
    """``value`` coerced to the type of a number or boolean ``default`` (a one-sentence error
    when it cannot be: ``alpha=abc``), unchanged otherwise; an int default accepts a float."""
    if isinstance(default, bool):
        return coerce(value, bool, key, what)
    if isinstance(default, (int, float)) and value is not None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        return coerce(value, float, key, what)
    return value


def from_dict(cls: type[T], values: Mapping[str, Any], what: str | None = None) -> T:
    """Build a dataclass from a dict, rejecting unknown keys and coercing simple types."""
    what = what or cls.__name__
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    check_keys(values, names, what)
    types = {f.name: f.type for f in fields(cls)}  # type: ignore[arg-type]
    coerced = {}
    for k, v in values.items():
        t = str(types[k])
        if v is not None and t == "bool":
            v = coerce(v, bool, k, what)
        elif v is not None and t.startswith("float"):
            v = coerce(v, float, k, what)
        elif v is not None and t.startswith("int") and not isinstance(v, bool):
            v = coerce(v, int, k, what)
        elif isinstance(v, list) and t.startswith("tuple"):
            v = tuple(v)
        coerced[k] = v
    return cls(**coerced)


def replace(obj: T, **changes: Any) -> T:
    return dataclasses.replace(obj, **changes)  # type: ignore[type-var]


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


__all__ = [
    "EarlyStopConfig",
    "TrainConfig",
    "check_keys",
    "coerce",
    "field",
    "from_dict",
    "parse_overrides",
    "replace",
    "to_dict",
]
