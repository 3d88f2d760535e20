"""SISA (Bourtoule+ 2021, arXiv 1912.03817): assignment, budgets, exactness of deletion,
aggregation and generation of the ensemble, save/load. Uses a micro Llama (random init) so
the whole file runs in seconds."""

from __future__ import annotations

import math

import pytest
import torch

from obliviate.config import TrainConfig
from obliviate.data.types import DataError, QAItem
from obliviate.methods.sisa import (
    SISAEnsemble,
    assign_shards,
    planned_steps,
    stage_epochs,
)

N_ITEMS = 24


@pytest.fixture(scope="module")
def micro():
    """A tokenizer and a 1-layer, 32-wide Llama over 24 short QA items."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from obliviate.models.tiny import train_tokenizer

    items = [
        QAItem(f"What is the colour of item {i}?", f"Item {i} is {c}.")
        for i, c in zip(range(N_ITEMS), ["red", "green", "blue", "teal"] * 6)
    ]
    tok = train_tokenizer([it.question + " " + it.answer for it in items], vocab_size=300)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    return {"tok": tok, "model": LlamaForCausalLM(cfg), "items": items}


TRAIN = TrainConfig(
    lr=1e-2,
    epochs=2,
    batch_size=4,
    warmup_epochs=0,
    scheduler="constant",
    weight_decay=0.01,
    seed=3,
)


def _fit(micro, assignment=None, peft=None, init="scratch"):
    torch.set_num_threads(1)
    return SISAEnsemble.fit(
        micro["model"],
        micro["tok"],
        micro["items"],
        TRAIN,
        shards=2,
        slices=3,
        init=init,
        peft=peft,
        assignment=assignment,
    )


# ----------------------------------------------------------------------------- pure helpers


def test_assign_shards_is_a_seeded_disjoint_balanced_partition():
    a = assign_shards(23, shards=3, slices=2, seed=5)
    flat = [i for shard in a for sl in shard for i in sl]
    assert sorted(flat) == list(range(23))
    assert [sum(len(sl) for sl in shard) for shard in a] == [8, 8, 7]
    assert [[len(sl) for sl in shard] for shard in a] == [[4, 4], [4, 4], [4, 3]]
    assert a == assign_shards(23, 3, 2, seed=5)
    assert a != assign_shards(23, 3, 2, seed=6)
    with pytest.raises(ValueError, match="cannot split 2 items into 3 shards"):
        assign_shards(2, 3, 1)
    with pytest.raises(ValueError, match=">= 1"):
        assign_shards(5, 1, 0)


def test_stage_epochs_and_planned_steps_by_hand():
    # e' = 2e/(R+1): 15 epochs, 4 slices -> 6 per stage; total work 6*(1+2+3+4)/4 = 15 passes
    assert stage_epochs(15, 4) == 6.0
    assert stage_epochs(2, 1) == 2.0
    cfg = TrainConfig(epochs=1.5, batch_size=4, grad_accum=2)
    # 9 items -> 3 batches -> ceil(3/2) = 2 steps per epoch -> ceil(1.5*2) = 3
    assert planned_steps(9, cfg) == 3
    assert planned_steps(0, cfg) == 0
    assert planned_steps(9, TrainConfig(epochs=1.5, batch_size=4, max_steps=7)) == 7


# ----------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_forgetting_retrains_one_shard_from_its_checkpoint_and_equals_training_without_it(
    micro, mode
):
    peft = {"r": 2, "lora_alpha": 4} if mode == "lora" else None
    init = "model" if peft else "scratch"
    ens, info = _fit(micro, peft=peft, init=init)
    per_stage = [
        [planned_steps(sum(len(sl) for sl in shard[:r]), ens._stage_cfg(s, r)) for r in range(1, 4)]
        for s, shard in enumerate(ens.assignment)
    ]
    assert info["steps"] == sum(map(sum, per_stage))  # the loop took exactly the planned steps
    # an item in slice 2 of shard 1: shard 1 resumes from its checkpoint after stage 1
    victim = ens.assignment[1][1][0]
    before_other = {k: v.clone() for k, v in ens.checkpoints[0][3].items()}
    before_ckpt1 = {k: v.clone() for k, v in ens.checkpoints[1][1].items()}
    report = ens.forget([micro["items"][victim]])
    assert report.removed == 1 and report.shards_retrained == [1]
    assert report.first_stage == {1: 2}
    assert report.steps == sum(
        planned_steps(sum(len(sl) for sl in ens.assignment[1][:r]), ens._stage_cfg(1, r))
        for r in (2, 3)
    )
    assert report.steps < report.full_retrain_steps
    assert victim not in ens.items
    assert all(victim not in sl for shard in ens.assignment for sl in shard)
    # untouched: the other shard and shard 1's checkpoint before the victim's slice
    for k, v in before_other.items():
        assert torch.equal(ens.checkpoints[0][3][k], v)
    for k, v in before_ckpt1.items():
        assert torch.equal(ens.checkpoints[1][1][k], v)
    # reference: the same assignment without the victim, trained from scratch, same seeds
    reduced = [
        [[i for i in sl if i != victim] for sl in shard]
        for shard in assign_shards(N_ITEMS, 2, 3, TRAIN.seed)
    ]
    ref, _ = _fit(micro, assignment=reduced, peft=peft, init=init)
    for s in range(2):
        got, want = ens.checkpoints[s][3], ref.checkpoints[s][3]
        assert set(got) == set(want)
        for k in want:
            assert torch.equal(got[k], want[k]), (
                f"shard {s} {k} differs from the from-scratch model"
            )
    x = torch.tensor([[micro["tok"].bos_token_id, 5, 6, 7]])
    assert torch.equal(ens(input_ids=x).logits, ref(input_ids=x).logits)
    if mode == "lora":  # adapters only: the shared base never changes
        base = dict(ens.peft_model.named_parameters())
        assert all("lora_" in n for n in ens.checkpoints[0][3])
        assert all(not p.requires_grad for n, p in base.items() if "lora_" not in n)


def test_forgetting_an_unknown_item_is_a_clear_error(micro):
    ens, _ = _fit(micro)
    with pytest.raises(
        DataError, match=r"forget item 1 .*not in this SISA ensemble's training data"
    ):
        ens.forget([QAItem("Who are you?", "Nobody.")])


# ----------------------------------------------------------------------------- the ensemble


def test_logits_are_the_log_of_the_averaged_shard_probabilities(micro):
    ens, _ = _fit(micro)
    x = torch.tensor([[micro["tok"].bos_token_id, 11, 12, 13, 14]])
    with torch.no_grad():
        p = [torch.softmax(ens.shard_model(s)(input_ids=x).logits, -1) for s in range(2)]
    want = torch.log((p[0] + p[1]) / 2)
    got = ens(input_ids=x, attention_mask=torch.ones_like(x)).logits
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(got.exp().sum(-1), torch.ones(1, 5), atol=1e-5)
    assert not torch.allclose(p[0], p[1])  # two different constituents are averaged


def test_generate_is_greedy_on_the_average_with_left_padding_and_cache(micro):
    ens, _ = _fit(micro)
    tok = micro["tok"]
    prompts = [
        tok("Question: What is the colour of item 3?\nAnswer:")["input_ids"],
        tok("Question: What?\nAnswer:")["input_ids"],
    ]
    width = max(map(len, prompts))
    pad = tok.pad_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    cached = ens.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, pad_token_id=pad)
    plain = ens.generate(
        input_ids=ids, attention_mask=mask, max_new_tokens=6, pad_token_id=pad, use_cache=False
    )
    assert torch.equal(cached, plain)
    for row, p in enumerate(prompts):  # each row = unpadded greedy decoding via __call__
        seq = torch.tensor([p])
        for _ in range(6):
            nxt = ens(input_ids=seq).logits[0, -1].argmax()
            seq = torch.cat([seq, nxt.view(1, 1)], 1)
        assert cached[row, width:].tolist() == seq[0, len(p) :].tolist()
    with pytest.raises(ValueError, match="greedy"):
        ens.generate(input_ids=ids, do_sample=True)


def test_eos_ends_a_sequence_and_pads_the_rest(micro):
    ens, _ = _fit(micro)
    x = torch.tensor([[micro["tok"].bos_token_id, 20, 21]])
    first = ens(input_ids=x).logits[0, -1].argmax().item()
    out = ens.generate(input_ids=x, max_new_tokens=4, eos_token_id=first, pad_token_id=0)
    assert out[0, 3:].tolist() == [first]  # stopped at once: every sequence is done


def test_save_and_load_round_trip_without_the_forgotten_item(micro, tmp_path):
    from obliviate.io import read_json, read_jsonl
    from obliviate.models.loading import WRAPPER_FILE

    ens, _ = _fit(micro)
    victim = micro["items"][ens.assignment[0][2][0]]
    ens.forget([victim])
    ens.save_pretrained(tmp_path / "ens")
    meta = read_json(tmp_path / "ens" / WRAPPER_FILE)
    assert meta["wrapper"] == "sisa" and meta["schema"] == 1 and meta["settings"]["removed"] == 1
    rows = read_jsonl(tmp_path / "ens" / "data.jsonl")
    assert len(rows) == N_ITEMS - 1 and victim.question not in {r["question"] for r in rows}
    back = SISAEnsemble.from_pretrained(tmp_path / "ens")
    assert back.fingerprint() == ens.fingerprint() == meta["fingerprint"]
    x = torch.tensor([[micro["tok"].bos_token_id, 30, 31, 32]])
    assert torch.equal(back(input_ids=x).logits, ens(input_ids=x).logits)
    from obliviate.models.loading import load_model, load_tokenizer, model_fingerprint

    loaded = load_model(str(tmp_path / "ens"))  # the generic loader finds the wrapper file
    assert isinstance(loaded, SISAEnsemble) and model_fingerprint(loaded) == ens.fingerprint()
    assert load_tokenizer(str(tmp_path / "ens")).get_vocab() == micro["tok"].get_vocab()
    # the loaded ensemble can keep forgetting, exactly as the original
    other = micro["items"][ens.assignment[1][0][0]]
    r1, r2 = ens.forget([other]), back.forget([other])
    assert r1.steps == r2.steps and r1.first_stage == r2.first_stage == {1: 1}
    assert torch.equal(back(input_ids=x).logits, ens(input_ids=x).logits)
    assert math.isclose(float(back(input_ids=x).logits.exp().sum(-1)[0, 0]), 1.0, rel_tol=1e-5)


def test_a_saved_ensemble_loads_in_a_fresh_interpreter(micro, tmp_path):
    """Loading must not depend on which obliviate packages were imported first: a new process
    that imports only the model loader finds the 'sisa' wrapper through the registry."""
    import subprocess
    import sys

    ens, _ = _fit(micro)
    ens.save_pretrained(tmp_path / "ens")
    code = (
        "import sys, obliviate.models.loading as l; m = l.load_model(sys.argv[1]); "
        "print(type(m).__name__, l.model_fingerprint(m))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "ens")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["SISAEnsemble", ens.fingerprint()]
