"""Sharded training with FSDP2 (``train.shard=fsdp``) and activation checkpointing.

:func:`prepare_model` applies ``torch.distributed.fsdp.fully_shard`` to every decoder layer and
then to the root module, so each rank holds ``1/N`` of the parameters, gradients and AdamW
state and all-gathers one layer at a time for its forward and backward pass (Zhao+ 2023,
"PyTorch FSDP", arXiv 2304.11277). With ``train.mixed_precision=bf16`` the layers compute in
bf16 and gradients are reduce-scattered in fp32 while the sharded master weights stay fp32.
:func:`consolidate` gathers the trained weights into an ordinary, unsharded copy of the model made
before sharding (:func:`skeleton`) on every rank (the one rank 0 saves with ``save_pretrained``). Frozen reference and teacher models are
not sharded: each rank keeps its own replica (docs/scale-out.md, "What is sharded").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from obliviate.config import TrainConfig

__all__ = [
    "check_launch",
    "consolidate",
    "decoder_layers",
    "enable_activation_checkpointing",
    "fill",
    "full_states",
    "is_sharded",
    "load_full_states",
    "prepare_model",
    "skeleton",
]


def check_launch(environ: Mapping[str, str] | None = None) -> None:
    """Refuse, in one sentence, an ``accelerate launch`` obliviate's trainer cannot run: one
    with accelerate's own FSDP integration (obliviate shards with ``train.shard=fsdp``), or a
    DeepSpeed one (examples/accelerate/zero3.yaml) without the ``deepspeed`` package.
    ``environ``: the launcher's variables (``os.environ``)."""
    import importlib.util
    import os

    env = os.environ if environ is None else environ
    if env.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        raise ValueError(
            "this launch asks for accelerate's FSDP integration (distributed_type: FSDP), which "
            "obliviate does not use: launch with examples/accelerate/fsdp.yaml and add --set "
            "train.shard=fsdp"
        )
    deepspeed = env.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"
    if deepspeed and importlib.util.find_spec("deepspeed") is None:
        raise ValueError(
            "this launch asks for DeepSpeed ZeRO-3 but the deepspeed package is not "
            "installed: pip install -e '.[deepspeed]', or launch with "
            "examples/accelerate/fsdp.yaml and --set train.shard=fsdp"
        )


def is_sharded(model: Any) -> bool:
    """Whether ``model`` is sharded: ``fully_shard`` was applied to it, or it is a DeepSpeed
    ZeRO-3 engine (:mod:`obliviate.zero3`)."""
    from torch.distributed.fsdp import FSDPModule

    from obliviate import zero3

    return isinstance(model, FSDPModule) or zero3.is_engine(model)


def decoder_layers(model: Any) -> list[Any]:
    """The repeated blocks of a causal LM: the ``torch.nn.ModuleList`` holding the most
    parameters (``model.layers`` of Llama/Mistral/Qwen, ``transformer.h`` of GPT-2, ...)."""
    import torch

    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m)]
    if not lists:
        raise ValueError(
            f"train.shard=fsdp: {type(model).__name__} has no list of decoder layers to shard; "
            "use train.shard=none"
        )
    best = max(lists, key=lambda m: sum(p.numel() for p in m.parameters()))
    return list(best)


