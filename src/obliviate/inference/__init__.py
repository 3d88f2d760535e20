"""Inference-time unlearning: wrappers that change no weight of the target (docs/methods.md).

- :mod:`obliviate.inference.icul`: in-context unlearning (ICUL prompts, Pawelczyk+ 2023).
- :mod:`obliviate.inference.guardrail`: a forget-scope prompt classifier with a calibrated
  threshold, the actions *refuse* or ECO-style embedding corruption, and an output filter.
- :mod:`obliviate.inference.offset`: logit offset with a reinforced model (WHP-style).

Every wrapper is a ``torch.nn.Module`` that behaves like a causal LM for
:mod:`obliviate.scoring`: ``wrapper(input_ids=, attention_mask=).logits`` and
``wrapper.generate(input_ids=, attention_mask=, max_new_tokens=, ...)``. ``save_pretrained``
writes :data:`obliviate.models.loading.WRAPPER_FILE` and :func:`load_wrapper` reads it back.

This package is cheap to import; torch is imported when a wrapper is built or loaded. New
wrapper kinds register in :data:`WRAPPERS` (the kind is the ``"wrapper"`` key of the JSON file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from obliviate.registry import WRAPPERS


WRAPPER_SCHEMA = 1


def load_wrapper(path: str | Path) -> Any:
    """Load a wrapper saved by ``save_pretrained`` (a folder holding ``obliviate_wrapper.json``).

    The base model(s) are loaded from the paths the file names (relative paths are relative to
    the folder), safetensors only, no remote code.
    """
    from obliviate.data.types import DataError
    from obliviate.io import read_json
    from obliviate.models.loading import WRAPPER_FILE

    folder = Path(path)
    spec_path = folder / WRAPPER_FILE
    if not spec_path.exists():
        raise FileNotFoundError(f"{folder}: no {WRAPPER_FILE}; is it a saved obliviate wrapper?")
    spec = read_json(spec_path)
    if not isinstance(spec, dict) or "wrapper" not in spec:
        raise DataError(f"{spec_path}: expected a JSON object with a 'wrapper' key")
    if spec.get("schema") != WRAPPER_SCHEMA:
        raise DataError(
            f"{spec_path}: schema {spec.get('schema')!r} is not supported (expected "
            f"{WRAPPER_SCHEMA}); re-save the wrapper with this version of obliviate"
        )
    cls = WRAPPERS.get(spec["wrapper"])
    return cls.from_pretrained(folder, spec)
