"""Early stopping inside an unlearning run (docs/sweep.md, "Early stopping").

Every ``every`` optimiser steps :class:`EarlyStopper` runs ONE teacher-forced scoring pass over
a small fixed sample of the forget, holdout and retain sets and derives the cheap criteria
from it: the LOSS-attack AUC between forget and holdout (Yeom+ 2018, arXiv 1709.01604; the
orientation of :func:`obliviate.metrics.mia.auc`, 0.5 = the forget set looks never seen) and
the mean answer probabilities exp(-NLL_avg) (TOFU's Probability, Maini+ 2024, arXiv
2401.06121). :class:`StopTracker` is the decision logic, a pure function of the sequence of
measurements: it keeps the best step, stops after ``patience`` checks without improvement, and
stops at once when the retain probability drops below ``min_retain`` x its initial value
(over-unlearning damages the retain set first; docs/sweep.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from obliviate.config import EarlyStopConfig


def criterion_value(criterion: str, m: dict[str, float]) -> float:
    """The value a criterion minimises from one measurement: ``mia`` = |AUC - 0.5|,
    ``forget_prob_gap`` = |forget prob - holdout prob|."""
    if criterion == "mia":
        return abs(m["mia_auc"] - 0.5)
    if criterion == "forget_prob_gap":
        return abs(m["forget_prob"] - m["holdout_prob"])
    raise ValueError(f"unknown early-stopping criterion {criterion!r}: use mia or forget_prob_gap")


@dataclass
class Decision:
    improved: bool  # this step is the new best: keep its state
    stop: str | None = None  # why training should stop now (None: go on)


@dataclass
class StopTracker:
    """The stopping rule over a sequence of (step, measurement) pairs, step 0 first."""

    cfg: EarlyStopConfig
    baseline_retain: float | None = None
    best: float = math.inf
    best_step: int | None = None
    bad: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    def update(self, step: int, m: dict[str, float]) -> Decision:
        value = criterion_value(self.cfg.criterion, m)
        self.history.append({"step": step, "criterion": value, **m})
        if self.baseline_retain is None:
            self.baseline_retain = m["retain_prob"]
        floor = self.cfg.min_retain * self.baseline_retain
        if m["retain_prob"] < floor:
            return Decision(
                False,
                f"retain probability {m['retain_prob']:.3f} fell below {self.cfg.min_retain:g} x "
                f"its initial {self.baseline_retain:.3f} at step {step}",
            )
        if value < self.best - self.cfg.min_delta:
            self.best, self.best_step, self.bad = value, step, 0
            return Decision(True)
        self.bad += 1
        if self.bad >= self.cfg.patience:
            return Decision(
                False,
                f"{self.cfg.criterion} did not improve for {self.bad} checks "
                f"(best {self.best:.4f} at step {self.best_step})",
            )
        return Decision(False)


def fixed_sample(n_items: int, k: int) -> list[int]:
    """``min(k, n)`` indices spread evenly over ``range(n)``: the same sample at every check."""
    if n_items <= k:
        return list(range(n_items))
    return [i * n_items // k for i in range(k)]


def item_nll(logits: Any, labels: Any) -> Any:
    """Per-item mean NLL over the answer tokens, ``(B,)``: the logits at t predict labels[t+1]
    (docs/methods.md conventions); an item without answer tokens gives NaN."""
    import torch

    from obliviate.methods.likelihood_losses import IGNORE_INDEX

    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logp.gather(-1, targets.clamp_min(0)[..., None])[..., 0]
    total = -(picked * mask).sum(1)
    count = mask.sum(1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, math.nan))


class EarlyStopper:
    """Measures the criteria on a fixed sample and drives a :class:`StopTracker`; keeps a copy
    of the trainable weights of the best step and restores it at the end."""

    def __init__(
        self,
        cfg: EarlyStopConfig,
        forget: Sequence[Any],
        holdout: Sequence[Any],
        retain: Sequence[Any],
        pad_id: int,
    ) -> None:
        if not holdout:
            raise ValueError(
                "train.early_stop needs a holdout set (never-trained items of the forget "
                "distribution): give --holdout or use a benchmark that has one"
            )
        if not retain:
            raise ValueError("train.early_stop needs a retain set to watch the retain probability")
        self.cfg = cfg
        self.pad_id = pad_id
        self.parts = {
            name: [items[i] for i in fixed_sample(len(items), cfg.sample)]
            for name, items in (("forget", forget), ("holdout", holdout), ("retain", retain))
        }
        self.tracker = StopTracker(cfg)
        self.best_state: dict[str, Any] | None = None
        self.last: dict[str, float] = {}
        self.stopped: str | None = None
        self.last_step = 0
        self.final_note: str | None = None

    def measure(self, model: Any) -> dict[str, float]:
        """One scoring pass over the three samples (batched together)."""
        import torch

        from obliviate.data.collate import pad_batch
        from obliviate.metrics.mia import auc
        from obliviate.scoring import model_device

        items = [e for name in ("forget", "holdout", "retain") for e in self.parts[name]]
        was_training = model.training
        model.eval()
        nll: list[float] = []
        device = model_device(model)
        with torch.no_grad():
            for i in range(0, len(items), 32):
                chunk = items[i : i + 32]
                batch = pad_batch(
                    [e.input_ids for e in chunk], self.pad_id, [e.labels for e in chunk]
                )
                logits = model(
                    input_ids=batch["input_ids"].to(device),
                    attention_mask=batch["attention_mask"].to(device),
                ).logits
                nll.extend(item_nll(logits, batch["labels"].to(device)).tolist())
        if was_training:
            model.train()
        n_f, n_h = len(self.parts["forget"]), len(self.parts["holdout"])
        f, h, r = nll[:n_f], nll[n_f : n_f + n_h], nll[n_f + n_h :]
        return summarise(f, h, r, auc)

    def check(self, model: Any, step: int) -> str | None:
        """Measure at ``step`` (0 = before training); the reason to stop, or None."""
        m = self.measure(model)
        self.last = {f"es_{k}": v for k, v in m.items()}
        self.last_step = step
        decision = self.tracker.update(step, m)
        self.last["es_criterion"] = self.tracker.history[-1]["criterion"]
        if decision.improved and self.cfg.restore:
            self.best_state = {
                k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad
            }
        if decision.stop:
            self.stopped = decision.stop
        return decision.stop

    def finish(self, model: Any, step: int) -> str | None:
        """At the end of training (``step`` = the steps taken): a final state that was never
        measured is measured first (unless training was stopped); with ``restore`` the best
        state is put back. Returns the run's stop record as one sentence (or None)."""
        import torch

        if self.stopped is None and step != self.last_step:
            self.check(model, step)
        best = self.tracker.best_step
        note = self.stopped
        if self.cfg.restore and best is not None and best != step and self.best_state:
            params = dict(model.named_parameters())
            with torch.no_grad():
                for k, v in self.best_state.items():
                    params[k].copy_(v)
            restored = f"restored the best state (step {best}, {self.cfg.criterion} "
            restored += f"{self.tracker.best:.4f})"
            note = f"{note}; {restored}" if note else restored
        self.final_note = note
        return note

    def record(self) -> dict[str, Any]:
        """What the run record (method.json) keeps: settings, history, best step, reason."""
        from dataclasses import asdict

        return {
            "settings": asdict(self.cfg),
            "best_step": self.tracker.best_step,
            "best": None if self.tracker.best_step is None else self.tracker.best,
            "stopped": self.stopped,
            "note": self.final_note,
            "history": self.tracker.history,
        }


def summarise(
    forget_nll: Sequence[float],
    holdout_nll: Sequence[float],
    retain_nll: Sequence[float],
    auc_fn: Any = None,
) -> dict[str, float]:
    """The criteria from per-item NLLs: ``mia_auc`` (LOSS attack, score = NLL, forget vs
    holdout), and the mean probabilities exp(-NLL) of each set (NaN items count as 0)."""
    if auc_fn is None:
        from obliviate.metrics.mia import auc as auc_fn

    def prob(values: Sequence[float]) -> float:
        ps = [math.exp(-v) if math.isfinite(v) else 0.0 for v in values]
        return sum(ps) / len(ps)

    def score(values: Sequence[float]) -> list[float]:
        return [v if math.isfinite(v) else math.inf for v in values]

    return {
        "mia_auc": float(auc_fn(score(forget_nll), score(holdout_nll))),
        "forget_prob": prob(forget_nll),
        "holdout_prob": prob(holdout_nll),
        "retain_prob": prob(retain_nll),
    }