def enable_activation_checkpointing(model: Any) -> None:
    """Recompute activations in the backward pass (``train.activation_checkpointing``): Hugging
    Face's activation (gradient) checkpointing with the non-reentrant ``torch.utils.checkpoint``,
    the one that works with FSDP2 and with inputs that need no gradient."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    elif hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        raise ValueError(
            "train.activation_checkpointing=true needs a Hugging Face model; "
            f"{type(model).__name__} has no gradient_checkpointing_enable"
        )


def prepare_model(model: Any, cfg: TrainConfig, acc: Any) -> Any:
    """Shard ``model`` in place over every process of the launch (``fully_shard`` on each
    decoder layer, then on the root); build the optimiser after this call."""
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    if not dist.is_available() or not dist.is_initialized() or acc.num_processes < 2:
        raise ValueError(
            "train.shard=fsdp needs several processes: launch with `torchrun --nproc_per_node N "
            "-m obliviate ...` (or accelerate launch --multi_gpu), or use train.shard=none"
        )
    if cfg.activation_checkpointing:
        enable_activation_checkpointing(model)
    mp = MixedPrecisionPolicy()
    if cfg.mixed_precision == "bf16":
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    mesh = init_device_mesh(acc.device.type, (acc.num_processes,))
    model.to(acc.device)
    for layer in decoder_layers(model):
        fully_shard(layer, mesh=mesh, mp_policy=mp)
    fully_shard(model, mesh=mesh, mp_policy=mp)
    return model


def full_states(model: Any, optimizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The full (unsharded) model and optimiser state dicts of a sharded model, on CPU, on rank
    0 (empty elsewhere); every rank must call it (``torch.distributed.checkpoint.state_dict``).
    The optimiser state is keyed by parameter name."""
    from obliviate import zero3

    if zero3.is_engine(model):
        return zero3.full_states(model, optimizer)
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    weights = get_model_state_dict(model, options=opts)
    return weights, dict(get_optimizer_state_dict(model, optimizer, options=opts))


def load_full_states(model: Any, optimizer: Any, weights: Any, optim: Any) -> None:
    """Load what :func:`full_states` returned (given on every rank) into the sharded model and
    its optimiser: each rank keeps its own shard."""
    from obliviate import zero3

    if zero3.is_engine(model):
        zero3.load_full_states(model, optimizer, weights, optim)
        return
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    opts = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, weights, options=opts)
    set_optimizer_state_dict(model, optimizer, optim, options=opts)


def skeleton(model: Any, keep_frozen: bool) -> Any:
    """A copy of ``model`` made before it is sharded, to receive the gathered weights after
    training (:func:`fill`): the same modules (a PEFT adapter's wrapper too) and tied weights,
    with the parameters on the meta device, costing no memory; with ``keep_frozen`` the
    parameters that are not trained are CPU copies instead. Buffers are CPU copies."""
    import copy

    import torch

    memo: dict[int, Any] = {}
    for p in model.parameters():
        if id(p) not in memo:
            keep = keep_frozen and not p.requires_grad
            data = p.detach().to("cpu", copy=True) if keep else torch.empty_like(p, device="meta")
            memo[id(p)] = torch.nn.Parameter(data, requires_grad=p.requires_grad)
    for b in model.buffers():
        memo.setdefault(id(b), b.detach().to("cpu", copy=True))
    return copy.deepcopy(model, memo)


def fill(plain: Any, weights: dict[str, Any], acc: Any, engine: str) -> Any:
    """Put the gathered ``weights`` (by parameter name) into the :func:`skeleton` ``plain``, tie
    its tied weights again, check that none is left on the meta device, and place it on
    ``acc.device``."""
    plain.load_state_dict(weights, strict=False, assign=True)
    if hasattr(plain, "tie_weights"):  # assign replaced the tied parameter's first owner only
        plain.tie_weights()
    missing = [n for n, p in plain.named_parameters() if p.is_meta]
    if missing:
        raise RuntimeError(f"consolidating the {engine} model left {missing[:3]} unset")
    acc.wait_for_everyone()
    return plain.to(acc.device).eval()


def consolidate(model: Any, acc: Any, plain: Any) -> Any:
    """An ordinary (unsharded) copy of the sharded ``model`` on every rank, on ``acc.device``:
    its :func:`skeleton` ``plain`` filled with the gathered weights.

    Every rank must call it: each parameter is all-gathered in turn (``DTensor.full_tensor``)
    and copied to CPU memory, so the extra accelerator memory is one parameter at a time."""
    from torch.distributed.tensor import DTensor

    full = {}
    for name, t in model.state_dict().items():
        t = t.full_tensor() if isinstance(t, DTensor) else t
        full[name] = t.detach().to("cpu", copy=True)
    return fill(plain, full, acc, "sharded")
