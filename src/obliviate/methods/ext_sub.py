"""Ext-Sub: extraction-before-subtraction of an anti-expert adapter (Hu, Li, Hu, Zheng, Liu &
Zhang, "Separate the Wheat from the Chaff: Model Deficiency Unlearning via Parameter-Efficient
Module Operation", AAAI 2024, arXiv 2308.08090; docs/methods.md).

1. An *expert* LoRA adapter is trained on the retain set and an *anti-expert* LoRA adapter on
   the forget set (the NLL of each, from the same target, same LoRA settings and seed).
2. Each adapted weight's full updates ΔW⁺ = s·B⁺A⁺ and ΔW⁻ = s·B⁻A⁻ are formed; the anti-expert
   update keeps only its *deficiency* part, what is not shared with the expert: per row, the
   component along the bisector of the two rows is the common capability and is removed
   (§3, :func:`obliviate.methods.functional.ext_sub_deficiency`).
3. ΔW = ΔW⁺ − λ · deficiency (§3, :func:`~obliviate.methods.functional.ext_sub_update`) is added
   to the base weight. The deficiency has no low-rank form in general, so the result is a plain
   model (the authors' release stores the same full-rank update as a LoRA whose A is the
   identity).
"""

from __future__ import annotations

import copy
from typing import Any

from obliviate.config import TrainConfig
from obliviate.data.collate import pad_id_of
from obliviate.methods import functional as F
from obliviate.methods.base import MethodPreset, UnlearnJob, UnlearnOutput, forward

EXT_SUB_PAPER = "Hu+ AAAI 2024 (Ext-Sub), arXiv 2308.08090"

EXT_SUB_TINY_TRAIN = {
    "lr": 1e-3,
    "epochs": 5,
    "batch_size": 8,
    "warmup_epochs": 0,
    "scheduler": "constant",
    "weight_decay": 0.0,
}


def lora_updates(model: Any, adapter: str) -> dict[str, Any]:
    """``{module name: s·B·A}`` of one LoRA adapter of a PEFT model (float32 ``(out, in)``)."""
    from peft.tuners.lora import LoraLayer

    out: dict[str, Any] = {}
    for name, module in model.named_modules():
        if not isinstance(module, LoraLayer):
            continue
        mod: Any = module
        if adapter in getattr(mod, "lora_A", {}):
            if getattr(mod, "fan_in_fan_out", False):
                raise ValueError(f"ext_sub does not support fan_in_fan_out LoRA layers ({name})")
            a = mod.lora_A[adapter].weight.detach().float()
            b = mod.lora_B[adapter].weight.detach().float()
            out[name] = mod.scaling[adapter] * (b @ a)
    if not out:
        raise ValueError(f"the model has no LoRA layer of adapter {adapter!r}")
    return out


def apply_ext_sub(
    model: Any, expert: dict[str, Any], anti: dict[str, Any], scale: float = 1.0
) -> float:
    """Add ``ΔW⁺ − λ·deficiency(ΔW⁺, ΔW⁻)`` (:func:`~obliviate.methods.functional.ext_sub_update`)
    to the weight of every module named in ``expert`` (``{module name: full update}``, the same
    names in ``anti``), in place. Returns the norm of the removed deficiency over all modules."""
    import torch

    if set(expert) != set(anti):
        raise ValueError("the expert and anti-expert adapters adapt different modules")
    mods = dict(model.named_modules())
    sq = 0.0
    with torch.no_grad():
        for name, d_plus in expert.items():
            if name not in mods:
                raise ValueError(f"the model has no module {name!r} to apply Ext-Sub to")
            weight = mods[name].weight
            sq += float(F.ext_sub_deficiency(d_plus, anti[name]).double().pow(2).sum())
            weight.add_(F.ext_sub_update(d_plus, anti[name], scale).to(weight.dtype))
    return float(sq**0.5)


