"""SalUn on LLMs (Fan et al. ICLR 2024, arXiv 2310.12508): random-answer fine-tuning on D_f +
NLL on D_r, with only the top 50% salient weights trainable (the mask is
:mod:`obliviate.methods.saliency`; docs/methods.md)."""

from __future__ import annotations

import random
from typing import Any

from obliviate.config import TrainConfig
from obliviate.data.collate import pad_id_of
from obliviate.data.templates import Encoded, encode
from obliviate.methods import functional as F
from obliviate.methods.base import MethodPreset, Term, UnlearnJob, forward
from obliviate.methods.gradient import TINY_TRAIN

SALUN_PAPER = "Fan+ ICLR 2024 (SalUn), arXiv 2310.12508"


class RandomAnswerTerm(Term):
    """Random-label fine-tuning for LLMs (SalUn's base loss, Fan+ 2024, arXiv 2310.12508, §4
    "random labelling"; the LLM form is LLMU's mismatch term, Yao+ 2023, arXiv 2310.10683):
    L_f = NLL(ỹ | x_f), token mean over the batch, where ỹ is the answer of another item.

    In :meth:`setup` every forget question gets one answer drawn (with ``seed``) from the
    answers of the retain set, or of the other forget items when there is no retain set,
    never its own answer text. The draw is fixed for the run (as SalUn's relabelling is).
    """

    description = "NLL of a mismatched (random) answer on D_f"
    name = "random_answer"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.encoded: list[Encoded] = []

    def setup(self, job: UnlearnJob, forget: list[Encoded], cfg: TrainConfig) -> None:
        items = job.request.forget
        pool = [it.answer for it in job.request.retain] or [it.answer for it in items]
        rng = random.Random(self.seed)
        self.encoded = []
        for _i, it in enumerate(items):
            choices = [a for a in pool if a != it.answer]
            if not choices:
                raise ValueError(
                    "random_answer needs at least one answer different from each forget answer: "
                    "give a retain set or more than one distinct forget answer"
                )
            wrong = rng.choice(choices)
            self.encoded.append(
                encode(job.tokenizer, it.question, wrong, job.template, cfg.max_length)
            )

    def saliency_loss(self, model: Any, batch: dict, job: UnlearnJob) -> Any:
        """SalUn's mask uses the loss of the *true* forget answers (|∇ NLL| = |∇ GA|), not the
        random-answer loss (paper eq. 5; ``generate_mask.py`` uses −CE on the true labels)."""
        return F.nll_loss(forward(model, batch).logits, batch["labels"])

    def __call__(self, model: Any, batch: dict, job: UnlearnJob) -> Any:
        from obliviate.training import collate_encoded

        idx = batch["index"].tolist()
        alt = collate_encoded([self.encoded[i] for i in idx], idx, pad_id_of(job.tokenizer))
        alt = {k: v.to(batch["input_ids"].device) for k, v in alt.items()}
        return F.nll_loss(forward(model, alt).logits, alt["labels"])


# --------------------------------------------------------------------------- the salun method

SALUN = MethodPreset(
    "salun",
    "SalUn: random-answer fine-tuning on forget + NLL on retain, only the top 50% salient weights",
    SALUN_PAPER,
    forget="random_answer",
    retain="nll",
    gamma=1.0,
    alpha=1.0,
    saliency=0.5,
    train=TINY_TRAIN,
)
