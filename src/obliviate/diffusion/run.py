"""One erasure run end to end: load, evaluate before, erase, evaluate after, write the run folder.

The run folder follows docs/run-format.md "Diffusion runs": ``config.yaml``, ``metrics.json``
(written last), ``samples.jsonl``, ``train_log.jsonl`` (training-based methods),
``grid_before.png`` / ``grid_after.png`` and ``model/`` (the erased pipeline).
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from obliviate.diffusion.evaluate import (
    BENCHMARK,
    EvalConfig,
    EvalResult,
    evaluate_builtin,
    evaluate_prompts,
    make_grid,
    png_bytes,
)

BUILTIN = "builtin"


def unet_fingerprint(unet: Any) -> str:
    """SHA-256 over the UNet's parameters and buffers (names, shapes, bytes), in name order."""
    h = hashlib.sha256()
    for name, t in sorted(unet.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return "sha256:" + h.hexdigest()


@dataclass
class Setup:
    """A loaded model plus what evaluating it needs."""

    model: Any
    model_name: str
    judge: Any = None  # LoadedJudge for the built-in benchmark
    builtin: Any = None  # BuiltinArtifacts

    @property
    def spec(self) -> Any:
        return self.judge.spec if self.judge is not None else None


def load_setup(
    model: str = BUILTIN,
    cache_dir: str | Path | None = None,
    quick: bool = False,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
    judge: str | Path | None = None,
) -> Setup:
    """``model="builtin"`` trains/loads the tiny shapes model and its judge; anything else is a
    diffusers pipeline folder or hub name. ``judge`` (a judge folder) enables the built-in
    metrics for a shapes pipeline folder (the built-in model or one erased from it); without a
    judge a pipeline gets grids only."""
    from obliviate.diffusion.judge import load_judge
    from obliviate.diffusion.pipeline import load_model

    if model == BUILTIN:
        from obliviate.diffusion.builtin import ensure_builtin

        art = ensure_builtin(cache_dir, quick=quick, log=log)
        loaded: Any = load_judge(judge) if judge is not None else load_judge(art.judge)
        return Setup(load_model(art.pipeline, device), BUILTIN, loaded, art)
    loaded = None
    if judge is not None:
        from obliviate.data.types import DataError
        from obliviate.diffusion.tiny import read_spec

        loaded = load_judge(judge)
        spec = read_spec(model) if Path(model).is_dir() else None
        if spec != loaded.spec:
            raise DataError(
                f"{model}: the judge {judge} scores the built-in shapes model "
                f"({loaded.spec.to_dict()}), but this pipeline's shapes spec is "
                f"{spec.to_dict() if spec else 'missing'}; use --judge only with "
                "shapes pipelines"
            )
    return Setup(load_model(model, device), str(model), loaded)


def evaluate_setup(
    setup: Setup, concept: str, prompts: list[str], config: EvalConfig
) -> EvalResult:
    if setup.judge is not None:
        return evaluate_builtin(setup.model, setup.judge, concept, config)
    return evaluate_prompts(setup.model, prompts, config)


def write_run(
    run_dir: str | Path,
    *,
    name: str,
    role: str,
    method: str | None,
    concept: str,
    setup: Setup,
    result: EvalResult,
    config: dict[str, Any],
    before: EvalResult | None = None,
    erase: Any = None,
    save_model: bool = False,
    timing: dict[str, float] | None = None,
    seed: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a run folder (metrics.json last) and return the metrics document."""
    from obliviate.io import atomic_write_bytes, write_json, write_jsonl
    from obliviate.runs import library_versions, now, write_config

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(run_dir, config)
    write_jsonl(run_dir / "samples.jsonl", result.samples)
    images = []
    cols = config.get("eval", {}).get("grid_columns", 8)
    if before is not None:
        atomic_write_bytes(
            run_dir / "grid_before.png",
            png_bytes(
                make_grid(before.images, before.prompts, cols, f"before: {setup.model_name}")
            ),
        )
        images.append("grid_before.png")
    title = f"after: {method} erased {concept!r}" if method else f"{setup.model_name}"
    atomic_write_bytes(
        run_dir / "grid_after.png" if method else run_dir / "grid.png",
        png_bytes(make_grid(result.images, result.prompts, cols, title)),
    )
    images.append("grid_after.png" if method else "grid.png")
    if erase is not None and erase.train_log:
        write_jsonl(run_dir / "train_log.jsonl", erase.train_log)
    adapter_path = None
    if erase is not None and erase.adapter is not None:  # SPM: the adapter as its own file
        adapter_path = str(erase.adapter.save(run_dir / "adapter"))
    model_path = None
    if save_model:
        setup.model.save(run_dir / "model")
        model_path = str(run_dir / "model")
    doc: dict[str, Any] = {
        "schema": 1,
        "name": name,
        "role": role,
        "method": method,
        "benchmark": BENCHMARK if setup.judge is not None else "custom-diffusion",
        "split": concept,
        "concept": concept,
        "model": {
            "path": model_path,
            "source": setup.model_name,
            "fingerprint": unet_fingerprint(setup.model.unet),
        },
        "metrics": result.metrics,
        "before": before.values() if before is not None else None,
        "timing": {**(timing or {}), "eval_s": result.seconds},
        "trainable_params": erase.trainable_params if erase is not None else 0,
        "seed": seed,
        "images": images,
        "versions": library_versions(),
        "created": now(),
    }
    if setup.judge is not None:
        doc["judge"] = {"fingerprint": setup.judge.fingerprint, "validation": setup.judge.info}
    if erase is not None and erase.info:
        doc["erase_info"] = erase.info
    if adapter_path is not None:
        doc["adapter"] = adapter_path
    doc.update(extra or {})
    if not result.metrics:
        doc["note"] = "no judge for this pipeline: metrics were not computed; compare the grids"
    write_json(run_dir / "metrics.json", doc)
    return doc


def erase_run(
    run_dir: str | Path,
    concept: str,
    method: str,
    *,
    setup: Setup,
    overrides: dict[str, Any] | None = None,
    preset: str | None = None,
    anchor: str | None = None,
    prompts: list[str] | None = None,
    preserve: list[str] | None = None,
    seed: int = 0,
    eval_config: EvalConfig = EvalConfig(),
    before: EvalResult | None = None,
    save_model: bool = True,
    name: str | None = None,
    log: Callable[[str], None] | None = None,
    attack: str | None = None,
    attack_overrides: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], EvalResult]:
    """Erase ``concept`` from ``setup.model`` (in place) with ``method`` and write the run.

    ``before`` is the original model's evaluation, computed here when not given (the demo
    computes it once for all methods). ``attack`` (a name of
    :data:`obliviate.diffusion.unlearndiff.ATTACKS`) then attacks the erased model and, as the
    control, the original one: ``attack.json`` in the run folder, the rates in
    ``metrics.json`` under ``"attack"``. Returns the metrics document and the after-evaluation.
    """
    from obliviate.diffusion.methods import ErasureRequest, make_eraser

    say = log or (lambda m: None)
    if setup.spec is not None and prompts is None:
        from obliviate.diffusion.builtin import builtin_request

        request = builtin_request(setup.spec, concept, anchor)
        if preserve is not None:
            request = dataclasses.replace(request, preserve=list(preserve))
    else:
        request = ErasureRequest(
            concept=concept,
            prompts=list(prompts or []),
            preserve=list(preserve or []),
            anchor=anchor,
        )
    if preset is None:
        preset = BUILTIN if setup.judge is not None else "paper"
    eraser = make_eraser(method, overrides, preset)
    attack_fn, attack_cfg, unet0 = _prepare_attack(attack, attack_overrides, setup)
    eval_prompts = request.prompts + request.preserve[:4] if setup.judge is None else None
    if before is None:
        say("evaluating the original model")
        before = evaluate_setup(setup, concept, eval_prompts or [], eval_config)
    say(f"erasing {concept!r} with {method}")
    ckpt = Path(run_dir) / "checkpoint" / "erase"
    erase = eraser.erase(setup.model, request, seed=seed, checkpoint_dir=ckpt)
    say(f"evaluating the erased model ({erase.seconds} s of erasing)")
    after = evaluate_setup(setup, concept, eval_prompts or before.prompts, eval_config)
    extra: dict[str, Any] = {}
    if attack_fn is not None:
        say(f"attacking the erased and the original model with {attack}")
        report = attack_fn(
            setup.model,
            setup.judge,
            concept,
            request.prompts,
            original_unet=unet0,
            config=attack_cfg,
        )
        from obliviate.io import write_json

        Path(run_dir).mkdir(parents=True, exist_ok=True)
        write_json(Path(run_dir) / "attack.json", report)
        extra["attack"] = {"name": attack, "file": "attack.json", **report["models"]}
    config = {
        "kind": "diffusion-erasure",
        "method": method,
        "preset": preset,
        "hyperparameters": eraser.config_dict(),
        "concept": concept,
        "request": asdict(request),
        "model": setup.model_name,
        "builtin": (setup.builtin.info if setup.builtin is not None else None),
        "eval": asdict(eval_config),
        "seed": seed,
    }
    doc = write_run(
        run_dir,
        name=name or Path(run_dir).name,
        role="unlearned",
        method=method,
        concept=concept,
        setup=setup,
        result=after,
        config=config,
        before=before,
        erase=erase,
        save_model=save_model,
        seed=seed,
        timing={"train_s": erase.seconds},
        extra=extra,
    )
    shutil.rmtree(ckpt.parent, ignore_errors=True)  # the run is written: nothing to resume
    return doc, after


def _prepare_attack(
    attack: str | None, overrides: dict[str, Any] | None, setup: Setup
) -> tuple[Any, Any, Any]:
    """The attack function, its config and a frozen copy of the original UNet (the control),
    checked before anything is erased; ``(None, None, None)`` without an attack."""
    if attack is None:
        if overrides:
            raise ValueError("attack settings were given without an attack; add --attack NAME")
        return None, None, None
    from obliviate.data.types import DataError
    from obliviate.diffusion.unlearndiff import ATTACKS

    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACKS)}")
    if setup.judge is None:
        raise DataError(
            f"the {attack} attack needs the concept judge: use the built-in model, or give "
            "--judge for a shapes pipeline folder"
        )
    fn, cfg_cls = ATTACKS[attack]
    return fn, cfg_cls.build(overrides), setup.model.frozen_unet()
