"""Sharded training with DeepSpeed ZeRO-3 through accelerate (``train.shard=zero3``).

ZeRO stage 3 partitions the parameters, gradients and optimiser states over the ``N`` processes
(Rajbhandari+ 2020, "ZeRO", arXiv 1910.02054, section 5.3: ``P_os+g+p``, ``16 P / N`` bytes per
process for mixed-precision Adam) and gathers each layer's parameters for its forward and backward
pass. The launch decides the engine: ``accelerate launch --config_file
examples/accelerate/zero3.yaml`` gives accelerate's DeepSpeed plugin (stage, offload), and
:func:`configure` writes the run's own settings into it (micro-batch, gradient accumulation,
clipping, bf16), so one ``TrainConfig`` means the same run under every engine.

The trainer (:mod:`obliviate.training`) drives DeepSpeed's engine itself: ``engine.backward``
(which divides by the accumulation steps) and ``engine.step`` after every micro-batch (DeepSpeed
steps the optimiser, clips and clears the gradients at the accumulation boundary). The
checkpoints keep obliviate's format (:mod:`obliviate.checkpoints`): :func:`full_states` gathers
the fp32 master weights and the AdamW moments by parameter name through DeepSpeed's tensor
fragment API (``deepspeed.utils.safe_get_full_*``) and :func:`load_full_states` puts each
rank's partition back. :func:`consolidate` builds an ordinary model from the fp32 master
weights (docs/scale-out.md, "DeepSpeed ZeRO-3").
"""

from __future__ import annotations

import os
import sys
from typing import Any

from obliviate.config import TrainConfig

__all__ = [
    "check_engine",
    "configure",
    "consolidate",
    "full_states",
    "is_engine",
    "load_full_states",
    "settle",
    "uses_deepspeed",
]

_LAUNCH = "accelerate launch --config_file examples/accelerate/zero3.yaml -m obliviate ..."


def is_engine(model: Any) -> bool:
    """Whether ``model`` is a DeepSpeed engine (what ``accelerate.prepare`` returns under
    ZeRO)."""
    ds = sys.modules.get("deepspeed")
    return ds is not None and isinstance(model, ds.DeepSpeedEngine)


def uses_deepspeed(acc: Any) -> bool:
    """Whether the accelerator was launched with DeepSpeed (``distributed_type: DEEPSPEED``)."""
    return str(getattr(acc, "distributed_type", "")).endswith("DEEPSPEED")


def settle(acc: Any) -> Any:
    """``acc``, a new accelerator of a DeepSpeed launch, made fit for obliviate's trainer.

    Models are loaded whole and partitioned when training starts (``zero3_init_flag: false``):
    a method computes with the model before training (reference log-probabilities, frozen
    copies), so transformers must not partition models as they load (its
    ``is_deepspeed_zero3_enabled``, which accelerate turns on). On CPU (gloo) the rank and the
    number of processes are taken from DeepSpeed's process group: accelerate, whose DeepSpeed
    support assumes GPUs, counts one process of rank 0 there, so every rank would take every
    batch and write."""
    import torch.distributed as dist
    from accelerate.state import AcceleratorState, PartialState
    from transformers.integrations import unset_hf_deepspeed_config

    if acc.state.deepspeed_plugin.zero3_init_flag:
        raise ValueError(
            "zero3_init_flag: true is not supported: obliviate loads the model whole and "
            "partitions it when training starts; set zero3_init_flag: false in the accelerate "
            "config file"
        )
    unset_hf_deepspeed_config()
    if acc.device.type == "cpu" and dist.is_initialized():
        for state in (PartialState(), AcceleratorState()):
            state.num_processes = dist.get_world_size()
            state.process_index = dist.get_rank()
            state.local_process_index = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return acc


def check_engine(acc: Any, cfg: TrainConfig) -> None:
    """Refuse, in one sentence, a DeepSpeed launch without ``train.shard=zero3`` and
    ``train.shard=zero3`` without a DeepSpeed launch: the launch and the setting name the same
    engine, so a run's configuration says how it was trained."""
    launched = uses_deepspeed(acc)
    if launched and cfg.shard != "zero3":
        raise ValueError(
            "this launch uses DeepSpeed (distributed_type: DEEPSPEED): add --set "
            "train.shard=zero3 (or launch with examples/accelerate/ddp.yaml or fsdp.yaml)"
        )
    if cfg.shard == "zero3" and not launched:
        raise ValueError(f"train.shard=zero3 needs a DeepSpeed launch: {_LAUNCH}")


