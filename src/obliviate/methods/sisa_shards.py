"""SISA's data layout (Bourtoule et al. IEEE S&P 2021, arXiv 1912.03817, §IV): the seeded
shard/slice assignment, the epochs of one incremental stage, the optimiser steps a plan takes and
the seed of each stage. Pure functions; :mod:`obliviate.methods.sisa` describes the method.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from obliviate.config import TrainConfig

SISA_PAPER = "Bourtoule+ IEEE S&P 2021 (SISA), arXiv 1912.03817"
FORMAT_VERSION = 1

# The tiny CPU default trains constituents from scratch (the tiny training recipe, smaller batches
# because a shard holds 1/S of the data).
SISA_TINY_TRAIN = {
    "lr": 3e-3,
    "epochs": 15,
    "batch_size": 8,
    "warmup_epochs": 0.0,
    "scheduler": "cosine",
    "weight_decay": 0.01,
}


# ----------------------------------------------------------------------------- pure helpers


def assign_shards(n_items: int, shards: int, slices: int, seed: int = 0) -> list[list[list[int]]]:
    """Random disjoint assignment of item ids ``0..n_items-1``: ``[shard][slice] -> ids``.

    A seeded permutation is cut into ``shards`` contiguous parts of near-equal size (sizes
    differ by at most 1), and each part into ``slices`` contiguous parts the same way.
    """
    if shards < 1 or slices < 1:
        raise ValueError(f"shards and slices must be >= 1, got {shards} and {slices}")
    if n_items < shards:
        raise ValueError(f"cannot split {n_items} items into {shards} shards")
    ids = list(range(n_items))
    random.Random(seed).shuffle(ids)
    return [[list(sl) for sl in _split(part, slices)] for part in _split(ids, shards)]


def _split(seq: Sequence[int], parts: int) -> list[list[int]]:
    q, r = divmod(len(seq), parts)
    out, start = [], 0
    for i in range(parts):
        size = q + (1 if i < r else 0)
        out.append(list(seq[start : start + size]))
        start += size
    return out


def stage_epochs(epochs: float, slices: int) -> float:
    """Epochs per slice stage, e' = 2e/(R+1) (Bourtoule+ 2021, §V): same total work as e
    epochs over the whole shard."""
    return 2.0 * float(epochs) / (slices + 1)


def planned_steps(n_items: int, cfg: TrainConfig) -> int:
    """Optimiser steps :func:`obliviate.training.train_loop` takes on ``n_items`` items in one
    process (0 for no items): ceil(epochs · ceil(ceil(n/batch)/accum)), or ``max_steps``."""
    if n_items <= 0:
        return 0
    per_epoch = max(1, math.ceil(math.ceil(n_items / cfg.batch_size) / cfg.grad_accum))
    return cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch))


def stage_seed(seed: int, shard: int, stage: int) -> int:
    return int(seed) * 1_000_003 + 1009 * (shard + 1) + stage
