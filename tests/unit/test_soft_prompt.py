"""Soft-prompt unlearning (SPUL, Bhaila+ 2024, arXiv 2406.12038): the prompted inputs by hand,
the wrapper's forward and generation against the base model run on [φ; E(x)], training that
leaves every weight byte identical, save/reload and the PEFT copy (docs/methods.md)."""

from __future__ import annotations

import copy

import pytest
import torch
from micro_models import micro_llama  # tests/unit/micro_models.py

from obliviate.data.collate import pad_batch
from obliviate.data.types import UnlearningRequest
from obliviate.inference.soft_prompt import SoftPromptModel, prompted_inputs
from obliviate.methods.base import UnlearnJob, build_method


@pytest.fixture(scope="module")
def micro():
    return micro_llama()


TRAIN = {"lr": 1e-2, "max_steps": 3, "batch_size": 4, "warmup_epochs": 0, "checkpoint": False}


def _prompts(micro, side="right"):
    ids = [micro["tok"](f"Question: {it.question}\nAnswer:")["input_ids"] for it in micro["items"]]
    ids = [ids[0], ids[1][:-3], ids[2][:-1]]  # different lengths: padding on one side
    return pad_batch(ids, micro["tok"].pad_token_id, side=side)


def test_prompted_inputs_by_hand():
    prompt = torch.tensor([[10.0], [20.0]])
    embeds = torch.tensor([[[1.0], [2.0], [0.0]], [[0.0], [3.0], [4.0]]])
    mask = torch.tensor([[1, 1, 0], [0, 1, 1]])  # right and left padding
    e, m, pos = prompted_inputs(prompt, embeds, mask)
    assert e[..., 0].tolist() == [[10, 20, 1, 2, 0], [10, 20, 0, 3, 4]]
    assert m.tolist() == [[1, 1, 1, 1, 0], [1, 1, 0, 1, 1]]
    assert pos.tolist() == [[0, 1, 2, 3, 3], [0, 1, 2, 2, 3]]


def test_forward_is_the_base_on_the_prepended_embeddings(micro):
    base = copy.deepcopy(micro["model"])
    model = SoftPromptModel(base, micro["tok"], n_tokens=3, seed=1)
    batch = _prompts(micro)
    with torch.no_grad():
        emb = base.get_input_embeddings()(batch["input_ids"])
        full = torch.cat([model.prompt[None].expand(3, -1, -1), emb], 1)
        mask = torch.cat([torch.ones(3, 3, dtype=torch.long), batch["attention_mask"]], 1)
        want = base(inputs_embeds=full, attention_mask=mask).logits[:, 3:]
        got = model(**batch).logits
        assert got.shape == batch["input_ids"].shape + (want.shape[-1],)
        real = batch["attention_mask"].bool()
        assert torch.allclose(got[real], want[real], atol=1e-5)
        assert not torch.allclose(got[real], base(**batch).logits[real], atol=1e-3)
        assert torch.equal(model(**batch, prompt=False).logits, base(**batch).logits)
    # initialised from vocabulary embeddings
    vocab = base.get_input_embeddings().weight
    assert all(any(torch.equal(row, v) for v in vocab) for row in model.prompt.detach())


def test_generate_matches_greedy_argmax_without_a_cache(micro):
    model = SoftPromptModel(copy.deepcopy(micro["model"]), micro["tok"], n_tokens=2)
    batch = _prompts(micro, side="left")
    out = model.generate(**batch, max_new_tokens=4, pad_token_id=micro["tok"].pad_token_id)
    eos = micro["tok"].eos_token_id
    for row in range(3):
        ids = batch["input_ids"][row][batch["attention_mask"][row].bool()].tolist()
        want = []
        with torch.no_grad():
            for _ in range(4):
                nxt = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
                want.append(nxt)
                ids.append(nxt)
                if nxt == eos:
                    break
        new = out[row, batch["input_ids"].shape[1] :].tolist()[: len(want)]
        assert new == want


def test_unlearning_trains_the_prompt_only_and_saves_and_reloads(micro, tmp_path):
    from peft import PeftModel

    from obliviate.models.loading import load_model

    net = copy.deepcopy(micro["model"])
    before = {n: t.clone() for n, t in net.state_dict().items()}
    req = UnlearningRequest(forget=micro["items"][:4], retain=micro["items"][4:])
    job = UnlearnJob(net, micro["tok"], req, progress=False)
    out = build_method("soft_prompt", {"n_tokens": 4, "train": TRAIN}).unlearn(job)
    model = out.model
    assert isinstance(model, SoftPromptModel) and out.info["steps"] == 3
    assert out.trainable_params == 4 * 32  # φ only
    for n, t in model.base.state_dict().items():  # every original weight, byte for byte
        assert torch.equal(t, before[n]), n
    initial = SoftPromptModel(copy.deepcopy(micro["model"]), micro["tok"], n_tokens=4).prompt
    assert not torch.equal(model.prompt.detach(), initial.detach())  # the prompt trained
    batch = _prompts(micro)
    model.save_pretrained(tmp_path / "sp")
    loaded = load_model(str(tmp_path / "sp"))
    assert isinstance(loaded, SoftPromptModel)
    with torch.no_grad():
        logits = model(**batch).logits
        assert torch.equal(loaded(**batch).logits, logits)
        # the same prompt as a PEFT prompt-tuning adapter on the saved base
        peft_model = PeftModel.from_pretrained(
            load_model(str(tmp_path / "sp" / "base")), str(tmp_path / "sp" / "prompt_adapter")
        )
        row = batch["input_ids"][:1]  # one unpadded row (PEFT does not shift positions)
        got = peft_model(input_ids=row).logits[:, 4:]
        assert torch.allclose(got, logits[:1], atol=1e-5)


def test_soft_prompt_errors(micro):
    req = UnlearningRequest(forget=micro["items"][:4], retain=[])
    job = UnlearnJob(copy.deepcopy(micro["model"]), micro["tok"], req, progress=False)
    with pytest.raises(ValueError, match="no retain set"):
        build_method("soft_prompt", {"train": TRAIN}).unlearn(job)
    with pytest.raises(ValueError, match="positive integer"):
        SoftPromptModel(copy.deepcopy(micro["model"]), micro["tok"], n_tokens=0)