class ExtSubMethod:
    """Builder object of the ``ext_sub`` method (module docstring)."""

    def __init__(
        self, train: TrainConfig, scale: float = 1.0, peft: dict[str, Any] | None = None
    ) -> None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale < 0:
            raise ValueError(f"ext_sub scale (λ) must be a number >= 0, got {scale!r}")
        cfg = dict(peft or {})
        if str(cfg.get("type", "lora")).lower() != "lora" or cfg.get("use_dora"):
            raise ValueError("ext_sub works on LoRA adapters only (peft.type=lora, no DoRA)")
        if cfg.pop("merge", False):
            raise ValueError("ext_sub always saves a plain model; leave peft.merge unset")
        cfg.setdefault("bias", "none")
        if cfg["bias"] != "none":
            raise ValueError("ext_sub needs LoRA adapters without trained biases (bias='none')")
        self.train, self.scale, self.peft = train, float(scale), cfg

    def unlearn(self, job: UnlearnJob) -> UnlearnOutput:
        from obliviate.models.selection import apply_peft, is_peft_model
        from obliviate.seeding import seed_everything
        from obliviate.training import train_loop

        cfg = self.train
        if is_peft_model(job.model) or not hasattr(job.model, "named_parameters"):
            raise ValueError("ext_sub needs a plain model; merge its adapter first")
        if not job.request.retain:
            raise ValueError(
                "ext_sub trains its expert adapter on the retain set; give a retain set"
            )
        sets = {
            "expert": job.encode_items(job.request.retain, cfg.max_length),
            "anti_expert": job.encode_items(job.request.forget, cfg.max_length),
        }
        base = job.model
        grad_before = {n: p.requires_grad for n, p in base.named_parameters()}

        def nll(m: Any, batch: dict, _rb: Any, _step: int) -> tuple[Any, dict[str, float]]:
            loss = F.nll_loss(forward(m, batch).logits, batch["labels"])
            return loss, {"nll": float(loss.detach())}

        logs: list[dict[str, float]] = []
        steps: dict[str, int] = {}
        stopped: str | None = None
        model: Any = None
        for name, data in sets.items():
            seed_everything(cfg.seed)  # both adapters start from the same initialisation
            if model is None:
                model = apply_peft(base, self.peft, adapter_name=name)
            else:
                model.add_adapter(name, copy.deepcopy(model.peft_config["expert"]))
                model.set_adapter(name)
            for pname, p in model.named_parameters():
                p.requires_grad_(f".{name}." in pname and "lora_" in pname)
            log_path = job.run_dir / f"train_log_{name}.jsonl" if job.run_dir else None
            result = train_loop(
                model,
                nll,
                data,
                cfg,
                pad_id_of(job.tokenizer),
                accelerator=job.accelerator,
                log_path=log_path,
                desc=f"ext_sub: training the {name.replace('_', '-')} adapter",
                progress=job.progress,
                checkpoint_dir=job.checkpoint_dir(f"ext_sub_{name}", cfg.checkpoint),
            )
            logs += [{**row, f"{name}_stage": 1.0} for row in result.log]
            steps[name] = result.steps
            stopped = stopped or result.stopped
        expert, anti = lora_updates(model, "expert"), lora_updates(model, "anti_expert")
        n_train = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
        plain = model.unload()  # the base modules back, weights untouched so far
        prefix = "base_model.model."
        sq = apply_ext_sub(
            plain,
            {k.removeprefix(prefix): v for k, v in expert.items()},
            {k.removeprefix(prefix): v for k, v in anti.items()},
            self.scale,
        )
        for n, p in plain.named_parameters():
            p.requires_grad_(grad_before.get(n, True))
        job.model = plain
        info = {
            "expert_steps": steps.get("expert", 0),
            "anti_expert_steps": steps.get("anti_expert", 0),
            "scale": self.scale,
            "modules": len(expert),
            "deficiency_norm": sq,
        }
        return UnlearnOutput(plain, logs, n_train, stopped, info)


def _build(train: TrainConfig, **options: Any) -> ExtSubMethod:
    return ExtSubMethod(train, **options)


EXT_SUB = MethodPreset(
    "ext_sub",
    "Ext-Sub: expert LoRA on retain, anti-expert LoRA on forget; subtract only the anti-expert's "
    "part not shared with the expert (per-row bisector projection), merged into the weights",
    EXT_SUB_PAPER,
    builder=_build,
    options={"scale": 1.0, "peft": {"r": 8, "lora_alpha": 16}},
    train=EXT_SUB_TINY_TRAIN,
)