def configure(acc: Any, cfg: TrainConfig) -> None:
    """Write the run's micro-batch size, gradient accumulation, clipping and precision into the
    launch's DeepSpeed configuration (the accelerate config file gives the ZeRO stage and the
    offload devices). With bf16, gradients are reduced in fp32 (``communication_data_type``),
    as under FSDP."""
    plugin = acc.state.deepspeed_plugin
    ds = plugin.deepspeed_config
    stage = (ds.get("zero_optimization") or {}).get("stage")
    if stage != 3:
        raise ValueError(
            f"train.shard=zero3 needs zero_stage: 3 in the accelerate config file, not {stage!r} "
            "(examples/accelerate/zero3.yaml)"
        )
    bf16 = cfg.mixed_precision == "bf16"
    ds["train_micro_batch_size_per_gpu"] = cfg.batch_size
    ds["gradient_accumulation_steps"] = cfg.grad_accum
    ds.pop("train_batch_size", None)  # DeepSpeed derives it (x the number of processes)
    ds["gradient_clipping"] = float(cfg.max_grad_norm or 0.0)
    ds["bf16"] = {"enabled": bf16}
    ds["fp16"] = {"enabled": False}
    ds["communication_data_type"] = "fp32"
    plugin.gradient_accumulation_steps = cfg.grad_accum
    acc.gradient_accumulation_steps = cfg.grad_accum


ADAM_STATE = ("exp_avg", "exp_avg_sq")


def _cpu(t: Any) -> Any:
    return t.detach().to("cpu", copy=True)


def _named(model: Any) -> list[tuple[str, Any]]:
    return [(n, p) for n, p in model.module.named_parameters() if p.requires_grad]


def _inner(model: Any) -> Any:
    """The torch optimiser DeepSpeed steps (over its flat fp32 partitions)."""
    return model.optimizer.optimizer


def full_states(model: Any, optimizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The trained parameters' fp32 master weights and AdamW moments, by name, on CPU, and the
    learning rates and step count (every rank calls it: each tensor is all-gathered)."""
    import torch
    from deepspeed.utils import safe_get_full_fp32_param, safe_get_full_optimizer_state

    stepped = bool(_inner(model).state)  # AdamW creates its moments at the first step
    weights: dict[str, Any] = {}
    moments: dict[str, Any] = {}
    for name, p in _named(model):
        weights[name] = _cpu(safe_get_full_fp32_param(p))
        if stepped:
            moments[name] = {k: _cpu(safe_get_full_optimizer_state(p, k)) for k in ADAM_STATE}
    steps = [s["step"] for s in _inner(model).state.values() if "step" in s]
    step = torch.as_tensor(steps[0] if steps else 0.0, dtype=torch.float32).cpu()
    lrs = [float(g["lr"]) for g in optimizer.param_groups]
    return weights, {"moments": moments, "step": step, "lr": torch.tensor(lrs)}


def load_full_states(model: Any, optimizer: Any, weights: Any, optim: Any) -> None:
    """Put what :func:`full_states` returned (given on every rank) back: each rank keeps its
    partition of the fp32 master weights and AdamW moments, and the working (possibly bf16)
    weights are refreshed from the masters as after a DeepSpeed step."""
    import torch
    from deepspeed.utils import safe_set_full_fp32_param, safe_set_full_optimizer_state

    zero = model.optimizer
    inner = _inner(model)
    if optim["moments"]:
        # torch keeps AdamW's step on the parameters' device for its fused kernel
        on_device = any(g.get("fused") or g.get("capturable") for g in inner.param_groups)
        for flat in zero.fp32_partitioned_groups_flat:
            inner.state[flat] = {
                "step": optim["step"].to(flat.device if on_device else "cpu"),
                "exp_avg": torch.zeros_like(flat),
                "exp_avg_sq": torch.zeros_like(flat),
            }
    for name, p in _named(model):
        safe_set_full_fp32_param(p, weights[name].to(p.ds_tensor.device))
        for key, value in optim["moments"].get(name, {}).items():
            safe_set_full_optimizer_state(p, value.to(p.ds_tensor.device), key)
    for i in range(len(zero.fp32_partitioned_groups_flat)):
        zero._reassign_or_swap_out_partitioned_parameters(i)  # masters -> working weights
    for group, lr in zip(optimizer.param_groups, optim["lr"].tolist()):
        group["lr"] = lr


def consolidate(model: Any, acc: Any, plain: Any) -> Any:
    """An ordinary (unpartitioned) copy of the engine's model on every rank, on ``acc.device``:
    its :func:`obliviate.sharding.skeleton` ``plain`` (made before DeepSpeed partitioned and,
    with bf16, cast it; its frozen parameters and buffers kept) filled with the fp32 master
    weights of the trained parameters (every rank calls it: each is all-gathered in turn)."""
    from deepspeed.utils import safe_get_full_fp32_param

    from obliviate.sharding import fill

    full = {name: _cpu(safe_get_full_fp32_param(p)) for name, p in _named(model)}
    return fill(plain, full, acc, "ZeRO-3")
