"""The kinds of model a benchmark evaluates, and what differs between them.

Every benchmark entry names the kind of model it evaluates
(:attr:`obliviate.benchmarks.BenchmarkSpec.model_kind`): ``text`` (causal language models: TOFU,
MUSE, WMDP, ...) or ``vision-language`` (image+text models on MLLMU-Bench, Liu+ 2024,
arXiv 2410.22108; docs/multimodal.md). :func:`obliviate.api.unlearn`, :func:`obliviate.api.
evaluate` and the retain model's evaluation go through this module for the three things that
differ: loading a model folder (:func:`load`), building a method (:func:`build_method`) and the
job a method receives (:func:`make_job`). A model of the other kind (:func:`check_model`) and a
method that does not run on the benchmark's kind (:func:`check_method`) are refused in one
sentence before anything is loaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

TEXT = "text"
VISION = "vision-language"
KINDS = (TEXT, VISION)
MULTIMODAL_BENCHMARKS = "builtin-mllmu or mllmu"


def benchmark_kind(benchmark: str | None, forget: Any = None) -> str:
    """The model kind of the benchmark entry ``benchmark`` (default: ``tofu``, or ``qa`` with
    the user's ``forget`` files)."""
    from obliviate.benchmarks import default_benchmark, get_benchmark

    return get_benchmark(benchmark or default_benchmark(forget)).model_kind


def folder_kind(path: str | os.PathLike[str]) -> str | None:
    """The kind of the model saved in ``path`` (a model folder or a run folder with
    ``model/``): ``vision-language`` when its ``config.json`` has a ``vision_config``, else
    ``text``; ``None`` when it cannot tell (a hub name, an adapter folder, no config)."""
    p = Path(path)
    if (p / "model").is_dir() and not (p / "config.json").is_file():
        p = p / "model"
    try:
        config = json.loads((p / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    return VISION if "vision_config" in config else TEXT


def check_model(path: str | os.PathLike[str] | None, kind: str, benchmark: str) -> None:
    """Refuse a model of the other kind than ``benchmark``'s, in one sentence."""
    found = folder_kind(path) if path is not None else None
    if found is None or found == kind:
        return
    if found == VISION:
        raise ValueError(
            f"{path} is a vision-language model and benchmark {benchmark!r} evaluates text "
            f"language models; use --benchmark {MULTIMODAL_BENCHMARKS} (docs/multimodal.md)"
        )
    raise ValueError(
        f"{path} is a text language model and benchmark {benchmark!r} needs a vision-language "
        "model (e.g. the target of `obliviate demo --multimodal`, docs/multimodal.md)"
    )


def check_method(name: str, kind: str) -> None:
    """Refuse a method that does not run on models of ``kind`` (an unknown name: did-you-mean)."""
    from obliviate.registry import METHODS, VLM_METHODS

    if kind == VISION:
        from obliviate.multimodal.methods import GRADIENT_METHODS

        if name in GRADIENT_METHODS or name in VLM_METHODS:
            return
        known = ", ".join([*GRADIENT_METHODS, *VLM_METHODS.names()])
        raise ValueError(f"method {name!r} does not run on vision-language models; use {known}")
    if name in VLM_METHODS and name not in METHODS:
        raise ValueError(
            f"method {name!r} unlearns vision-language models; use it with --benchmark "
            f"{MULTIMODAL_BENCHMARKS} (docs/multimodal.md)"
        )
    METHODS.entry(name)


def build_method(name: str, overrides: dict[str, Any], kind: str) -> tuple[Any, dict[str, Any]]:
    """The method object for ``overrides`` and its resolved settings (what config.yaml
    records). On a vision-language model the setting ``part`` (language, vision or both)
    chooses what is updated (:func:`obliviate.multimodal.methods.resolve_vlm_method`)."""
    check_method(name, kind)
    if kind == VISION:
        from obliviate.multimodal.methods import resolve_vlm_method

        return resolve_vlm_method(name, overrides)
    from obliviate.api import _merge
    from obliviate.registry import METHODS

    preset = METHODS.get(name)
    return preset.build(overrides), _merge(preset.defaults(), overrides)


def load(path: str, kind: str, trust_remote_code: bool = False) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of the folder or hub name ``path`` as a model of ``kind`` (a
    vision-language model as a :class:`~obliviate.multimodal.lm.VisionLM`)."""
    if kind == VISION:
        from obliviate.multimodal.loading import load_vision_lm

        return load_vision_lm(path, trust_remote_code)
    from obliviate.models.loading import load_model, load_tokenizer

    tok = load_tokenizer(path, trust_remote_code)
    return load_model(path, trust_remote_code=trust_remote_code), tok


def make_job(kind: str, suite: Any, *args: Any) -> Any:
    """The :class:`~obliviate.methods.job.UnlearnJob` of ``suite``'s request (``args``: the
    job's fields in order, model first): a ``VisionJob`` with the model's image bank, a
    ``DocumentJob`` for document benchmarks, else a plain one."""
    if kind == VISION:
        from obliviate.multimodal.methods import VisionJob

        job: Any = VisionJob(*args)
        job.bank = job.model.bank
        return job
    from obliviate.methods.job import UnlearnJob

    job_class: Any = UnlearnJob
    if suite.documents:
        from obliviate.benchmarks.muse import DocumentJob

        job_class = DocumentJob
    return job_class(*args)
