"""Which items a training step sees, as pure functions of (seed, epoch, global position).

An epoch orders the main (forget or training) set by one permutation drawn from ``seed + epoch``
and cuts it into micro-batches of ``batch_size``; global micro-batch ``j`` covers positions
``j * batch_size ...`` of that order and rank ``r`` of ``world`` takes micro-batches
``r, r + world, ...``. The retain item paired with position ``p`` is
:func:`retain_index` ``(seed, epoch, p, n)``: an integer hash, not a generator stream, so it
does not depend on which rank holds ``p`` nor on how many processes there are. One process
with ``grad_accum = a * W`` and ``W`` processes with ``grad_accum = a`` (same ``batch_size``)
therefore draw the same forget and retain items for every optimiser step (docs/scale-out.md).
"""

from __future__ import annotations

__all__ = ["MicroBatch", "epoch_micro_batches", "retain_index", "splitmix64"]

_MASK = (1 << 64) - 1


def splitmix64(x: int) -> int:
    """The SplitMix64 output function of ``x`` (an unsigned 64-bit integer), from Steele, Lea
    and Flood, "Fast splittable pseudorandom number generators" (OOPSLA 2014): a bijection of
    64-bit integers whose outputs pass BigCrush when fed consecutive inputs."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def retain_index(seed: int, epoch: int, position: int, n: int) -> int:
    """The retain item (in ``range(n)``) paired with global ``position`` of ``epoch``: the
    chained SplitMix64 hash of ``(seed, epoch, position)`` reduced modulo ``n`` (the modulo bias
    is below n / 2**64)."""
    if n < 1:
        raise ValueError(f"cannot draw a retain item from an empty retain set (n={n})")
    h = splitmix64(seed & _MASK)
    h = splitmix64(h ^ (epoch & _MASK))
    h = splitmix64(h ^ (position & _MASK))
    return h % n


MicroBatch = list[tuple[int, int]]  # (global position in the epoch, item index)


def epoch_micro_batches(
    n_items: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1
) -> list[MicroBatch]:
    """This rank's micro-batches of ``epoch`` as ``(position, item)`` pairs.

    The order is ``torch.randperm(n_items)`` from a generator seeded with ``seed + epoch``. When
    the number of micro-batches is not a multiple of ``world``, full micro-batches continuing
    past the end (positions ``p >= n_items`` take item ``order[p % n_items]``) are added so
    that every rank takes the same number of steps."""
    import torch

    if n_items < 1:
        raise ValueError("nothing to train on (empty training/forget set)")
    order = torch.randperm(n_items, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    count = -(-n_items // batch_size)
    count += (-count) % world
    out = []
    for j in range(rank, count, world):
        start = j * batch_size
        end = start + batch_size if start + batch_size <= n_items or start >= n_items else n_items
        out.append([(p, order[p % n_items]) for p in range(start, end)])
    return out
