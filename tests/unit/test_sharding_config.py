"""train.shard / mixed_precision / activation_checkpointing: validation, one-sentence refusals
of what does not work sharded, and the unsharded bf16 autocast and activation checkpointing."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from obliviate.config import TrainConfig, from_dict, parse_value
from obliviate.data.templates import PromptTemplate, encode
from obliviate.methods import functional as F
from obliviate.methods.base import build_method
from obliviate.models.tiny import build_tiny_llama, train_tokenizer
from obliviate.sharding import decoder_layers
from obliviate.training import train_loop

FSDP = {"shard": "fsdp"}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"shard": "zero2"}, r"shard='zero2': choose one of none, fsdp, zero3"),
        ({"mixed_precision": "fp16"}, r"mixed_precision='fp16': choose one of no, bf16"),
        ({**FSDP, "optimizer": "soul"}, r"optimizer='soul' does not work with train.shard=fsdp"),
        ({**FSDP, "compile": True}, r"compile=True does not work with train.shard=fsdp"),
        ({**FSDP, "early_stop": {"every": 2}}, r"early_stop=.* does not work with train.shard"),
        ({"shard": "zero3", "compile": True}, r"compile=True does not work with train.shard=zero3"),
        ({"activation_checkpointing": "maybe"}, r"activation_checkpointing='maybe': expected bool"),
    ],
)
def test_bad_settings_are_one_sentence(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        from_dict(TrainConfig, settings, "train")
    assert "\n" not in str(err.value)


def test_defaults_and_coercion() -> None:
    cfg = from_dict(TrainConfig, {"activation_checkpointing": "yes", **FSDP}, "train")
    assert (cfg.shard, cfg.mixed_precision, cfg.activation_checkpointing) == ("fsdp", "no", True)
    assert (TrainConfig().shard, TrainConfig().mixed_precision) == ("none", "no")
    # `--set train.mixed_precision=no` is read by YAML rules as false
    no = from_dict(TrainConfig, {"mixed_precision": parse_value("no")}, "train")
    assert no.mixed_precision == "no"


def test_what_does_not_work_sharded_is_refused() -> None:
    job = SimpleNamespace()  # the refusal comes before the job is used
    method = build_method("graddiff", {"train": {"shard": "zero3"}, "saliency": 0.5})
    with pytest.raises(ValueError, match=r"saliency=0.5 does not work with train.shard=zero3"):
        method.unlearn(job)
    with pytest.raises(ValueError, match=r"'eul' is not a composed gradient method: train.shard"):
        build_method("eul", {"train": FSDP})
    for name in ("rmu", "rmu_adaptive"):  # built by a builder, trained by the one loop
        assert build_method(name, {"train": {"shard": "zero3"}}).train.shard == "zero3"


QA = [(f"Who is person {i}?", f"Person {i} lives in town {i % 3}.") for i in range(8)]


@pytest.fixture(scope="module")
def setup():
    tok = train_tokenizer([q + " " + a for q, a in QA], vocab_size=300)
    return tok, [encode(tok, q, a, PromptTemplate()) for q, a in QA]


def _nll(m, batch, rb, step):
    logits = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.nll_loss(logits, batch["labels"]), {}


def _train(tok, enc, **settings) -> tuple[list[float], torch.nn.Module]:
    cfg = TrainConfig(lr=1e-3, max_steps=3, batch_size=4, warmup_epochs=0, **settings)
    model = build_tiny_llama(tok, "xs")
    return [r["loss"] for r in train_loop(model, _nll, enc, cfg, 0, progress=False).log], model


def test_sharding_in_one_process_is_refused(setup) -> None:
    tok, enc = setup
    cfg = TrainConfig(max_steps=1, shard="fsdp")
    with pytest.raises(ValueError, match=r"needs several processes: launch with `torchrun"):
        train_loop(build_tiny_llama(tok, "xs"), _nll, enc, cfg, 0, progress=False)


def test_zero3_without_a_deepspeed_launch_is_refused(setup) -> None:
    tok, enc = setup
    cfg = TrainConfig(max_steps=1, shard="zero3")
    with pytest.raises(ValueError, match=r"zero3 needs a DeepSpeed launch: accelerate launch") as e:
        train_loop(build_tiny_llama(tok, "xs"), _nll, enc, cfg, 0, progress=False)
    assert "\n" not in str(e.value)


def test_bf16_autocast_and_activation_checkpointing_without_sharding(setup) -> None:
    tok, enc = setup
    plain, _ = _train(tok, enc)
    bf16, _ = _train(tok, enc, mixed_precision="bf16")
    assert bf16 != plain  # bf16 matmuls round differently
    assert bf16 == pytest.approx(plain, rel=2e-2)
    # recomputing the activations gives the same gradients
    recomputed, model = _train(tok, enc, activation_checkpointing=True)
    assert model.is_activation_checkpointing
    assert recomputed == pytest.approx(plain, abs=1e-6)


def test_decoder_layers_are_the_repeated_blocks(setup) -> None:
    tok, _ = setup
    model = build_tiny_llama(tok, "xs")
    assert decoder_layers(model) == list(model.model.layers)
    with pytest.raises(ValueError, match="no list of decoder layers"):
        decoder_layers(torch.nn.Linear(2, 2))
