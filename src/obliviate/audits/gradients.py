"""Per-sample gradient norms for the GradNorm membership-inference attack (docs/metrics.md).

One sample at a time (batch size 1), loss = mean token NLL over the answer tokens (EOS included,
as the LOSS attack), gradients of that loss with respect to every floating-point parameter tensor
the loss depends on; the attack score (``obliviate.metrics.mia.gradnorm_score``) is the mean of
the per-tensor L2 norms. Choices, documented as asks:

- Gradients come from ``torch.autograd.grad``, so ``.grad`` buffers are never touched (no
  zeroing of the caller's gradients, unlike OU).
- Every floating-point parameter takes part, also frozen ones (``requires_grad`` is switched on
  for the pass and restored afterwards), so scores of a full model and of a partly frozen or
  adapter model are computed the same way. Tensors the loss does not reach are left out.
- The model runs in eval mode by default (dropout off: deterministic scores); OU uses train mode.
  ``train_mode=True`` reproduces OU. The train/eval flag is restored afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from obliviate.data.templates import PromptTemplate, encode


def per_sample_grad_norms(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    template: PromptTemplate,
    max_length: int = 512,
    train_mode: bool = False,
    progress: bool = False,
) -> list[np.ndarray]:
    """Per-tensor gradient L2 norms of each (question, answer) pair's mean answer-token NLL.

    Returns one 1-D array per pair (one entry per parameter tensor the loss reaches). The
    model's train/eval mode, ``requires_grad`` flags and ``.grad`` buffers are as before the
    call, also when it raises.
    """
    import torch

    from obliviate.methods.functional import nll_loss
    from obliviate.scoring import _progress, model_device

    if not hasattr(model, "named_parameters"):
        raise ValueError(
            f"GradNorm needs a model with parameters; a {type(model).__name__} has none "
            "(an inference-time wrapper?)"
        )
    params = [p for _, p in model.named_parameters() if p.is_floating_point()]
    if not params:
        raise ValueError("GradNorm: the model has no floating-point parameters")
    flags = [p.requires_grad for p in params]
    was_training = bool(getattr(model, "training", False))
    device = model_device(model)
    out: list[np.ndarray] = []
    try:
        for p in params:
            p.requires_grad_(True)
        model.train(train_mode)
        for i, (q, a) in enumerate(_progress(pairs, "gradient norms", len(pairs), progress)):
            enc = encode(tokenizer, q, a, template, max_length=max_length)
            if enc.prompt_len >= len(enc.input_ids):
                raise ValueError(f"GradNorm: item {i} ({q[:40]!r}) has no answer token to score")
            ids = torch.tensor([enc.input_ids], device=device)
            labels = torch.tensor([enc.labels], device=device)
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
            loss = nll_loss(logits, labels)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            norms = [float(g.detach().float().norm()) for g in grads if g is not None]
            out.append(np.asarray(norms, dtype=np.float64))
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
        model.train(was_training)
    return out
