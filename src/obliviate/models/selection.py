"""Which parameters train: name-pattern selection and PEFT adapters (reference.md §2.4-2.5)."""

from __future__ import annotations

import re
from typing import Any


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
        raise ValueError(f"trainable pattern {pattern!r} matches no parameter; names look like: {examples}")
    return n


def apply_peft(model: Any, peft_config: dict[str, Any]) -> Any:
    """Wrap ``model`` with a LoRA (default) or other PEFT adapter built from a dict.

    ``{"type": "lora", "r": 8, "lora_alpha": 16, "target_modules": "all-linear"}``; other
    ``type`` values: any ``peft.PeftType`` name with a matching config class.
    """
    import peft

    cfg = dict(peft_config)
    kind = str(cfg.pop("type", "lora")).lower()
    classes = {"lora": peft.LoraConfig, "ia3": peft.IA3Config, "loha": peft.LoHaConfig, "lokr": peft.LoKrConfig}
    if kind not in classes:
        raise ValueError(f"unknown peft type {kind!r}; use one of {sorted(classes)}")
    cfg.setdefault("target_modules", "all-linear")
    cfg.setdefault("task_type", "CAUSAL_LM")
    if kind == "lora":
        cfg.setdefault("r", 8)
        cfg.setdefault("lora_alpha", 16)
    return peft.get_peft_model(model, classes[kind](**cfg))
