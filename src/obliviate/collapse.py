"""Collapse detection: a run whose loss diverged or whose model collapsed is not a result.

The trainer stops on a non-finite loss or gradient norm (:class:`TrainingDiverged`, naming the
step and the settings to change) and, after training, refuses a model whose weights are not
finite or whose greedy next-token prediction is one and the same token at every answer position
of a sample of the retain (or training) items, unless ``train.allow_collapse=true``
(docs/run-format.md, "Checkpoints and resuming").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from obliviate.data.templates import Encoded

SAMPLE = 8  # items whose greedy predictions are checked


class TrainingDiverged(RuntimeError, ValueError):
    """Training diverged or the model collapsed; the message says where and what to change.

    A ``ValueError`` too, so that the command line prints its one line without a traceback."""


def _advice(lr: float, max_grad_norm: float) -> str:
    return (
        f"lower the learning rate (train.lr={lr:g}) or tighten gradient clipping "
        f"(train.max_grad_norm={max_grad_norm:g})"
    )


def diverged(desc: str, what: str, value: float, step: int, lr: float, clip: float) -> str:
    """The one-line message of a non-finite loss or gradient norm at ``step``."""
    return f"{desc}: the {what} became {value} at step {step}; {_advice(lr, clip)}"


def nonfinite_weight(model: Any) -> str | None:
    """The name of the first parameter holding NaN/inf, or ``None``."""
    import torch

    for name, p in model.named_parameters():
        if not bool(torch.isfinite(p.detach()).all()):
            return name
    return None


def constant_prediction(
    model: Any, items: Sequence[Encoded], pad_id: int, device: Any
) -> int | None:
    """The token predicted at every answer position of the first :data:`SAMPLE` items when it
    is one and the same (a collapsed model), else ``None``."""
    import torch

    from obliviate.data.collate import pad_batch

    sample = list(items[:SAMPLE])
    if not sample:
        return None
    batch = pad_batch([e.input_ids for e in sample], pad_id, [e.labels for e in sample])
    with torch.no_grad():
        logits = model(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
        ).logits
    pred = logits[:, :-1].argmax(-1).cpu()
    mask = batch["labels"][:, 1:] != -100
    chosen = pred[mask]
    if chosen.numel() < 2:
        return None
    first = int(chosen[0])
    return first if bool((chosen == first).all()) else None


def check_collapse(
    model: Any,
    items: Sequence[Encoded],
    pad_id: int,
    device: Any,
    desc: str,
    lr: float,
    clip: float,
) -> None:
    """Raise :class:`TrainingDiverged` when ``model`` collapsed (see the module docstring)."""
    bad = nonfinite_weight(model)
    if bad is not None:
        raise TrainingDiverged(
            f"{desc}: weight {bad} is NaN/inf after training, the model is not saved; "
            f"{_advice(lr, clip)}, or set train.allow_collapse=true to keep it"
        )
    token = constant_prediction(model, items, pad_id, device)
    if token is not None:
        raise TrainingDiverged(
            f"{desc}: the model collapsed (it predicts token {token} at every answer position "
            f"of {min(len(items), SAMPLE)} items), it is not saved; {_advice(lr, clip)}, or set "
            "train.allow_collapse=true to keep it"
        )
