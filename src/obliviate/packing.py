"""Packed training forward passes (``train.pack``, docs/methods.md "Training speed").

A right-padded micro-batch of TOFU-length question/answer pairs spends about 30 % of its tokens on
padding, and a causal LM computes its vocabulary projection at every position although the
unlearning losses read only the answer positions. With packing, the sequences of the forget and
the retain micro-batch are laid end to end into shared rows (first-fit decreasing), each row gets
a block-diagonal causal mask (a token sees only the earlier tokens of its own sequence) and
position ids that restart at 0 for every sequence, so that every sequence's logits equal those of
a padded forward pass up to float rounding. Where the model is a plain ``PreTrainedModel``
(no DDP/compile wrapper, not sharded), the LM head is applied only at the positions whose logits
a loss reads (those predicting an answer token: ``labels[:, t + 1] != -100``); elsewhere the
returned logits are 0, which the losses never read (:mod:`obliviate.methods.functional`).

The first packed pass on a model is checked against a padded one; a model whose forward does not
honour position ids and 4-D masks (or adds something after the LM head) fails the check and
trains unpacked, with a warning.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# per model: whether its packed logits matched padded ones (checked on its first packed pass)
_CHECKED: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()

# Rows are this many times as wide as the longest sequence: measured on TOFU micro-batches of
# 8 forget + 8 retain pairs, the padded batches hold 1.43x the real tokens, rows of 1x the
# longest 1.26x and rows of 1.5x 1.15x (wider rows add attention cost without packing better).
WIDTH_FACTOR = 1.5


def plan_rows(lengths: list[int], width: int) -> list[tuple[int, int]]:
    """First-fit decreasing: the ``(row, offset)`` of each sequence in rows of ``width`` tokens.

    Sequences are placed longest first (ties in input order), each into the first row with
    room for it; a sequence longer than ``width`` is an error."""
    if any(n > width for n in lengths):
        raise ValueError(f"a sequence of {max(lengths)} tokens does not fit rows of {width}")
    used: list[int] = []
    slots: list[tuple[int, int]] = [(0, 0)] * len(lengths)
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = next((r for r, u in enumerate(used) if u + lengths[i] <= width), len(used))
        if row == len(used):
            used.append(0)
        slots[i] = (row, used[row])
        used[row] += lengths[i]
    return slots


@dataclass
class Packed:
    """Packed model inputs and the way back to the padded layout.

    ``index[i, t]`` is the flat position (``row * width + column``) of token t of sequence i in
    the packed rows (0 past the sequence's end: a real position whose value is never read)."""

    input_ids: Any  # (R, W)
    position_ids: Any  # (R, W)
    mask: Any  # (R, 1, W, W) additive: 0 where a token may attend, the dtype's min elsewhere
    index: Any  # (N, T): flat packed position of each padded position
    width: int


def prefix_lengths(attention_mask: Any) -> list[int] | None:
    """Real-token counts of a right-padded batch, or ``None`` when a row's mask is not ones then
    zeros (left padding, holes): such a batch is not packed."""
    import torch

    lengths = attention_mask.sum(dim=1)
    cols = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    prefix = (cols[None, :] < lengths[:, None]).to(attention_mask.dtype)
    if not torch.equal(prefix, attention_mask):
        return None
    return [int(n) for n in lengths.tolist()]


def pack(input_ids: Any, lengths: list[int], pad_id: int, dtype: Any) -> Packed:
    """Lay the rows of ``input_ids`` (``(N, T)``, sequence i in its first ``lengths[i]``
    columns) into packed rows of ``WIDTH_FACTOR`` x the longest sequence."""
    import torch

    longest = max(lengths)
    width = max(longest, int(longest * WIDTH_FACTOR))
    slots = plan_rows(lengths, width)
    rows = 1 + max(r for r, _ in slots)
    dev = input_ids.device
    ids = torch.full((rows, width), pad_id, dtype=input_ids.dtype, device=dev)
    pos = torch.zeros((rows, width), dtype=torch.long, device=dev)
    seg = torch.full((rows, width), -1, dtype=torch.long, device=dev)
    index = torch.zeros(input_ids.shape, dtype=torch.long, device=dev)
    for i, ((row, off), n) in enumerate(zip(slots, lengths, strict=True)):
        ids[row, off : off + n] = input_ids[i, :n]
        pos[row, off : off + n] = torch.arange(n, device=dev)
        seg[row, off : off + n] = i
        index[i, :n] = row * width + off + torch.arange(n, device=dev)
    causal = torch.ones(width, width, dtype=torch.bool, device=dev).tril()
    # the unused tail of a row is a segment of its own, so no row of the mask is all masked
    seg = torch.where(seg < 0, len(lengths), seg)
    allowed = (seg[:, :, None] == seg[:, None, :]) & causal
    mask = torch.zeros((rows, 1, width, width), dtype=dtype, device=dev)
    mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
    return Packed(ids, pos, mask, index, width)


def head_split(model: Any) -> tuple[Any, Any] | None:
    """``(decoder, lm_head)`` of a plain transformers causal LM, or ``None`` when the model is
    wrapped (DDP, ``torch.compile``, DeepSpeed), sharded, or does not expose both."""
    from obliviate.sharding import is_sharded

    if hasattr(model, "module") or hasattr(model, "_orig_mod") or is_sharded(model):
        return None
    try:
        decoder, head = model.get_decoder(), model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    return (decoder, head) if decoder is not None and head is not None else None


def packed_logits(model: Any, batches: list[dict[str, Any]], pad_id: int) -> list[Any] | None:
    """The logits ``(B_k, T_k, V)`` of each right-padded batch from one packed forward pass.

    At every position that predicts an answer token (``labels[:, t + 1] != -100``) they equal
    the logits of ``model(input_ids, attention_mask)`` up to float rounding; other positions are
    0 when the LM head is applied to the answer positions only, and the model's values
    otherwise. ``None`` when a batch is not right-padded (the caller then runs unpacked)."""
    import torch

    lengths: list[int] = []
    for b in batches:
        got = prefix_lengths(b["attention_mask"])
        if got is None:
            return None
        lengths += got
    width = max(b["input_ids"].shape[1] for b in batches)
    ids = torch.cat(
        [
            torch.nn.functional.pad(b["input_ids"], (0, width - b["input_ids"].shape[1]))
            for b in batches
        ]
    )
    dtype = next(model.parameters()).dtype
    dtype = dtype if dtype.is_floating_point else torch.float32
    p = pack(ids, lengths, pad_id, dtype)
    split = head_split(model)
    if split is None:
        out = model(input_ids=p.input_ids, position_ids=p.position_ids, attention_mask=p.mask,
                    use_cache=False).logits  # fmt: skip
        flat = out.reshape(-1, out.shape[-1])
        logits = flat[p.index.reshape(-1)].reshape(*p.index.shape, -1)
    else:
        decoder, head = split
        hidden = decoder(input_ids=p.input_ids, position_ids=p.position_ids,
                         attention_mask=p.mask, use_cache=False).last_hidden_state  # fmt: skip
        wanted = torch.cat([_answer_positions(b["labels"], width) for b in batches])
        rows = p.index[wanted]  # flat packed positions whose logits a loss reads
        z = head(hidden.reshape(-1, hidden.shape[-1])[rows])
        logits = z.new_zeros(*p.index.shape, z.shape[-1])
        logits[wanted] = z
    out_list, start = [], 0
    for b in batches:
        n, t = b["input_ids"].shape
        out_list.append(logits[start : start + n, :t])
        start += n
    return out_list


def _answer_positions(labels: Any, width: int) -> Any:
    """``(B, width)`` booleans: position t predicts an answer token (``labels[:, t+1] != -100``)."""
    import torch

    from obliviate.methods.likelihood_losses import IGNORE_INDEX

    wanted = torch.zeros(labels.shape[0], width, dtype=torch.bool, device=labels.device)
    wanted[:, : labels.shape[1] - 1] = labels[:, 1:] != IGNORE_INDEX
    return wanted


def checked_packed_logits(
    model: Any, batches: list[dict[str, Any]], pad_id: int
) -> list[Any] | None:
    """:func:`packed_logits`, or ``None`` (train unpacked) when the batches cannot be packed or
    the model failed the check of its first packed pass: in eval mode (no dropout), without
    gradients, packed and padded logits must :func:`agree`."""
    import torch

    if model not in _CHECKED:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                packed = packed_logits(model, batches, pad_id)
                if packed is None:
                    return None
                padded = [
                    model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
                    for b in batches
                ]
                _CHECKED[model] = agree(packed, padded, batches)
        finally:
            model.train(was_training)
    return packed_logits(model, batches, pad_id) if _CHECKED[model] else None


def agree(packed: list[Any], padded: list[Any], batches: list[dict[str, Any]]) -> bool:
    """Whether packed and padded logits agree at every answer-predicting position, relative to
    the logits' scale (1e-4 in float32, 3e-2 in lower precision): attention across sequences or
    a transform after the LM head moves them by far more than float rounding. Warns if not."""
    import torch

    worst = 0.0
    for z, ref, b in zip(packed, padded, batches, strict=True):
        at = _answer_positions(b["labels"], b["labels"].shape[1])
        if not bool(at.any()):
            continue
        a, r = z[at].float(), ref[at].float()
        worst = max(worst, float((a - r).abs().max()) / (float(r.abs().max()) + 1e-6))
    tol = 1e-4 if packed[0].dtype == torch.float32 else 3e-2
    if worst > tol:
        log.warning(
            "train.pack: packed logits differ from padded ones by %.2g of their scale on this "
            "model; training unpacked",
            worst,
        )
        return False
    return True
