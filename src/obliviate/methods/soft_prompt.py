"""Soft-prompt unlearning, SPUL (Bhaila, Van & Wu, "Soft Prompting for Unlearning in Large
Language Models", NAACL 2025, arXiv 2406.12038; docs/methods.md).

``n_tokens`` virtual token embeddings φ are prepended to every input of the frozen target
(:class:`obliviate.inference.soft_prompt.SoftPromptModel`) and trained with SPUL's loss
(§3, :func:`obliviate.methods.functional.spul_loss`):

    L = L_f(φ; D_f) + α · NLL(φ; D_r) + β · KL(F(x_r) ∥ F(φ; x_r))

L_f is a registered forget term run on the prompted model: by default ``idk``, the NLL of a
refusal answer, as the paper's cross-entropy towards a generic label. No weight of the model
changes: only φ trains, and the result is an inference wrapper (the untouched base + φ) that
evaluation and generation run with the prompt applied. The paper reparametrises φ with a small
MLP (P-tuning, their ``PromptEncoderConfig``); this is plain prompt tuning, φ trained directly.
"""

from __future__ import annotations

from typing import Any

from obliviate.config import TrainConfig
from obliviate.data.collate import pad_id_of
from obliviate.methods import functional as F
from obliviate.methods.base import MethodPreset, UnlearnJob, UnlearnOutput

SPUL_PAPER = "Bhaila, Van & Wu 2024 (SPUL), arXiv 2406.12038"

# prompt embeddings need a far larger step than weights (PEFT's prompt-tuning examples: 3e-2)
SPUL_TINY_TRAIN = {
    "lr": 1e-2,
    "epochs": 5,
    "batch_size": 8,
    "warmup_epochs": 0,
    "scheduler": "constant",
    "weight_decay": 0.001,
}


class SoftPromptUnlearning:
    """Builder object of the ``soft_prompt`` method (module docstring)."""

    def __init__(
        self,
        train: TrainConfig,
        n_tokens: int = 30,
        alpha: float = 0.5,
        beta: float = 0.5,
        forget: str = "idk",
        forget_params: dict[str, Any] | None = None,
        save_base: str = "copy",
    ) -> None:
        if alpha < 0 or beta < 0:
            raise ValueError(f"soft_prompt alpha and beta must be >= 0, got {alpha}, {beta}")
        self.train, self.n_tokens, self.alpha, self.beta = train, n_tokens, alpha, beta
        self.forget, self.forget_params = forget, dict(forget_params or {})
        self.save_base = save_base

    def unlearn(self, job: UnlearnJob) -> UnlearnOutput:
        import torch

        from obliviate.inference.base import InferenceWrapper
        from obliviate.inference.soft_prompt import SoftPromptModel
        from obliviate.methods.terms import make_term
        from obliviate.models.selection import is_peft_model
        from obliviate.registry import FORGET_TERMS
        from obliviate.seeding import seed_everything
        from obliviate.training import train_loop

        cfg = self.train
        if isinstance(job.model, InferenceWrapper) or is_peft_model(job.model):
            raise ValueError(
                f"soft_prompt needs a plain model, not a {type(job.model).__name__}; merge or "
                "save it as a plain model first"
            )
        term = make_term(FORGET_TERMS, self.forget, self.forget_params)
        forget = job.encode_items(job.request.forget, cfg.max_length)
        retain = (
            job.encode_items(job.request.retain, cfg.max_length) if job.request.retain else None
        )
        if (self.alpha or self.beta) and not retain:
            raise ValueError(
                "soft_prompt's loss has retain terms (alpha, beta) but the request has no retain "
                "set; give one or set alpha=0 beta=0"
            )
        if term.needs_reference:
            job.reference_model()
        term.setup(job, forget, cfg)
        seed_everything(cfg.seed)
        model = SoftPromptModel(
            job.model,
            job.tokenizer,
            job.template,
            self.n_tokens,
            seed=cfg.seed,
            base_path=job.model_path,
            save_base=self.save_base,
        )

        def loss_fn(m: Any, fb: dict, rb: dict | None, _step: int) -> tuple[Any, dict]:
            lf = term(m, fb, job)
            if rb is None or not retain:
                return F.spul_loss(lf)
            with torch.no_grad():
                ref = model(rb["input_ids"], rb["attention_mask"], prompt=False).logits
            zr = m(input_ids=rb["input_ids"], attention_mask=rb["attention_mask"]).logits
            return F.spul_loss(lf, zr, ref, rb["labels"], self.alpha, self.beta)

        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        log_path = job.run_dir / "train_log.jsonl" if job.run_dir else None
        result = train_loop(
            model,
            loss_fn,
            forget,
            cfg,
            pad_id_of(job.tokenizer),
            retain_set=retain,
            accelerator=job.accelerator,
            log_path=log_path,
            desc="soft prompt: training the prompt",
            progress=job.progress,
            checkpoint_dir=job.checkpoint_dir("soft_prompt", cfg.checkpoint),
        )
        model.eval()
        job.model = model
        info = {"steps": result.steps, "train_s": result.wall_s, "n_tokens": self.n_tokens}
        return UnlearnOutput(model, result.log, n_train, result.stopped, info)


def _build(train: TrainConfig, **options: Any) -> SoftPromptUnlearning:
    return SoftPromptUnlearning(train, **options)


SOFT_PROMPT = MethodPreset(
    "soft_prompt",
    "SPUL: 30 learned prompt embeddings before every input (no weight changes), refusal NLL on "
    "forget + 0.5 NLL + 0.5 KL to the unprompted model on retain",
    SPUL_PAPER,
    builder=_build,
    options={
        "n_tokens": 30,
        "alpha": 0.5,
        "beta": 0.5,
        "forget": "idk",
        "forget_params": {},
        "save_base": "copy",
    },
    train=SPUL_TINY_TRAIN,
)
