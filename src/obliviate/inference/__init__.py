"""Inference-time unlearning: wrappers that change no weight of the target (docs/methods.md).

- :mod:`obliviate.inference.icul`: in-context unlearning (ICUL prompts, Pawelczyk+ 2023).
- :mod:`obliviate.inference.guardrail`: a forget-scope prompt classifier with a calibrated
  threshold, the actions *refuse* or ECO-style embedding corruption, and an output filter.
- :mod:`obliviate.inference.offset`: logit offset with a reinforced model (WHP-style).

Every wrapper is a ``torch.nn.Module`` that behaves like a causal LM for
:mod:`obliviate.scoring`: ``wrapper(input_ids=, attention_mask=).logits`` and
``wrapper.generate(input_ids=, attention_mask=, max_new_tokens=, ...)``. ``save_pretrained``
writes :data:`obliviate.inference.wrapper_file.WRAPPER_FILE` and :func:`load_wrapper` reads it back.

This package is cheap to import; torch is imported when a wrapper is built or loaded. New
wrapper kinds register in :data:`WRAPPERS` (the kind is the ``"wrapper"`` key of the JSON file).
"""

from __future__ import annotations

from obliviate.inference.wrapper_file import WRAPPER_FILE, WRAPPER_SCHEMA, load_wrapper
from obliviate.registry import WRAPPERS

__all__ = ["WRAPPERS", "WRAPPER_FILE", "WRAPPER_SCHEMA", "load_wrapper"]
