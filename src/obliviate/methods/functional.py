"""Pure tensor functions for every LLM unlearning loss (docs/methods.md).

Conventions shared by every function here:

- ``logits`` is ``(B, T, V)`` from a causal LM run on ``input_ids`` ``(B, T)``.
- ``labels`` is ``(B, T)``: ``input_ids`` with ``-100`` on prompt and padding positions. It is
  *unshifted* (Hugging Face convention): the logits at position ``t`` predict ``labels[t + 1]``.
- Every token-level reduction runs over the *answer mask* of the shifted labels
  (``labels[:, 1:] != -100``). Prompt and padding positions never count, and their logits are never
  read: a loss is unchanged when padding is added, even if the padding logits are NaN.
- Likelihood-based losses consume gathered log-softmax values of the label tokens, never raw
  logits. Computation is done in at least float32 (bf16/fp16 inputs are upcast).
- Each loss states its reduction (token mean over the batch, per-sample mean, or sequence sum),
  matching its paper. A batch without any answer token gives a loss of 0 whose autograd
  graph is intact (``backward()`` works and yields zero gradients), never NaN.

Methods that need no function of their own: GradDiff is ``-γ·nll(forget) + α·nll(retain)``;
LLMU's mismatch term (Yao et al. 2023, arXiv 2310.10683) is plain :func:`nll_loss` on
(forget prompt, random normal answer) pairs, built by the data layer and weighted by the method
composition; IdkDPO/AltPO are :func:`dpo_loss` with different winners.

The functions live in :mod:`~obliviate.methods.likelihood_losses`,
:mod:`~obliviate.methods.logit_losses`, :mod:`~obliviate.methods.rmu_losses`,
:mod:`~obliviate.methods.span_losses`, :mod:`~obliviate.methods.reward_losses` and
:mod:`~obliviate.methods.adapter_losses`; this module
re-exports them (``from obliviate.methods import functional as F``). Only torch is imported; it is
imported on use, never by ``import obliviate``.
"""

from __future__ import annotations

from obliviate.methods.adapter_losses import (
    augmented_gram,
    eul_loss,
    ext_sub_deficiency,
    ext_sub_update,
    fuse_linear,
    spul_loss,
)
from obliviate.methods.likelihood_losses import (
    IGNORE_INDEX,
    dpo_loss,
    ga_loss,
    kl_retain_loss,
    nll_loss,
    npo_loss,
    sequence_logprob,
    shift_labels,
    simnpo_loss,
    token_logprobs,
)
from obliviate.methods.logit_losses import (
    ceu_loss,
    distillation_loss,
    pdu_dual_update,
    pdu_margin_loss,
    satimp_loss,
    undial_loss,
    wga_loss,
    whp_generic_logits,
)
from obliviate.methods.reward_losses import quark_loss
from obliviate.methods.rmu_losses import (
    rmu_control_vector,
    rmu_forget_loss,
    rmu_retain_loss,
)
from obliviate.methods.span_losses import seul_loss

__all__ = [
    "IGNORE_INDEX",
    "augmented_gram",
    "ceu_loss",
    "distillation_loss",
    "dpo_loss",
    "eul_loss",
    "ext_sub_deficiency",
    "ext_sub_update",
    "fuse_linear",
    "ga_loss",
    "kl_retain_loss",
    "nll_loss",
    "npo_loss",
    "pdu_dual_update",
    "pdu_margin_loss",
    "quark_loss",
    "rmu_control_vector",
    "rmu_forget_loss",
    "rmu_retain_loss",
    "satimp_loss",
    "sequence_logprob",
    "seul_loss",
    "shift_labels",
    "simnpo_loss",
    "spul_loss",
    "token_logprobs",
    "undial_loss",
    "wga_loss",
    "whp_generic_logits",
]
