"""The one training loop: fine-tuning and every gradient-based unlearning method run through it.

Single process by default; under ``torchrun`` / ``accelerate launch --multi_gpu`` it runs data
parallel through accelerate (gloo on CPU). The forget (or training) set is sharded across ranks;
retain batches are drawn with a per-rank seed (docs/metrics.md); the schedule is derived from
the real per-rank dataloader length ; only rank 0 writes files.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from obliviate.config import TrainConfig
from obliviate.data.collate import pad_batch
from obliviate.data.templates import Encoded
from obliviate.models.protocol import CausalLM


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf; the message says at which step and what to change."""


class StepHook(Protocol):
    """Optional callbacks around the optimiser step (e.g. saliency masks)."""

    def after_backward(self, model: Any) -> None: ...

    def after_step(self, model: Any) -> None: ...


LossFn = Callable[["CausalLM", dict, "dict | None", int], "tuple[Any, dict[str, float]]"]


@dataclass
class TrainResult:
    steps: int
    log: list[dict[str, float]] = field(default_factory=list)
    wall_s: float = 0.0
    stopped: str | None = None  # reason for an early stop
    retain_indices: list[int] = field(default_factory=list)  # drawn on this rank (for tests)


def collate_encoded(
    items: Sequence[Encoded], indices: Sequence[int], pad_id: int
) -> dict[str, Any]:
    import torch

    batch = pad_batch([e.input_ids for e in items], pad_id, [e.labels for e in items])
    batch["index"] = torch.tensor(list(indices), dtype=torch.long)
    return batch


def get_accelerator(accelerator: Any = None) -> Any:
    if accelerator is not None:
        return accelerator
    from accelerate import Accelerator

    return Accelerator(cpu=not _has_cuda())


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _scheduler(optimizer: Any, cfg: TrainConfig, total: int, steps_per_epoch: int) -> Any:
    from transformers import get_scheduler

    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    warmup = min(warmup, max(total - 1, 0))
    name = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[
        cfg.scheduler
    ]
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total)


def train_loop(
    model: CausalLM,
    loss_fn: LossFn,
    main_set: Sequence[Encoded],
    cfg: TrainConfig,
    pad_id: int,
    retain_set: Sequence[Encoded] | None = None,
    accelerator: Any = None,
    hooks: Sequence[StepHook] = (),
    log_path: str | Path | None = None,
    desc: str = "training",
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
) -> TrainResult:
    """Optimise ``loss_fn(model, main_batch, retain_batch, step)`` over ``main_set``.

    ``main_set`` is the forget set for unlearning (or the training set for fine-tuning); when
    ``retain_set`` is given each main batch is paired with a random retain batch of equal size.

    With ``checkpoint_dir``, the full training state (weights, optimiser, schedule, random
    streams, log) is saved there after every epoch, and a later call with the same directory
    resumes after the last finished epoch, giving the same result as an uninterrupted run.
    The directory is removed once training finishes.
    """
    import torch
    from torch.utils.data import DataLoader

    from obliviate.io import write_jsonl

    if not main_set:
        raise ValueError(f"{desc}: nothing to train on (empty training/forget set)")
    acc = get_accelerator(accelerator)
    torch.manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters: check the module selection / adapter settings")
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    loader: DataLoader[int] = DataLoader(
        list(range(len(main_set))),  # type: ignore[arg-type]  # stubs want a Dataset; a list is a map-style one
        batch_size=cfg.batch_size,
        shuffle=True,
        generator=gen,
        collate_fn=lambda idx: collate_encoded([main_set[i] for i in idx], idx, pad_id),
    )
    model, optimizer, loader = acc.prepare(model, optimizer, loader)
    steps_per_epoch = max(1, math.ceil(len(loader) / cfg.grad_accum))
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    scheduler = _scheduler(optimizer, cfg, total, steps_per_epoch)
    # per-rank retain stream: the seed differs by process index
    retain_gen = torch.Generator().manual_seed(
        cfg.seed * 1_000_003 + 7919 * (acc.process_index + 1)
    )
    result = TrainResult(steps=0)
    t0 = time.perf_counter()
    epoch = 0
    ckpt = Path(checkpoint_dir) if checkpoint_dir else None
    run_key = _run_key(cfg, main_set, retain_set, desc, acc.num_processes)
    if ckpt is not None and (ckpt / "state.json").exists():
        epoch = _load_checkpoint(
            ckpt, acc, model, optimizer, scheduler, retain_gen, result, run_key
        )
    model.train()
    bar = None
    if progress and acc.is_main_process:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=result.steps, desc=desc, leave=False)
    first_retain: float | None = None
    micro = 0
    done = result.steps >= total
    while not done:
        gen.manual_seed(cfg.seed + epoch)  # the epoch's shuffle depends only on (seed, epoch)
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        for batch in loader:
            retain_batch = None
            if retain_set:
                n = batch["input_ids"].shape[0]
                ridx = torch.randint(len(retain_set), (n,), generator=retain_gen).tolist()
                result.retain_indices.extend(ridx)
                retain_batch = collate_encoded([retain_set[i] for i in ridx], ridx, pad_id)
                retain_batch = {k: v.to(acc.device) for k, v in retain_batch.items()}
            loss, logs = loss_fn(model, batch, retain_batch, result.steps)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"{desc}: the loss became {loss.item()} at step {result.steps}; lower the "
                    f"learning rate (lr={cfg.lr}) or tighten gradient clipping"
                )
            acc.backward(loss / cfg.grad_accum)
            micro += 1
            if micro % cfg.grad_accum:
                continue
            for h in hooks:
                h.after_backward(model)
            if cfg.max_grad_norm:
                acc.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            for h in hooks:
                h.after_step(model)
            result.steps += 1
            row = {
                "step": result.steps,
                "epoch": round(result.steps / steps_per_epoch, 4),
                "loss": float(loss.detach()),
                "lr": float(scheduler.get_last_lr()[0]),
            }
            row.update({k: float(v) for k, v in logs.items()})
            result.log.append(row)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.3f}")
            if cfg.retain_guard and "retain_loss" in row:
                first_retain = (
                    first_retain if first_retain is not None else max(row["retain_loss"], 1e-6)
                )
                if row["retain_loss"] > cfg.retain_guard * first_retain:
                    result.stopped = (
                        f"retain loss {row['retain_loss']:.3f} exceeded {cfg.retain_guard}x its "
                        f"initial value {first_retain:.3f} at step {result.steps}"
                    )
                    done = True
                    break
            if result.steps >= total:
                done = True
                break
        epoch += 1
        if ckpt is not None and not done:
            _save_checkpoint(
                ckpt, acc, model, optimizer, scheduler, retain_gen, result, epoch, run_key
            )
    if bar is not None:
        bar.close()
    if ckpt is not None:
        if acc.is_main_process and ckpt.exists():
            import shutil

            shutil.rmtree(ckpt, ignore_errors=True)
        acc.wait_for_everyone()  # no rank may see the finished run's checkpoint afterwards
    model.eval()
    result.wall_s = time.perf_counter() - t0
    if log_path is not None and acc.is_main_process:
        write_jsonl(log_path, result.log)
    return result


