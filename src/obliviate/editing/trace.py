"""Causal tracing to locate the layer that stores a fact (Meng+ 2022, arXiv 2202.05262, §2.1).

For a prompt x with subject tokens S and answer y, with P̄(y|x) = exp(−NLL_avg) the per-token
normalised answer probability:

1. clean run: P_clean, and every layer's MLP output at the subject's last token;
2. corrupted run: Gaussian noise of standard deviation ν = ``noise``·std(embedding matrix)
   is added to the input embeddings of S (ROME uses 3× the subject embeddings' std):
   P_corrupt;
3. restored run, per layer l: the corrupted run with the MLP outputs of layers
   [l − ⌊w/2⌋, l + ⌈w/2⌉) at the subject's last token set back to their clean values:
   P_restored(l).

The indirect effect of layer l's MLP is IE(l) = P_restored(l) − P_corrupt, averaged over
``samples`` noise draws (the same draws for every l) and over the traced items. The edit layer
is argmax_l IE(l).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from obliviate.editing.arch import EditableModel, capture_io, patch_output


def answer_probability(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """P̄(y|x) = exp(mean_t log p(y_t | x, y_<t)) per row (B,), over the answer mask."""
    from obliviate.methods import functional as F

    lp, mask = F.token_logprobs(logits, labels)
    n = mask.sum(-1).clamp_min(1)
    return torch.exp(F.sequence_logprob(lp, mask) / n)


def indirect_effects(p_restored: np.ndarray, p_corrupt: np.ndarray) -> np.ndarray:
    """IE(l) = mean over draws of P_restored(l) − P_corrupt; inputs (L, S) and (S,) -> (L,)."""
    return (np.asarray(p_restored) - np.asarray(p_corrupt)[None, :]).mean(axis=1)


def window(layer: int, width: int, n_layers: int) -> list[int]:
    lo = max(0, layer - width // 2)
    return list(range(lo, min(n_layers, lo + max(1, width))))


@contextlib.contextmanager
def _noised_embeddings(
    embedding: Any, first: int, last: int, noise: torch.Tensor
) -> Iterator[None]:
    """Add ``noise`` (S, last-first+1, d) to rows' embeddings at positions first..last."""

    def post(_m: Any, _args: tuple, out: torch.Tensor) -> torch.Tensor:
        out = out.clone()
        out[:, first : last + 1] = out[:, first : last + 1] + noise.to(out.dtype)
        return out

    h = embedding.register_forward_hook(post)
    try:
        yield
    finally:
        h.remove()


@torch.no_grad()
def trace_item(
    model: Any,
    tokenizer: Any,
    input_ids: Sequence[int],
    labels: Sequence[int],
    subject_first: int,
    subject_last: int,
    noise: float = 3.0,
    samples: int = 5,
    width: int = 1,
    seed: int = 0,
    restore_pos: int | None = None,
) -> dict[str, Any]:
    """Causal trace of one (prompt + answer) sequence; returns P_clean, P_corrupt (S,),
    P_restored (L, S) and IE (L,). MLP outputs are restored at ``restore_pos`` (default: the
    subject's last token)."""
    from obliviate.scoring import model_device

    ed = EditableModel(model)
    device = model_device(model)
    ids = torch.tensor([list(input_ids)] * samples, device=device)
    lab = torch.tensor([list(labels)] * samples, device=device)
    mask = torch.ones_like(ids)
    pos = [subject_last if restore_pos is None else restore_pos] * samples
    clean: dict[int, torch.Tensor] = {}
    for layer in range(ed.n_layers):
        store: dict[str, torch.Tensor] = {}
        with capture_io(ed.down(layer), pos[:1], store):
            out = model(input_ids=ids[:1], attention_mask=mask[:1])
        clean[layer] = store["value"][0]
    p_clean = float(answer_probability(out.logits, lab[:1])[0])
    emb = ed.embeddings()
    std = float(emb.weight.detach().float().std())
    g = torch.Generator().manual_seed(seed)
    z = torch.randn((samples, subject_last - subject_first + 1, emb.weight.shape[1]), generator=g)
    z = (noise * std * z).to(device)
    with _noised_embeddings(emb, subject_first, subject_last, z):
        p_corrupt = (
            answer_probability(model(input_ids=ids, attention_mask=mask).logits, lab).cpu().numpy()
        )
        restored = []
        for layer in range(ed.n_layers):
            with contextlib.ExitStack() as stack:
                for w in window(layer, width, ed.n_layers):
                    stack.enter_context(
                        patch_output(ed.down(w), pos, replace=clean[w][None].expand(samples, -1))
                    )
                restored.append(
                    answer_probability(model(input_ids=ids, attention_mask=mask).logits, lab)
                    .cpu()
                    .numpy()
                )
    p_restored = np.stack(restored)
    return {
        "p_clean": p_clean,
        "p_corrupt": p_corrupt,
        "p_restored": p_restored,
        "ie": indirect_effects(p_restored, p_corrupt),
    }


def trace_layers(
    model: Any,
    tokenizer: Any,
    traced: Sequence[dict[str, Any]],
    noise: float = 3.0,
    samples: int = 5,
    width: int = 1,
    seed: int = 0,
) -> np.ndarray:
    """Mean IE per layer over ``traced`` items (dicts with ``input_ids``, ``labels``,
    ``first``, ``last`` and optionally ``restore``)."""
    if not traced:
        raise ValueError("causal tracing needs at least one item with a subject")
    ies = [
        trace_item(
            model,
            tokenizer,
            t["input_ids"],
            t["labels"],
            t["first"],
            t["last"],
            noise,
            samples,
            width,
            seed + i,
            t.get("restore"),
        )["ie"]
        for i, t in enumerate(traced)
    ]
    return np.mean(np.stack(ies), axis=0)
