"""Which parameters train: name-pattern selection and PEFT adapters (docs/methods.md).

Adapter helpers: :func:`apply_peft` wraps a model (``peft={"r": 8, "merge": true}``: the
``merge`` key is ours, the rest are ``peft`` config fields), :func:`finish_adapter` merges the
adapter into the base weights when ``merge`` was asked (call it after training, before
saving), :func:`merge_adapter` merges unconditionally and :func:`scale_lora` multiplies a LoRA
adapter's update ΔW = s·B·A by a factor (task-vector negation of an adapter).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

MERGE_FLAG = "obliviate_merge_adapter"
"""Attribute set on a model wrapped by :func:`apply_peft`: merge the adapter before saving."""


def select_trainable(model: Any, pattern: str) -> int:
    """Train only parameters whose name matches the regex ``pattern``; freeze the rest.

    Returns the number of trainable parameters; raises when nothing matches, listing examples.
    """
    rx = re.compile(pattern)
    n = 0
    for name, p in model.named_parameters():
        on = bool(rx.search(name))
        p.requires_grad_(on)
        n += p.numel() if on else 0
    if n == 0:
        examples = ", ".join(name for name, _ in list(model.named_parameters())[:6])
        raise ValueError(
            f"trainable pattern {pattern!r} matches no parameter; names look like: {examples}"
        )
    return n


def apply_peft(model: Any, peft_config: dict[str, Any], adapter_name: str = "default") -> Any:
    """Wrap ``model`` with a LoRA (default) or other PEFT adapter built from a dict.

    ``{"type": "lora", "r": 8, "lora_alpha": 16, "target_modules": "all-linear"}``; other
    ``type`` values: any ``peft.PeftType`` name with a matching config class. ``"merge": true``
    marks the result so that :func:`finish_adapter` merges the trained adapter into the base
    weights (``merge_and_unload``): the run then saves a plain model instead of an adapter.
    A base model loaded from a local folder is recorded in the adapter config by its absolute
    path, so the saved adapter loads from any working directory.
    """
    import peft

    cfg = dict(peft_config)
    merge = cfg.pop("merge", False)
    if not isinstance(merge, bool):
        raise ValueError(f"peft.merge must be true or false, got {merge!r}")
    kind = str(cfg.pop("type", "lora")).lower()
    classes = {
        "lora": peft.LoraConfig,
        "ia3": peft.IA3Config,
        "loha": peft.LoHaConfig,
        "lokr": peft.LoKrConfig,
    }
    if kind not in classes:
        raise ValueError(f"unknown peft type {kind!r}; use one of {sorted(classes)}")
    cfg.setdefault("target_modules", "all-linear")
    cfg.setdefault("task_type", "CAUSAL_LM")
    if kind == "lora":
        cfg.setdefault("r", 8)
        cfg.setdefault("lora_alpha", 16)
    wrapped = peft.get_peft_model(model, classes[kind](**cfg), adapter_name=adapter_name)
    base_path = getattr(model, "name_or_path", None)
    if base_path and Path(base_path).is_dir():
        for adapter_cfg in wrapped.peft_config.values():
            adapter_cfg.base_model_name_or_path = str(Path(base_path).resolve())
    setattr(wrapped, MERGE_FLAG, merge)
    return wrapped


def is_peft_model(model: Any) -> bool:
    """True for a ``peft.PeftModel`` (without importing peft when it is not loaded)."""
    import sys

    peft = sys.modules.get("peft")
    return peft is not None and isinstance(getattr(model, "module", model), peft.PeftModel)


def merge_adapter(model: Any) -> Any:
    """Fold a PEFT adapter into the base weights (``merge_and_unload``) and return the plain
    base model; any other model is returned unchanged. The merged model saves as an ordinary
    ``save_pretrained`` folder (config.json + model.safetensors)."""
    model = getattr(model, "module", model)
    if not is_peft_model(model):
        return model
    return model.merge_and_unload()


def finish_adapter(model: Any) -> Any:
    """After training: merge the adapter when :func:`apply_peft` was given ``merge: true``."""
    if getattr(getattr(model, "module", model), MERGE_FLAG, False):
        return merge_adapter(model)
    return model


def scale_lora(model: Any, factor: float, adapter: str = "default") -> int:
    """Multiply the update of LoRA ``adapter`` by ``factor`` in place: W + s·B·A becomes
    W + factor·s·B·A (only B is scaled, which is exact because ΔW is linear in B).

    ``factor = -λ`` negates a LoRA task vector (PEM negation, Zhang+ 2023, arXiv 2306.14870).
    Returns the number of scaled tensors; raises for non-LoRA adapters and DoRA, whose
    update is not linear in B.
    """
    import torch

    model = getattr(model, "module", model)
    if not is_peft_model(model):
        raise ValueError("scale_lora needs a PEFT model with a LoRA adapter")
    cfg = model.peft_config.get(adapter)
    if cfg is None:
        raise ValueError(f"no adapter named {adapter!r}; adapters: {sorted(model.peft_config)}")
    if str(getattr(cfg, "peft_type", "")).split(".")[-1].upper() != "LORA":
        raise ValueError(f"scale_lora works on LoRA adapters only, {adapter!r} is {cfg.peft_type}")
    if getattr(cfg, "use_dora", False):
        raise ValueError("scale_lora cannot negate a DoRA adapter (its update is not linear in B)")
    if getattr(cfg, "bias", "none") != "none":
        raise ValueError("scale_lora needs a LoRA adapter without trained biases (bias='none')")
    n = 0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if f"lora_B.{adapter}." in name or name.endswith(f"lora_embedding_B.{adapter}"):
                p.mul_(factor)
                n += 1
    if n == 0:
        raise ValueError(f"adapter {adapter!r} has no LoRA B matrices to scale")
    return n
