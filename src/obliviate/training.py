"""The one training loop: fine-tuning and every gradient-based unlearning method run through it.

Single process by default; under ``torchrun`` / ``accelerate launch --multi_gpu`` it runs data
parallel through accelerate (DDP; gloo on CPU), or with ``train.shard=fsdp`` with the model's
parameters, gradients and optimiser state sharded over the ranks (FSDP2,
:mod:`obliviate.sharding`). The micro-batches of an epoch are dealt out to the ranks and the
retain item paired with each forget item is a hash of (seed, epoch, position)
(:mod:`obliviate.sampling`), so a run's global batches do not depend on the number of
processes; logged losses are global means; the schedule is derived from the per-rank number of
micro-batches; only rank 0 writes files (docs/scale-out.md).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from obliviate import checkpoints
from obliviate.collapse import TrainingDiverged, check_collapse, diverged, nonfinite_weight
from obliviate.config import TrainConfig
from obliviate.data.collate import pad_batch
from obliviate.data.templates import Encoded
from obliviate.models.protocol import CausalLM
from obliviate.optimizer import make_optimizer
from obliviate.sampling import MicroBatch, epoch_micro_batches, retain_index
from obliviate.seeding import seed_everything

__all__ = ["TrainResult", "TrainingDiverged", "get_accelerator", "train_loop"]


class StepHook(Protocol):
    """Optional callbacks around the optimiser step (e.g. saliency masks). A hook that holds
    parameters also defines ``rebind(new)``, called with ``{id(old parameter): its
    replacement}`` when FSDP replaces them (:class:`obliviate.methods.saliency.SaliencyHook`)."""

    def after_backward(self, model: Any) -> None: ...

    def after_step(self, model: Any) -> None: ...


# (model, main batch, retain batch, step) -> (loss, logs); a log value may be a float or a
# 0-d tensor (read from the device once per optimiser step)
LossFn = Callable[["CausalLM", dict, "dict | None", int], "tuple[Any, dict[str, Any]]"]


@dataclass
class TrainResult:
    steps: int
    log: list[dict[str, float]] = field(default_factory=list)
    wall_s: float = 0.0
    stopped: str | None = None  # reason for an early stop
    retain_indices: list[int] = field(default_factory=list)  # drawn on this rank (for tests)
    # the trained model: the one given, or a consolidated unsharded copy under train.shard=fsdp
    model: Any = None


def collate_encoded(
    items: Sequence[Encoded], indices: Sequence[int], pad_id: int
) -> dict[str, Any]:
    import torch

    batch = pad_batch([e.input_ids for e in items], pad_id, [e.labels for e in items])
    batch["index"] = torch.tensor(list(indices), dtype=torch.long)
    return batch


def get_accelerator(accelerator: Any = None) -> Any:
    """The given accelerator, or a new ``accelerate.Accelerator`` for this launch (checked
    first by :func:`obliviate.sharding.check_launch`). Inside a data-parallel evaluation
    (:mod:`obliviate.parallel_eval`; the audit's relearning attack) every rank trains alone, as
    one process would: :class:`~obliviate.parallel_eval.LocalAccelerator`."""
    if accelerator is not None:
        return accelerator
    from obliviate.parallel_eval import current_local_accelerator

    local = current_local_accelerator()
    if local is not None:
        return local
    from accelerate import Accelerator

    from obliviate.sharding import check_launch

    check_launch()
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        from obliviate.zero3 import settle

        return settle(Accelerator())  # CUDA, or the CPU with gloo
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
    keep_checkpoint: bool = False,
    monitor: Any = None,
) -> TrainResult:
    """Optimise ``loss_fn(model, main_batch, retain_batch, step)`` over ``main_set``.

    ``main_set`` is the forget set for unlearning (or the training set for fine-tuning); when
    ``retain_set`` is given each main batch is paired with a random retain batch of equal size.

    With ``checkpoint_dir``, the full training state (weights, optimiser, schedule, every random
    stream, the position in the epoch, log) is saved there atomically after every epoch and
    every ``cfg.checkpoint_every`` steps (:mod:`obliviate.checkpoints`), and a later call with
    the same directory resumes from the newest valid checkpoint, giving a bit-identical result
    to an uninterrupted run. The directory is removed once training finishes, unless
    ``keep_checkpoint`` (a stage of a longer run): then the final state is saved and a later call
    restores it without training again; the caller removes the folder.

    A non-finite loss or gradient norm stops with :class:`TrainingDiverged` (the checkpoints
    are kept) before the optimiser step it would feed; so does a collapsed model
    (:mod:`obliviate.collapse`) unless ``cfg.allow_collapse``. The losses of the micro-batches,
    the gradient norm and the logged values are read from the device together, once per
    optimiser step: no host synchronisation per micro-batch. ``cfg.optimizer`` picks AdamW
    (in the implementation ``cfg.adamw``) or SOUL (:func:`obliviate.optimizer.make_optimizer`)
    and ``cfg.compile`` runs the loss on ``torch.compile(model)`` (docs/methods.md, "Training
    speed").

    ``monitor`` (an :class:`obliviate.early_stop.EarlyStopper`) is checked before the first
    step and every ``cfg.early_stop.every`` steps; its values join the log rows, it may stop
    training, and at the end it may restore the best state it kept (docs/sweep.md).
    """
    import torch

    from obliviate import sharding, zero3
    from obliviate.io import write_jsonl

    if not main_set:
        raise ValueError(f"{desc}: nothing to train on (empty training/forget set)")
    acc = get_accelerator(accelerator)
    seed_everything(cfg.seed)
    rank, world = acc.process_index, acc.num_processes
    zero3.check_engine(acc, cfg)
    sharded, engine = cfg.shard != "none", cfg.shard == "zero3"
    # the copy that receives the gathered weights after sharded training (no weight memory)
    plain = sharding.skeleton(model, keep_frozen=engine) if sharded else None
    holding = [h for h in hooks if hasattr(h, "rebind")]  # hooks that hold parameters
    if engine and holding:
        raise ValueError("train.shard=zero3 does not work with saliency masks (step hooks)")
    if cfg.shard == "fsdp":
        before = {id(p): name for name, p in model.named_parameters()}
        model = sharding.prepare_model(model, cfg, acc)
        after = dict(model.named_parameters())
        for h in holding:  # they follow the parameters' sharded replacements
            h.rebind({old: after[name] for old, name in before.items()})
    elif cfg.activation_checkpointing:
        sharding.enable_activation_checkpointing(model)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters: check the module selection / adapter settings")
    optimizer = make_optimizer(params, cfg)
    if engine:
        zero3.configure(acc, cfg)
    if cfg.shard != "fsdp":  # DDP, or DeepSpeed's engine (ZeRO-3) wrapping model and optimiser
        model, optimizer = acc.prepare(model, optimizer)
    ds_engine: Any = model if engine else None
    step_model: Any = torch.compile(model) if cfg.compile else model  # shares the parameters

    def micro_batches(epoch: int) -> list[MicroBatch]:
        return epoch_micro_batches(len(main_set), cfg.batch_size, cfg.seed, epoch, rank, world)

    n_batches = len(micro_batches(0))
    steps_per_epoch = max(1, math.ceil(n_batches / cfg.grad_accum))
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    scheduler = _scheduler(optimizer, cfg, total, steps_per_epoch)
    gens: dict[str, Any] = {}  # batches and retain draws are functions of (seed, epoch, position)
    autocast = _autocast(cfg, acc, sharded)  # FSDP and DeepSpeed cast themselves
    t0 = time.perf_counter()
    ckpt = Path(checkpoint_dir) if checkpoint_dir else None
    run_key = _run_key(cfg, main_set, retain_set, desc, acc.num_processes)
    state = checkpoints.LoopState()
    if ckpt is not None:
        state = (
            checkpoints.load_latest(ckpt, acc, model, optimizer, scheduler, gens, run_key, desc)
            or state
        )
    result = TrainResult(
        steps=state.step,
        log=state.log,
        stopped=state.stopped,
        retain_indices=state.retain_indices,
    )
    model.train()
    bar = None
    if progress and acc.is_main_process and not state.finished:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=result.steps, desc=desc, leave=False)
    epoch, skip, micro, first_retain = state.epoch, state.batch, state.micro, state.first_retain
    losses: list[Any] = []  # the micro-batch losses of the optimiser step under way
    micro_logs: list[dict[str, Any]] = []  # and their logged values
    done = state.finished or result.steps >= total
    every = cfg.early_stop.every if cfg.early_stop is not None else 0
    if monitor is not None and not done:
        monitor.check(model, result.steps)
    while not done:
        for i, micro_batch in enumerate(micro_batches(epoch)):
            if i < skip:  # consumed before the checkpoint this run resumed from
                continue
            positions, idx = [p for p, _ in micro_batch], [k for _, k in micro_batch]
            batch = collate_encoded([main_set[k] for k in idx], idx, pad_id)
            batch = {k: v.to(acc.device) for k, v in batch.items()}
            retain_batch = None
            if retain_set:
                n = len(retain_set)
                ridx = [retain_index(cfg.seed, epoch, p, n) for p in positions]
                result.retain_indices.extend(ridx)
                retain_batch = collate_encoded([retain_set[k] for k in ridx], ridx, pad_id)
                retain_batch = {k: v.to(acc.device) for k, v in retain_batch.items()}
            with autocast:
                loss, logs = loss_fn(step_model, batch, retain_batch, result.steps)
            losses.append(loss.detach())
            micro_logs.append(logs)
            if engine:  # DeepSpeed divides by the accumulation steps itself
                ds_engine.backward(loss)
            else:
                acc.backward(loss / cfg.grad_accum)
            micro += 1
            if micro % cfg.grad_accum:
                if engine:
                    ds_engine.step()  # counts the micro-batch; steps only at the boundary
                continue
            for h in hooks:
                h.after_backward(model)
            norm = None if engine else _clip(acc, sharded, params, cfg.max_grad_norm)
            values, grad_norm, logged = read_step(losses, norm, mean_logs(micro_logs), world)
            losses, micro_logs = [], []
            checked = [("loss", v) for v in values] + [("gradient norm", grad_norm)]
            for what, value in checked:
                if value is not None and not math.isfinite(value):
                    raise TrainingDiverged(
                        diverged(desc, what, value, result.steps, cfg.lr, cfg.max_grad_norm)
                    )
            if engine:  # clips, steps and clears the gradients; the norm is known after it
                ds_engine.step()
                gnorm = float(ds_engine.get_global_grad_norm() or 0.0)
                if not math.isfinite(gnorm):
                    clip = cfg.max_grad_norm
                    why = diverged(desc, "gradient norm", gnorm, result.steps, cfg.lr, clip)
                    raise TrainingDiverged(why)
            else:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            for h in hooks:
                h.after_step(model)
            result.steps += 1
            checkpoints.kill_point("step", result.steps)
            row = {
                "step": result.steps,
                "epoch": round(result.steps / steps_per_epoch, 4),
                "loss": sum(values) / len(values),
                "lr": float(scheduler.get_last_lr()[0]),
            }
            row.update(logged)
            result.log.append(row)
            if monitor is not None and every and result.steps % every == 0:
                reason = monitor.check(model, result.steps)
                row.update(monitor.last)
                if reason:
                    done = True
                    break
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
            last = i + 1 == n_batches
            save_every = cfg.checkpoint_every
            if ckpt is not None and (last or (save_every and result.steps % save_every == 0)):
                where = checkpoints.LoopState(
                    result.steps,
                    epoch + 1 if last else epoch,
                    0 if last else i + 1,
                    micro,
                    first_retain,
                    result.log,
                    result.retain_indices,
                )
                checkpoints.save(ckpt, acc, model, optimizer, scheduler, gens, where, run_key)
        skip = 0
        epoch += 1
    if bar is not None:
        bar.close()
    if monitor is not None and not state.finished:
        result.stopped = monitor.finish(model, result.steps) or result.stopped
    model.eval()
    # sharded: gather the trained weights into a plain (unsharded) model on every rank
    if engine:
        net = zero3.consolidate(model, acc, plain)
    else:
        net = sharding.consolidate(model, acc, plain) if sharded else acc.unwrap_model(model)
    result.model = net
    if not cfg.allow_collapse:
        bad = nonfinite_weight(net)
        if bad is not None or retain_set:
            clip = cfg.max_grad_norm
            check_collapse(net, retain_set or main_set, pad_id, acc.device, desc, cfg.lr, clip)
    if ckpt is not None:
        if keep_checkpoint and not state.finished:
            final = checkpoints.LoopState(
                result.steps, epoch, 0, micro, first_retain, result.log, result.retain_indices
            )
            final.finished, final.stopped = True, result.stopped
            checkpoints.save(ckpt, acc, model, optimizer, scheduler, gens, final, run_key, keep=1)
        elif not keep_checkpoint:
            checkpoints.remove(ckpt, acc)  # no rank may see the finished run's checkpoint
    result.wall_s = time.perf_counter() - t0
    if log_path is not None and acc.is_main_process:
        write_jsonl(log_path, result.log)
    return result


def mean_logs(micro_logs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The logged values of an optimiser step: each key's mean over the micro-batches that
    logged it (tensors stay on the device)."""
    import torch

    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for logs in micro_logs for k in logs):
        vals = [logs[key] for logs in micro_logs if key in logs]
        tensors = [v for v in vals if isinstance(v, torch.Tensor)]
        if not tensors:
            out[key] = sum(float(v) for v in vals) / len(vals)
            continue
        device = tensors[0].device
        dtype = torch.float32 if device.type == "mps" else torch.float64
        parts = [torch.as_tensor(v).detach().reshape(()).to(device, dtype) for v in vals]
        out[key] = torch.stack(parts).mean()
    return out


def read_step(
    losses: Sequence[Any], norm: Any, logs: dict[str, Any], world: int = 1
) -> tuple[list[float], float | None, dict[str, float]]:
    """The micro-batch losses, the gradient norm (or ``None``) and the logged values of one
    optimiser step as Python floats, copied from the device in one transfer: one host
    synchronisation per optimiser step, whatever the gradient accumulation.

    With ``world > 1`` processes the losses and logged values are the means over the ranks (one
    all-reduce, before the copy), so every rank logs the loss of the global batch; the gradient
    norm is already global."""
    import torch

    device = losses[0].device
    dtype = torch.float32 if device.type == "mps" else torch.float64  # exact for float32
    names = list(logs)
    tensors = [*losses, *(torch.as_tensor(logs[k]) for k in names)]
    flat = torch.stack([t.detach().reshape(()).to(device, dtype) for t in tensors])
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(flat)
        flat = flat / world
    if isinstance(norm, torch.Tensor):
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
        flat = torch.cat([flat, norm.detach().reshape(1).to(device, dtype)])
    values = flat.tolist()
    logged = dict(zip(names, values[len(losses) : len(losses) + len(names)]))
    if isinstance(norm, torch.Tensor):
        grad_norm: float | None = values[-1]
    else:
        grad_norm = None if norm is None else float(norm)
    return values[: len(losses)], grad_norm, logged


def _clip(acc: Any, sharded: bool, params: list[Any], max_norm: float) -> Any:
    """Clip the gradients to ``max_norm`` (0: no clipping) and return their global norm. Under
    FSDP the norm of the sharded (DTensor) gradients is reduced over every rank by torch."""
    import torch

    if not max_norm:
        return None
    if sharded:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    return acc.clip_grad_norm_(params, max_norm)


def _autocast(cfg: TrainConfig, acc: Any, sharded: bool) -> Any:
    """bf16 autocast for ``train.mixed_precision=bf16`` without sharding (FSDP casts itself:
    :func:`obliviate.sharding.prepare_model`); a no-op context otherwise."""
    import contextlib

    import torch

    if cfg.mixed_precision != "bf16" or sharded:
        return contextlib.nullcontext()
    return torch.autocast(acc.device.type, dtype=torch.bfloat16)


def _run_key(
    cfg: TrainConfig, main_set: Sequence[Encoded], retain_set: Any, desc: str, world_size: int
) -> str:
    """What a checkpoint must match to be resumed: settings, data and the number of processes
    (the position in the epoch is counted in this rank's micro-batches)."""
    import dataclasses
    import hashlib
    import json

    settings = dataclasses.asdict(cfg)
    for name in ("checkpoint", "checkpoint_every", "allow_collapse"):  # no effect on the result
        settings.pop(name)
    h = hashlib.sha256(json.dumps([settings, desc, world_size], default=str).encode())
    for e in list(main_set) + list(retain_set or []):
        h.update(bytes(str(e.input_ids), "ascii"))
    return h.hexdigest()[:16]
