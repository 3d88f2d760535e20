"""The shipped accelerate launch configs parse, and launches obliviate cannot run (accelerate's
FSDP integration, DeepSpeed ZeRO-3 without deepspeed or a GPU) are refused in one sentence."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from obliviate.sharding import check_launch
from obliviate.training import get_accelerator

CONFIGS = Path(__file__).resolve().parents[2] / "examples" / "accelerate"


@pytest.mark.parametrize(
    ("name", "kind"), [("ddp", "MULTI_GPU"), ("fsdp", "MULTI_GPU"), ("zero3", "DEEPSPEED")]
)
def test_shipped_configs_parse(name: str, kind: str) -> None:
    from accelerate.commands.config.config_args import ClusterConfig

    cfg = ClusterConfig.from_yaml_file(str(CONFIGS / f"{name}.yaml"))
    assert cfg.distributed_type.value == kind
    assert cfg.num_processes == 8 and not cfg.use_cpu
    if name == "zero3":
        assert cfg.deepspeed_config["zero_stage"] == 3
    if name == "fsdp":  # obliviate shards itself: the command in the file says how
        assert "--set train.shard=fsdp" in (CONFIGS / "fsdp.yaml").read_text()


def test_zero3_launch_without_deepspeed_or_gpu_is_refused(monkeypatch) -> None:
    env = {"ACCELERATE_USE_DEEPSPEED": "true"}
    if importlib.util.find_spec("deepspeed") is None:
        reason = "the deepspeed package is not installed"
    else:
        reason = "needs CUDA GPUs" if not _cuda() else "does not drive DeepSpeed"
    with pytest.raises(ValueError, match=rf"DeepSpeed ZeRO-3 but .*{reason}.*train.shard=fsdp"):
        check_launch(env)
    # what `accelerate launch --config_file zero3.yaml` sets reaches the trainer's accelerator
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ValueError, match="DeepSpeed ZeRO-3") as err:
        get_accelerator()
    assert "\n" not in str(err.value)


def test_accelerate_fsdp_launch_is_refused() -> None:
    with pytest.raises(ValueError, match=r"accelerate's FSDP integration .* train.shard=fsdp"):
        check_launch({"ACCELERATE_USE_FSDP": "true"})
    check_launch({"ACCELERATE_USE_FSDP": "false", "ACCELERATE_USE_DEEPSPEED": "false"})
    check_launch({})


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
