"""Who's Harry Potter, training variant (Eldan & Russinovich 2023, arXiv 2310.02238; docs/methods.md).

1. *Reinforced model*: a copy of the target fine-tuned further on the forget set (NLL), so that it
   becomes even more confident about the forget-specific tokens.
2. *Generic predictions*: ``v_generic = v_base − α·ReLU(v_reinforced − v_base)`` on the logits
   (:func:`functional.whp_generic_logits`), with the untouched target as the base: the tokens
   the reinforcement boosted are pushed down, the rest is unchanged.
3. *Fine-tune the target towards the generic predictions* on the forget set.

Step (3) of the paper, replacing idiosyncratic terms by generic ones through an LLM-built
dictionary of "anchored terms", is not implemented: it needs an external language model and a
dictionary per forget topic. The inference-time variant (a two-model logit wrapper) belongs to
``obliviate.inference``.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from obliviate.config import TrainConfig
from obliviate.data.collate import pad_id_of
from obliviate.data.templates import Encoded
from obliviate.methods import functional as F
from obliviate.methods.base import MethodPreset, Term, UnlearnJob, forward
from obliviate.methods.gradient import TINY_TRAIN, AnswerLogits, model_vocab
from obliviate.methods.job import _unwrap


class WHPTerm(Term):
    """Fine-tune towards WHP's generic predictions on the forget set (arXiv 2310.02238).

    Parameters (paper symbols in brackets):

    - ``generic_alpha`` [α]: strength of the correction, ``v_base − α·ReLU(v_reinf − v_base)``
      (1 in MUSE's implementation). Named so that it is not confused with the retain weight.
    - ``reinforce_epochs``, ``reinforce_lr``: the further fine-tuning of the reinforced copy on
      the forget set (NLL, the run's other training settings; ``reinforce_lr`` None = ``train.lr``).
    - ``labels``: ``"soft"`` (default) distils towards the whole generic distribution,
      ``τ²·KL(softmax(v_generic/τ) ∥ softmax(z_θ/τ))`` per answer position
      (:func:`functional.distillation_loss`, τ = ``temperature``); ``"hard"`` is the paper's
      fine-tuning on the generic labels argmax_v v_generic with NLL. Both are means over the
      answer positions of the batch.
    - ``cache_mb``: the generic logits of the fixed forget set are computed once and kept at the
      answer positions (Σ n_i · V floats) when they fit in this many MiB; otherwise the base
      (the frozen reference) and the reinforced model run on every step.
    """

    description = "Who's Harry Potter: fit generic predictions base - a*relu(reinforced - base)"

    name = "whp"

    def __init__(
        self,
        generic_alpha: float = 1.0,
        reinforce_epochs: float = 3.0,
        reinforce_lr: float | None = None,
        labels: str = "soft",
        temperature: float = 1.0,
        cache_mb: float = 1024.0,
    ) -> None:
        if labels not in ("soft", "hard"):
            raise ValueError(f"labels must be 'soft' or 'hard', got {labels!r}")
        if generic_alpha < 0:
            raise ValueError(f"generic_alpha must be >= 0, got {generic_alpha}")
        if reinforce_epochs <= 0:
            raise ValueError(f"reinforce_epochs must be > 0, got {reinforce_epochs}")
        self.generic_alpha, self.labels, self.temperature = generic_alpha, labels, temperature
        self.reinforce_epochs, self.reinforce_lr, self.cache_mb = (
            reinforce_epochs,
            reinforce_lr,
            cache_mb,
        )
        self.cache: AnswerLogits | None = None
        self.reinforced: Any = None
        self.reinforce_log: list[dict[str, float]] = []

    def reinforce(self, job: UnlearnJob, forget: list[Encoded], cfg: TrainConfig) -> Any:
        """A copy of the target fine-tuned further on the forget set (step 1)."""
        from obliviate.training import train_loop

        model = copy.deepcopy(_unwrap(job.model))
        for p in model.parameters():
            p.requires_grad_(True)
        rcfg = replace(
            cfg,
            lr=float(self.reinforce_lr or cfg.lr),
            epochs=float(self.reinforce_epochs),
            max_steps=None,
            retain_guard=None,
        )

        def nll(m: Any, batch: dict, _rb: Any, _step: int) -> tuple[Any, dict[str, float]]:
            return F.nll_loss(forward(m, batch).logits, batch["labels"]), {}

        result = train_loop(
            model,
            nll,
            forget,
            rcfg,
            pad_id_of(job.tokenizer),
            accelerator=job.accelerator,
            desc="whp reinforce",
            progress=job.progress,
            checkpoint_dir=job.checkpoint_dir("whp_reinforce", cfg.checkpoint),
            keep_checkpoint=True,
        )
        self.reinforce_log = result.log
        model = _unwrap(model)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    def setup(self, job: UnlearnJob, forget: list[Encoded], cfg: TrainConfig) -> None:
        from obliviate.scoring import model_device

        reinforced = self.reinforce(job, forget, cfg)
        base = job.model
        if AnswerLogits.size_mb(forget, model_vocab(base)) > self.cache_mb:
            self.reinforced = reinforced
            job.reference_model()
            return
        was = base.training
        base.eval()
        device = model_device(base)
        reinforced.to(device)
        self.cache = AnswerLogits.compute(
            lambda b: F.whp_generic_logits(
                forward(base, b).logits, forward(reinforced, b).logits, self.generic_alpha
            ),
            forget,
            pad_id_of(job.tokenizer),
            device,
            cfg.batch_size,
        )
        base.train(was)

    def generic(self, batch: dict, logits: Any, job: UnlearnJob) -> Any:
        """Generic logits ``(B, T, V)`` for the batch (valid at answer positions)."""
        import torch

        from obliviate.scoring import model_device

        if self.cache is not None:
            return self.cache.for_batch(batch["index"], batch["labels"], logits)
        ref = job.reference_model()
        with torch.no_grad():
            b = {k: v.to(model_device(ref)) for k, v in batch.items()}
            out = F.whp_generic_logits(
                forward(ref, b).logits, forward(self.reinforced, b).logits, self.generic_alpha
            )
        return out.to(logits.device)

    def __call__(self, model: Any, batch: dict, job: UnlearnJob) -> Any:
        logits = forward(model, batch).logits
        generic = self.generic(batch, logits, job)
        if self.labels == "soft":
            return F.distillation_loss(logits, generic, batch["labels"], self.temperature)
        _, _, mask = F.shift_labels(logits, batch["labels"])
        hard = batch["labels"].clone()
        hard[:, 1:][mask] = generic[:, :-1][mask].argmax(-1)
        return F.nll_loss(logits, hard)


WHP = MethodPreset(
    "whp",
    "Who's Harry Potter (training): distil the target towards base - alpha*relu(reinforced "
    "- base) on the forget set, the reinforced model fine-tuned further on it",
    "Eldan & Russinovich 2023, arXiv 2310.02238",
    forget="whp",
    retain=None,
    gamma=1.0,
    train=TINY_TRAIN,
)
