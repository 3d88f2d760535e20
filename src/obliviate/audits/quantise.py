"""Simulated weight quantisation: symmetric round-to-nearest (RTN) integer weights, dequantised.

The quantisation attack (Zhang+ 2024, *Catastrophic Failure of LLM Unlearning via Quantization*,
arXiv 2410.16454) observes that unlearning with a small learning rate moves weights by less than
one quantisation step, so rounding the unlearned weights to 8 or 4 bits can land them back on
the target's grid and restore forgotten knowledge. The attack uses a real quantiser when one
is installed (:mod:`obliviate.audits.quantisers`); this module is the fallback (and
``quantiser=rtn``), which *simulates* integer weights in torch on any device:

    per output channel i (a row of W, shape (out, in)):
        s_i = max_j |W_ij| / q_max,      q_max = 2^(b−1) − 1   (127 for 8 bits, 7 for 4 bits)
        Q_ij = clamp(round(W_ij / s_i), −q_max, q_max)         (torch.round: ties to even)
        Ŵ_ij = s_i · Q_ij

With ``group_size`` g the row is cut into groups of g input columns with one scale each
(block-wise, closer to bitsandbytes' 4-bit block size of 64). A row (group) of zeros keeps
scale 0 and stays zero. Round-to-nearest has a round-trip error |W − Ŵ| <= s_i / 2 per weight.
Only the weights of ``torch.nn.Linear`` layers are quantised, except the modules named in
``skip`` (``lm_head`` by default, like bitsandbytes' LLM.int8 which keeps the output layer in
16 bits); embeddings, norms and biases stay in full precision. Calibrated methods (GPTQ, AWQ)
and NF4's non-uniform grid differ from this simulation: treat its numbers as indicative.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any


def quantise_tensor(weight: Any, bits: int, group_size: int | None = None) -> Any:
    """Quantise-dequantise a 2-D weight (out, in) with symmetric per-channel (or per-group) RTN.

    Returns a new tensor of the same shape and dtype; ``weight`` is not modified. Computation
    runs in float32 (float64 stays float64).
    """
    import torch

    if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 16:
        raise ValueError(f"bits must be an integer in [2, 16], got {bits!r}")
    if weight.dim() != 2:
        raise ValueError(
            f"quantise_tensor expects a 2-D weight (out, in), got shape {tuple(weight.shape)}"
        )
    if group_size is not None and (group_size < 1 or weight.shape[1] % group_size):
        raise ValueError(
            f"group_size {group_size} must be >= 1 and divide the input width {weight.shape[1]}"
        )
    w = weight.detach()
    work = w if w.dtype == torch.float64 else w.float()
    out_f, in_f = work.shape
    g = group_size or in_f
    grouped = work.reshape(out_f, in_f // g, g)
    q_max = float(2 ** (bits - 1) - 1)
    scale = grouped.abs().amax(dim=-1, keepdim=True) / q_max
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.clamp(torch.round(grouped / safe), -q_max, q_max)
    deq = torch.where(scale > 0, q * scale, torch.zeros_like(grouped))
    return deq.reshape(out_f, in_f).to(weight.dtype)


def quantise_model(
    model: Any,
    bits: int,
    group_size: int | None = None,
    skip: Sequence[str] = ("lm_head",),
    inplace: bool = False,
) -> tuple[Any, int]:
    """Quantise every ``nn.Linear`` weight of ``model`` (a copy unless ``inplace``).

    A PEFT model is merged first (``merge_and_unload``), as one would before deploying it.
    Modules whose last name component is in ``skip`` are left alone. Returns
    ``(model, number of quantised weight tensors)``; raises if there is none.
    """
    import torch

    net = model if inplace else copy.deepcopy(model)
    if hasattr(net, "merge_and_unload"):
        net = net.merge_and_unload()
    count = 0
    with torch.no_grad():
        for name, module in net.named_modules():
            if isinstance(module, torch.nn.Linear) and name.split(".")[-1] not in skip:
                module.weight.copy_(quantise_tensor(module.weight, bits, group_size))
                count += 1
    if count == 0:
        raise ValueError("quantisation: the model has no nn.Linear weights to quantise")
    net.eval()
    return net, count
