"""obliviate: machine unlearning for generative AI.

The public API is small and imports nothing heavy until called::

    import obliviate
    result = obliviate.unlearn(model="runs/target", method="npo", benchmark="tofu", split="forget10")
    metrics = obliviate.evaluate(model=result.model_path, benchmark="tofu", split="forget10")
"""

from __future__ import annotations

from typing import Any

from obliviate.version import __version__

__all__ = ["__version__", "evaluate", "finetune", "load_benchmark", "unlearn"]


def unlearn(*args: Any, **kwargs: Any) -> Any:
    """Unlearn a forget set from a model; see :func:`obliviate.api.unlearn`."""
    from obliviate.api import unlearn as _unlearn

    return _unlearn(*args, **kwargs)


def evaluate(*args: Any, **kwargs: Any) -> Any:
    """Evaluate a model on a benchmark split; see :func:`obliviate.api.evaluate`."""
    from obliviate.api import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


def finetune(*args: Any, **kwargs: Any) -> Any:
    """Fine-tune a target or retain model; see :func:`obliviate.api.finetune`."""
    from obliviate.api import finetune as _finetune

    return _finetune(*args, **kwargs)


def load_benchmark(*args: Any, **kwargs: Any) -> Any:
    """Load a benchmark's splits; see :func:`obliviate.data.tofu.load_tofu`."""
    from obliviate.data.tofu import load_tofu

    return load_tofu(*args, **kwargs)
