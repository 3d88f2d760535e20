"""Hyper-parameter presets of the diffusion erasers, by preset name then eraser name.

The paper defaults are each eraser's ``Config`` defaults (:mod:`obliviate.diffusion.methods`);
``preset="builtin"`` applies the settings tuned for the tiny built-in model (docs/diffusion.md).
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # The paper defaults are each Config's defaults; "paper" is listed for completeness.
    "paper": {},
    # The tiny built-in model (16 px, ~1 M parameters) learns fast and forgets fast: larger
    # learning rates, fewer generated images, pooled ESD trajectories, 25 sampling steps, and
    # the preservation term on for ESD and FMN (tuned on the default model: docs/diffusion.md).
    "builtin": {
        "esd-x": {
            "iterations": 200,
            "lr": 1e-3,
            "batch_size": 8,
            "pool_size": 64,
            "sample_steps": 25,
            "preserve_weight": 5.0,
        },
        "esd-u": {
            "iterations": 300,
            "lr": 1e-3,
            "batch_size": 8,
            "pool_size": 64,
            "sample_steps": 25,
            "negative_guidance": 6.0,
            "preserve_weight": 5.0,
        },
        "ca": {"steps": 300, "lr": 1e-3, "batch_size": 16, "anchor_images": 96, "sample_steps": 25},
        "uce": {},
        "salun": {
            "steps": 150,
            "lr": 5e-4,
            "batch_size": 16,
            "forget_images": 64,
            "retain_images": 128,
            "sample_steps": 25,
            "alpha": 0.5,
        },
        "erasediff": {
            "steps": 150,
            "lr": 5e-4,
            "inner_lr": 1e-3,
            "batch_size": 16,
            "forget_images": 64,
            "retain_images": 128,
            "sample_steps": 25,
        },
        "fmn": {
            "steps": 100,
            "lr": 3e-3,
            "batch_size": 16,
            "images": 32,
            "sample_steps": 25,
            "preserve_weight": 3.0,
        },
        "sa": {
            "steps": 150,
            "lr": 5e-4,
            "batch_size": 16,
            "fisher_samples": 64,
            "surrogate_images": 64,
            "replay_images": 128,
            "sample_steps": 25,
        },
        "spm": {
            "iterations": 200,
            "lr": 3e-3,
            "batch_size": 8,
            "pool_size": 64,
            "sample_steps": 25,
        },
    },
}
