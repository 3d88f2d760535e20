"""One seeding call for every random stream a run uses (torch CPU and CUDA, numpy, python).

Methods call it before they create any parameter (a LoRA adapter, a head), so two runs with
one seed build identical weights; the trainer calls it again before training
(docs/run-format.md, "Checkpoints and resuming").
"""

from __future__ import annotations

import random


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and every CUDA device), numpy and python ``random`` with ``seed``."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