def _run_key(
    cfg: TrainConfig, main_set: Sequence[Encoded], retain_set: Any, desc: str, world_size: int
) -> str:
    """What a checkpoint must match to be resumed: settings, data and the number of processes
    (each rank keeps its own retain stream)."""
    import dataclasses
    import hashlib
    import json

    h = hashlib.sha256(
        json.dumps([dataclasses.asdict(cfg), desc, world_size], default=str).encode()
    )
    for e in list(main_set) + list(retain_set or []):
        h.update(bytes(str(e.input_ids), "ascii"))
    return h.hexdigest()[:16]


def _save_checkpoint(
    folder: Path,
    acc: Any,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    retain_gen: Any,
    result: TrainResult,
    epoch: int,
    run_key: str,
) -> None:
    """Weights as safetensors, optimiser/schedule/RNG as tensors-only torch files, then
    ``state.json`` last (its presence marks a complete checkpoint)."""
    import json

    import torch
    from safetensors.torch import save_file

    from obliviate.io import atomic_write_text

    acc.wait_for_everyone()
    folder.mkdir(parents=True, exist_ok=True)  # every rank: each writes its own random stream
    if acc.is_main_process:
        state = {
            k: v.detach().cpu().contiguous()
            for k, v in acc.unwrap_model(model).state_dict().items()
        }
        save_file(_dedupe_shared(state), str(folder / "model.safetensors"))
        torch.save(
            {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
            folder / "optim.pt",
        )
    torch.save(
        {
            "retain_gen": retain_gen.get_state(),
            "retain_indices": torch.tensor(result.retain_indices, dtype=torch.long),
        },
        folder / f"rng_{acc.process_index}.pt",
    )
    acc.wait_for_everyone()
    if acc.is_main_process:
        atomic_write_text(
            folder / "state.json",
            json.dumps({"epoch": epoch, "steps": result.steps, "log": result.log, "key": run_key}),
        )
    acc.wait_for_everyone()


def _dedupe_shared(state: dict[str, Any]) -> dict[str, Any]:
    """safetensors refuses tensors that share memory (tied embeddings): clone them."""
    seen: set[int] = set()
    out = {}
    for k, v in state.items():
        ptr = v.data_ptr()
        out[k] = v.clone() if ptr in seen else v
        seen.add(ptr)
    return out


def _load_checkpoint(
    folder: Path,
    acc: Any,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    retain_gen: Any,
    result: TrainResult,
    run_key: str,
) -> int:
    """Restore a checkpoint written by :func:`_save_checkpoint`; returns the next epoch.
    Only files this trainer wrote are read, with ``weights_only=True`` (no arbitrary unpickling)."""
    import json

    import torch
    from safetensors.torch import load_file

    state = json.loads((folder / "state.json").read_text())
    if state.get("key") != run_key:
        import warnings

        warnings.warn(
            f"ignoring checkpoint {folder}: it belongs to other settings or data", stacklevel=3
        )
        return 0
    acc.unwrap_model(model).load_state_dict(
        load_file(str(folder / "model.safetensors")), strict=False
    )
    opt = torch.load(folder / "optim.pt", weights_only=True)
    optimizer.load_state_dict(opt["optimizer"])
    scheduler.load_state_dict(opt["scheduler"])
    result.steps = int(state["steps"])
    result.log = list(state["log"])
    rng = torch.load(folder / f"rng_{acc.process_index}.pt", weights_only=True)
    retain_gen.set_state(rng["retain_gen"])  # this rank's own retain stream and its draws so far
    result.retain_indices = rng["retain_indices"].tolist()
    return int(state["epoch"])
