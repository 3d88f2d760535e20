"""Second-moment statistics of MLP keys, C = E[k kᵀ] (ROME eq. 2 / MEMIT eq. 14).

ROME and MEMIT estimate C on 100,000 Wikipedia tokens; here the texts are the retain set (its
prompts and answers, as the model sees them) or any generic text file, one document per line.
Every real (non-padding) token position contributes one key; the estimate is uncentred.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch

from obliviate.data.collate import pad_batch, pad_id_of
from obliviate.editing.arch import EditableModel, collect_inputs


def second_moment(keys: torch.Tensor) -> torch.Tensor:
    """C = (1/n)·Σ_i k_i k_iᵀ for keys (n, d) -> (d, d), float64 accumulation."""
    if keys.dim() != 2 or keys.shape[0] == 0:
        raise ValueError(f"keys must be a non-empty (n, d) matrix, got shape {tuple(keys.shape)}")
    k = keys.double()
    return (k.T @ k) / k.shape[0]


def read_text_lines(path: str | Path) -> list[str]:
    from obliviate.data.types import DataError

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"statistics text file {p} does not exist (one document per line)")
    lines = [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{p}: no text found (expected one document per line)")
    return lines


@torch.no_grad()
def key_second_moments(
    model: Any,
    tokenizer: Any,
    sequences: Sequence[Sequence[int]],
    layers: Sequence[int],
    max_tokens: int = 100_000,
    batch_size: int = 32,
) -> dict[int, torch.Tensor]:
    """C_l for each layer in ``layers`` over the real tokens of ``sequences`` (token ids),
    stopping after ``max_tokens`` tokens."""
    from obliviate.scoring import model_device

    ed = EditableModel(model)
    device = model_device(model)
    pad = pad_id_of(tokenizer)
    sums: dict[int, torch.Tensor | None] = {layer: None for layer in layers}
    count = 0
    seqs = [list(s) for s in sequences if len(s)]
    if not seqs:
        raise ValueError("no text to estimate key statistics on")
    for i in range(0, len(seqs), batch_size):
        if count >= max_tokens:
            break
        b = pad_batch(seqs[i : i + batch_size], pad)
        store: dict[int, list[torch.Tensor]] = {}
        mask = b["attention_mask"].to(device)
        with collect_inputs({layer: ed.down(layer) for layer in layers}, mask, store):
            model(input_ids=b["input_ids"].to(device), attention_mask=mask)
        n = int(mask.sum())
        take = min(n, max_tokens - count)
        for layer in layers:
            k = store[layer][0][:take].double()
            s = k.T @ k
            prev = sums[layer]
            sums[layer] = s if prev is None else prev + s
        count += take
    return {layer: (cast(torch.Tensor, s) / count).float() for layer, s in sums.items()}
