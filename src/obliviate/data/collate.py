"""Padding collators. Attention masks come from padding positions, never from token identity
(docs/metrics.md), so pad = EOS tokenizers are safe."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from obliviate.data.templates import IGNORE


def pad_batch(
    sequences: Sequence[Sequence[int]],
    pad_id: int,
    labels: Sequence[Sequence[int]] | None = None,
    side: str = "right",
) -> dict[str, Any]:
    """Pad id lists to one tensor batch: ``input_ids``, ``attention_mask`` (and ``labels``)."""
    import torch

    if not sequences:
        raise ValueError("cannot collate an empty batch")
    width = max(len(s) for s in sequences)
    n = len(sequences)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    lab = torch.full((n, width), IGNORE, dtype=torch.long) if labels is not None else None
    for i, seq in enumerate(sequences):
        k = len(seq)
        sl = slice(width - k, width) if side == "left" else slice(0, k)
        ids[i, sl] = torch.tensor(list(seq), dtype=torch.long)
        mask[i, sl] = 1
        if lab is not None:
            lab[i, sl] = torch.tensor(list(labels[i]), dtype=torch.long)  # type: ignore[index]
    out = {"input_ids": ids, "attention_mask": mask}
    if lab is not None:
        out["labels"] = lab
    return out


def pad_id_of(tokenizer: Any) -> int:
    pid = tokenizer.pad_token_id
    if pid is None:
        pid = tokenizer.eos_token_id
    if pid is None:
        raise ValueError("tokenizer has neither a pad nor an EOS token")
    return int(pid)
