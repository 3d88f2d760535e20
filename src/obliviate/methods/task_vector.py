"""Task-vector negation (task arithmetic, Ilharco et al. ICLR 2023, arXiv 2212.04089;
docs/methods.md).

1. Fine-tune a copy of the target on the forget set with the plain NLL: θ_ft.
2. The task vector of the forget data is τ = θ_ft − θ_0 (paper §2, "task vectors").
3. Negation (paper §3): θ* = θ_0 − λ·τ.

Defaults follow MUSE's ``tv`` baseline (Shi+ 2024, arXiv 2407.06460): λ = 5.0 and integer
tensors skipped. The paper itself picks λ on held-out data (keeping control accuracy ≥ 95% of
the pre-trained model); tune ``scale`` the same way.

With ``peft`` the fine-tuning trains a LoRA adapter instead, whose update ΔW = s·B·A *is* the
task vector of the adapted weights; negation multiplies B by −λ, so the adapter now adds
−λ·ΔW (PEM negation, Zhang+ NeurIPS 2023, arXiv 2306.14870). The result is saved as an adapter,
or merged into the base weights with ``peft.merge=true``. Only LoRA (not DoRA, IA³...)
adapters can be negated this way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from obliviate.config import TrainConfig
from obliviate.data.collate import pad_id_of
from obliviate.methods import functional as F
from obliviate.methods.base import MethodPreset, UnlearnJob, UnlearnOutput, forward

TV_PAPER = "Ilharco+ ICLR 2023 (task arithmetic), arXiv 2212.04089"

# Tiny CPU models memorise the forget set already (its NLL is near 0), so the fine-tuning
# step must be large enough to move them; MUSE's real-model recipe is lr 1e-5 (override).
TV_TINY_TRAIN = {
    "lr": 1e-4,
    "epochs": 5,
    "batch_size": 8,
    "warmup_epochs": 0,
    "scheduler": "constant",
    "weight_decay": 0.0,
}


def negate_tensor(theta0: Any, theta_ft: Any, scale: float) -> Any:
    """θ_0 − λ·(θ_ft − θ_0) for one float tensor (computed in at least float32, returned in
    θ_0's dtype). Integer and bool tensors (counters, quantised weights, masks) have no
    meaningful difference: they are returned unchanged (θ_0), as MUSE's ``tv`` does."""
    import torch

    if theta0.shape != theta_ft.shape:
        raise ValueError(
            f"task vector shapes differ: {tuple(theta0.shape)} vs {tuple(theta_ft.shape)}"
        )
    if not theta0.is_floating_point():
        return theta0.clone()
    t0 = theta0.detach().to(torch.promote_types(theta0.dtype, torch.float32))
    tf = theta_ft.detach().to(t0.dtype)
    return (t0 - scale * (tf - t0)).to(theta0.dtype)


def negate_task_vector(
    theta0: Mapping[str, Any], theta_ft: Mapping[str, Any], scale: float = 5.0
) -> dict[str, Any]:
    """Task-vector negation over two state dicts: ``{name: θ_0 − λ·(θ_ft − θ_0)}``
    (Ilharco+ 2023, arXiv 2212.04089, §3). Both must have the same names and shapes; integer
    tensors are copied from ``theta0``."""
    if set(theta0) != set(theta_ft):
        only0 = sorted(set(theta0) - set(theta_ft))[:3]
        only1 = sorted(set(theta_ft) - set(theta0))[:3]
        raise ValueError(f"state dicts differ: only in θ_0 {only0}, only in θ_ft {only1}")
    return {k: negate_tensor(theta0[k], theta_ft[k], scale) for k in theta0}


class TaskVectorNegation:
    """Builder object of the ``task_vector`` method (see the module docstring)."""

    def __init__(
        self, train: TrainConfig, scale: float = 5.0, peft: dict[str, Any] | None = None
    ) -> None:
        if not isinstance(scale, (int, float)) or isinstance(scale, bool):
            raise ValueError(f"task_vector scale (λ) must be a number, got {scale!r}")
        self.train, self.scale, self.peft = train, float(scale), peft

    def unlearn(self, job: UnlearnJob) -> UnlearnOutput:
        import torch

        from obliviate.models.selection import apply_peft, finish_adapter, scale_lora
        from obliviate.seeding import seed_everything
        from obliviate.training import train_loop

        cfg = self.train
        forget = job.encode_items(job.request.forget, cfg.max_length)

        def nll(m: Any, batch: dict, _rb: Any, _step: int) -> tuple[Any, dict[str, float]]:
            lf = F.nll_loss(forward(m, batch).logits, batch["labels"])
            return lf, {"forget_nll": float(lf.detach())}

        seed_everything(cfg.seed)  # before the adapter is created
        if self.peft:
            model = apply_peft(job.model, self.peft)
            theta0 = None
        else:
            model = job.model
            theta0 = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        log_path = job.run_dir / "train_log.jsonl" if job.run_dir else None
        result = train_loop(
            model,
            nll,
            forget,
            cfg,
            pad_id_of(job.tokenizer),
            accelerator=job.accelerator,
            log_path=log_path,
            desc="task vector: fine-tuning on forget",
            progress=job.progress,
            checkpoint_dir=job.checkpoint_dir("task_vector", cfg.checkpoint),
        )
        sq = 0.0
        if self.peft:
            scale_lora(model, -self.scale)
            model = finish_adapter(model)
        else:
            with torch.no_grad():
                base = cast("dict[str, Any]", theta0)  # set when not self.peft
                for name, p in model.named_parameters():
                    if name in base:
                        sq += float((p.detach().float() - base[name].float()).pow(2).sum())
                        p.copy_(negate_tensor(base[name], p, self.scale))
        job.model = model
        info = {"finetune_steps": result.steps, "train_s": result.wall_s, "scale": self.scale}
        if not self.peft:
            info["task_vector_norm"] = sq**0.5
        return UnlearnOutput(model, result.log, n_train, result.stopped, info)


def _build(train: TrainConfig, **options: Any) -> TaskVectorNegation:
    return TaskVectorNegation(train, **options)


TASK_VECTOR = MethodPreset(
    "task_vector",
    "Task-vector negation: fine-tune on forget, then theta_0 - lambda*(theta_ft - theta_0)",
    TV_PAPER,
    builder=_build,
    options={"scale": 5.0, "peft": None},
    train=TV_TINY_TRAIN,
)
