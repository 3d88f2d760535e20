"""Preference-based forget objectives and presets (reference.md §2.2)."""

from __future__ import annotations

from typing import Any

from obliviate.config import TrainConfig
from obliviate.data.templates import Encoded
from obliviate.methods import functional as F
from obliviate.methods.base import MethodPreset, Term, UnlearnJob, forward, register_preset
from obliviate.methods.gradient import TINY_TRAIN
from obliviate.methods.reference import sequence_logprobs
from obliviate.registry import FORGET_TERMS


@FORGET_TERMS.register("npo", description="negative preference optimisation against pi_ref")
class NPOTerm(Term):
    """NPO (Zhang+ 2024, arXiv 2404.05868, eq. 3):
    L_f = −(2/β)·E log σ(−β·[log π_θ(y|x) − log π_ref(y|x)]), sequence-summed log-probs.

    log π_ref(y|x) of the fixed forget set is computed once in :meth:`setup` (P5)."""

    name = "npo"

    def __init__(self, beta: float = 0.1) -> None:
        self.beta = beta
        self.ref_logp: Any = None

    def setup(self, job: UnlearnJob, forget: list[Encoded], cfg: TrainConfig) -> None:
        self.ref_logp = sequence_logprobs(job.model, forget, job.tokenizer, cfg.batch_size)

    def __call__(self, model: Any, batch: dict, job: UnlearnJob) -> Any:
        lp, mask = F.token_logprobs(forward(model, batch).logits, batch["labels"])
        theta = F.sequence_logprob(lp, mask)
        ref = self.ref_logp.to(theta.device)[batch["index"]]
        return F.npo_loss(theta, ref, beta=self.beta)


NPO_PAPER = "Zhang+ 2024, arXiv 2404.05868"
register_preset(MethodPreset(
    "npo", "Negative preference optimisation + NLL on retain (NPO-RT, the TOFU/OU default)",
    NPO_PAPER, forget="npo", retain="nll", forget_params={"beta": 0.1}, train=TINY_TRAIN,
))
register_preset(MethodPreset(
    "npo_kl", "Negative preference optimisation + KL on retain (NPO-KL)",
    NPO_PAPER, forget="npo", retain="kl", forget_params={"beta": 0.1}, train=TINY_TRAIN,
))
