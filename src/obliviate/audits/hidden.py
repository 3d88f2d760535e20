"""Hidden-state features for the linear probe: one vector per (question, answer) pair.

The feature of a pair is the mean, over the answer tokens (EOS excluded), of the hidden state
that a chosen layer outputs at those tokens' positions: ``hidden_states[layer]`` of a Hugging
Face model run with ``output_hidden_states=True`` (index 0 = the embeddings, i = the output of
decoder block i). Teacher-forced, right-padded batches; padding never enters the mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from obliviate.data.collate import pad_batch, pad_id_of
from obliviate.data.templates import IGNORE, PromptTemplate, encode


def num_layers(model: Any) -> int:
    """Number of decoder blocks (``config.num_hidden_layers``)."""
    cfg = getattr(model, "config", None)
    n = getattr(cfg, "num_hidden_layers", None)
    if not n:
        raise ValueError(
            f"the linear probe needs a transformer with config.num_hidden_layers; "
            f"a {type(model).__name__} has none"
        )
    return int(n)


def answer_hidden_states(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    template: PromptTemplate,
    layer: int,
    batch_size: int = 32,
    max_length: int = 512,
) -> np.ndarray:
    """Mean answer-token hidden state of each pair at ``layer``: array (n_pairs, hidden)."""
    import torch

    from obliviate.scoring import model_device

    if not pairs:
        raise ValueError("answer_hidden_states: no pairs given")
    n_layers = num_layers(model)
    if not 0 <= layer <= n_layers:
        raise ValueError(f"probe layer must be in [0, {n_layers}] for this model, got {layer}")
    encoded = [encode(tokenizer, q, a, template, max_length=max_length) for q, a in pairs]
    pad = pad_id_of(tokenizer)
    device = model_device(model)
    feats: list[np.ndarray] = []
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start : start + batch_size]
            batch = pad_batch([e.input_ids for e in chunk], pad, [e.labels for e in chunk])
            out = model(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
                output_hidden_states=True,
            )
            hs = getattr(out, "hidden_states", None)
            if hs is None:
                raise ValueError(f"a {type(model).__name__} does not return hidden states")
            h = hs[layer].float().cpu()
            mask = batch["labels"] != IGNORE  # answer tokens at their own input positions
            for j, e in enumerate(chunk):
                m = mask[j].clone()
                if e.has_eos:
                    m[len(e.input_ids) - 1] = False
                if not bool(m.any()):
                    raise ValueError(
                        f"pair {start + j}: no answer token to read a hidden state from"
                    )
                feats.append(h[j][m].mean(0).numpy().astype(np.float64))
    return np.stack(feats)
