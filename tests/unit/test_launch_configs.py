"""The shipped accelerate launch configs parse; launches obliviate cannot run (accelerate's FSDP
integration, DeepSpeed without the deepspeed package) are refused in one sentence; a DeepSpeed
launch gets the run's own batch, accumulation, clipping and precision (obliviate.zero3)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from obliviate import zero3
from obliviate.config import TrainConfig
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
    if name == "zero3":  # the run's settings, not the file, give batch, accumulation, clipping
        assert cfg.deepspeed_config["zero_stage"] == 3
        assert not cfg.deepspeed_config["zero3_init_flag"]
        assert "gradient_accumulation_steps" not in cfg.deepspeed_config
        assert "--set train.shard=zero3" in (CONFIGS / "zero3.yaml").read_text()
    if name == "fsdp":  # obliviate shards itself: the command in the file says how
        assert "--set train.shard=fsdp" in (CONFIGS / "fsdp.yaml").read_text()


def test_zero3_launch_without_deepspeed_is_refused(monkeypatch) -> None:
    env = {"ACCELERATE_USE_DEEPSPEED": "true"}
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "deepspeed" else real(name, *a),
    )
    with pytest.raises(ValueError, match=r"DeepSpeed ZeRO-3 but the deepspeed package is not"):
        check_launch(env)
    # what `accelerate launch --config_file zero3.yaml` sets reaches the trainer's accelerator
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ValueError, match="DeepSpeed ZeRO-3") as err:
        get_accelerator()
    assert "\n" not in str(err.value)


def _accelerator(distributed_type: str, stage: int | None = 3) -> SimpleNamespace:
    plugin = SimpleNamespace(
        deepspeed_config={
            "zero_optimization": {"stage": stage},
            "train_batch_size": "auto",
            "train_micro_batch_size_per_gpu": "auto",
            "gradient_accumulation_steps": 1,
        },
        gradient_accumulation_steps=1,
    )
    return SimpleNamespace(
        distributed_type=f"DistributedType.{distributed_type}",
        state=SimpleNamespace(deepspeed_plugin=plugin),
        num_processes=4,
        gradient_accumulation_steps=1,
    )


def test_the_launch_and_train_shard_name_the_same_engine() -> None:
    zero3.check_engine(_accelerator("DEEPSPEED"), TrainConfig(shard="zero3"))
    zero3.check_engine(_accelerator("MULTI_GPU"), TrainConfig(shard="fsdp"))
    with pytest.raises(ValueError, match=r"uses DeepSpeed .*: add --set train.shard=zero3"):
        zero3.check_engine(_accelerator("DEEPSPEED"), TrainConfig(shard="none"))
    with pytest.raises(ValueError, match=r"train.shard=zero3 needs a DeepSpeed launch"):
        zero3.check_engine(_accelerator("MULTI_GPU"), TrainConfig(shard="zero3"))


def test_zero3_takes_the_runs_batch_accumulation_clipping_and_precision() -> None:
    acc = _accelerator("DEEPSPEED")
    cfg = TrainConfig(
        shard="zero3", batch_size=3, grad_accum=5, max_grad_norm=0.5, mixed_precision="bf16"
    )
    zero3.configure(acc, cfg)
    ds = acc.state.deepspeed_plugin.deepspeed_config
    assert ds["train_micro_batch_size_per_gpu"] == 3 and ds["gradient_accumulation_steps"] == 5
    assert "train_batch_size" not in ds  # DeepSpeed derives 3 x 5 x the number of processes
    assert ds["gradient_clipping"] == 0.5
    assert ds["bf16"] == {"enabled": True} and ds["fp16"] == {"enabled": False}
    assert ds["communication_data_type"] == "fp32"  # gradients reduced in fp32, as under FSDP
    assert acc.gradient_accumulation_steps == 5
    zero3.configure(acc, TrainConfig(shard="zero3", max_grad_norm=0.0))
    assert ds["gradient_clipping"] == 0.0 and ds["bf16"] == {"enabled": False}
    with pytest.raises(ValueError, match=r"needs zero_stage: 3 in the accelerate config file"):
        zero3.configure(_accelerator("DEEPSPEED", stage=2), cfg)


def test_accelerate_fsdp_launch_is_refused() -> None:
    with pytest.raises(ValueError, match=r"accelerate's FSDP integration .* train.shard=fsdp"):
        check_launch({"ACCELERATE_USE_FSDP": "true"})
    check_launch({"ACCELERATE_USE_FSDP": "false", "ACCELERATE_USE_DEEPSPEED": "false"})
    check_launch({})
