"""EUL: efficient unlearning with unlearning layers (Chen & Yang, "Unlearn What You Want to
Forget: Efficient Unlearning for LLMs", EMNLP 2023, arXiv 2310.20150; docs/methods.md).

1. A bottleneck *unlearning layer* is added after the FFN of every transformer block
   (:class:`obliviate.inference.eul_model.EULModel`); every original weight is frozen.
2. The layers are trained with the paper's objective (§3.1, eqs. 1-4,
   :func:`obliviate.methods.functional.eul_loss`): a selective teacher-student KL (stay close to
   the frozen model on D_r, move away from it on D_f), the task loss on D_r and the negated
   language-modelling loss on D_f.
3. Sequential requests (§3.2): given a saved EUL model (``--model runs/eul_a/model``) the new
   request trains a fresh layer on the same frozen base, and with ``fuse`` (default) the new
   and the earlier layers are fused in closed form, each linear map
   ``W_m = (Σ_i G_i)⁻¹ Σ_i G_i W_i`` with ``G_i`` the Gram matrix of its inputs on request i's
   forget data (:func:`~obliviate.methods.functional.fuse_linear`). ``fuse=false`` keeps only
   the new layer.

The result is an inference wrapper saved as a folder (base model + ``eul_layers.safetensors`` +
``eul_grams.safetensors`` + ``obliviate_wrapper.json``) that ``load_model`` loads.
"""

from __future__ import annotations

from typing import Any

from obliviate.config import TrainConfig
from obliviate.data.collate import pad_batch, pad_id_of
from obliviate.methods import functional as F
from obliviate.methods.base import MethodPreset, UnlearnJob, UnlearnOutput

EUL_PAPER = "Chen & Yang 2023 (EUL), arXiv 2310.20150"

# the layers start as the identity and are small: they take a larger step than full weights
EUL_TINY_TRAIN = {
    "lr": 1e-3,
    "epochs": 5,
    "batch_size": 8,
    "warmup_epochs": 0,
    "scheduler": "constant",
    "weight_decay": 0.0,
}


class EULMethod:
    """Builder object of the ``eul`` method (module docstring)."""

    def __init__(
        self,
        train: TrainConfig,
        bottleneck: int = 16,
        modules: str = r"\.\d+\.mlp$",
        alpha: float = 1.0,
        beta: float = 1.0,
        lam: float = 1.0,
        gamma: float = 1.0,
        fuse: bool = True,
        ridge: float = 1e-4,
        save_base: str = "copy",
    ) -> None:
        for name, value in (("alpha", alpha), ("beta", beta), ("lam", lam), ("gamma", gamma)):
            if value < 0:
                raise ValueError(f"eul {name} must be >= 0, got {value}")
        if ridge < 0:
            raise ValueError(f"eul ridge must be >= 0, got {ridge}")
        self.train, self.bottleneck, self.modules = train, bottleneck, modules
        self.alpha, self.beta, self.lam, self.gamma = alpha, beta, lam, gamma
        self.fuse, self.ridge, self.save_base = fuse, ridge, save_base

    def unlearn(self, job: UnlearnJob) -> UnlearnOutput:
        import torch

        from obliviate.inference.base import InferenceWrapper
        from obliviate.inference.eul_model import EULModel
        from obliviate.models.selection import is_peft_model
        from obliviate.seeding import seed_everything
        from obliviate.training import train_loop

        cfg = self.train
        previous: EULModel | None = None
        base, base_path = job.model, job.model_path
        if isinstance(base, EULModel):  # a later request: train on the same frozen base
            if self.fuse and base.bottleneck != self.bottleneck:
                raise ValueError(
                    f"the earlier EUL model has bottleneck {base.bottleneck}; train the new "
                    f"layer with the same size (bottleneck={base.bottleneck}) to fuse them"
                )
            previous, base, base_path = base, base.base, base.base_path
            previous.remove_hooks()
        elif isinstance(base, InferenceWrapper) or is_peft_model(base):
            raise ValueError(
                f"eul adds layers to a plain model or to an earlier EUL model, not to a "
                f"{type(base).__name__}; merge or save it as a plain model first"
            )
        forget = job.encode_items(job.request.forget, cfg.max_length)
        retain = (
            job.encode_items(job.request.retain, cfg.max_length) if job.request.retain else None
        )
        if (self.alpha or self.lam) and not retain:
            raise ValueError(
                "eul's objective has retain terms (alpha, lam) but the request has no retain "
                "set; give one or set alpha=0 lam=0"
            )
        seed_everything(cfg.seed)  # before the layers are created
        model = EULModel(
            base,
            job.tokenizer,
            job.template,
            self.bottleneck,
            previous.module_names if previous is not None else self.modules,
            base_path=base_path,
            save_base=self.save_base,
        )

        def loss_fn(m: Any, fb: dict, rb: dict | None, _step: int) -> tuple[Any, dict]:
            def run(b: dict) -> tuple[Any, Any]:
                with torch.no_grad(), model.layers_off():
                    ref = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
                out = m(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
                return out.logits, ref.logits

            zf, rf = run(fb)
            zr, rr = run(rb) if rb is not None and retain else (None, None)
            return F.eul_loss(
                zf,
                rf,
                fb["labels"],
                zr,
                rr,
                rb["labels"] if rb is not None else None,
                self.alpha,
                self.beta,
                self.lam,
                self.gamma,
            )

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
            desc="eul: training the unlearning layers",
            progress=job.progress,
            checkpoint_dir=job.checkpoint_dir("eul", cfg.checkpoint),
        )
        model.eval()
        pad = pad_id_of(job.tokenizer)
        size = max(1, cfg.batch_size)
        batches = [
            pad_batch([e.input_ids for e in forget[i : i + size]], pad)
            for i in range(0, len(forget), size)
        ]
        model.collect_grams(batches)
        info: dict[str, Any] = {"steps": result.steps, "train_s": result.wall_s}
        if previous is not None and self.fuse:
            model.fuse_with([previous], self.ridge)
        info.update(n_fused=model.n_fused, layers=len(model.layers), modules=model.module_names)
        job.model = model
        return UnlearnOutput(model, result.log, n_train, result.stopped, info)


def _build(train: TrainConfig, **options: Any) -> EULMethod:
    return EULMethod(train, **options)


EUL = MethodPreset(
    "eul",
    "EUL: bottleneck unlearning layers after each FFN (base frozen), selective KL + task - LM "
    "loss; fuses with an earlier EUL model's layers in closed form",
    EUL_PAPER,
    builder=_build,
    options={
        "bottleneck": 16,
        "modules": r"\.\d+\.mlp$",
        "alpha": 1.0,
        "beta": 1.0,
        "lam": 1.0,
        "gamma": 1.0,
        "fuse": True,
        "ridge": 1e-4,
        "save_base": "copy",
    },
    train=EUL_TINY_TRAIN,
)
