"""EUL (Chen & Yang 2023, arXiv 2310.20150): the unlearning layer's forward by hand, the hooks
on a micro Llama, training that leaves the base untouched, save/reload, and the fusion of two
requests' layers (docs/methods.md, ``eul``)."""

from __future__ import annotations

import copy

import pytest
import torch
from micro_models import micro_llama  # tests/unit/micro_models.py

from obliviate.data.collate import pad_batch
from obliviate.data.types import UnlearningRequest
from obliviate.inference.eul_model import EULModel, UnlearningLayer
from obliviate.methods import functional as F
from obliviate.methods.base import UnlearnJob, build_method


@pytest.fixture(scope="module")
def micro():
    return micro_llama(12, layers=2)


TRAIN = {"lr": 1e-2, "max_steps": 3, "batch_size": 4, "warmup_epochs": 0, "checkpoint": False}


def _job(micro, model=None, forget=slice(0, 4)):
    req = UnlearningRequest(forget=micro["items"][forget], retain=micro["items"][8:])
    net = model if model is not None else copy.deepcopy(micro["model"])
    return UnlearnJob(net, micro["tok"], req, progress=False)


def _probe(micro):
    ids = [micro["tok"](f"Question: {it.question}\nAnswer:")["input_ids"] for it in micro["items"]]
    return pad_batch(ids[:6], micro["tok"].pad_token_id)


def test_unlearning_layer_forward_by_hand():
    lay = UnlearningLayer(2, 1)
    h = torch.tensor([[3.0, 1.0], [1.0, 3.0]])
    assert torch.equal(lay(h), h)  # a fresh layer is the identity (W_up = 0, b_up = 0)
    with torch.no_grad():
        lay.down.weight.copy_(torch.tensor([[1.0, -1.0]]))
        lay.down.bias.zero_()
        lay.up.weight.copy_(torch.tensor([[2.0], [3.0]]))
        lay.up.bias.copy_(torch.tensor([0.5, 0.0]))
    # h = (3, 1): down 2, ReLU 2, up (4.5, 6) -> (7.5, 7); h = (1, 3): down -2, ReLU 0 -> + b_up
    assert lay(h).tolist() == [[7.5, 7.0], [1.5, 3.0]]


def test_unlearning_layer_records_the_grams_of_masked_positions_only():
    lay = UnlearningLayer(2, 1)
    with torch.no_grad():
        lay.down.weight.copy_(torch.tensor([[1.0, -1.0]]))
        lay.down.bias.zero_()
    h = torch.tensor([[[3.0, 1.0], [1.0, 3.0], [9.0, 9.0]]])  # last position is padding
    lay.record = torch.tensor([[True, True, False]])
    lay(h)
    assert lay.grams["down"].tolist() == F.augmented_gram(h[0, :2]).tolist()
    # inputs of up: ReLU(down h) = 2 and 0
    assert lay.grams["up"].tolist() == [[4.0, 2.0], [2.0, 2.0]]


def test_hooks_apply_the_layers_and_layers_off_gives_the_base(micro):
    base = copy.deepcopy(micro["model"])
    probe = _probe(micro)
    real = probe["attention_mask"].bool()  # (padding positions get other position ids)
    with torch.no_grad():
        want = base(**probe).logits[real]
        model = EULModel(base, micro["tok"], bottleneck=4)
        assert model.module_names == ["model.layers.0.mlp", "model.layers.1.mlp"]
        assert torch.equal(model(**probe).logits[real], want)  # fresh layers: the identity
        for p in model.layers.parameters():
            p.normal_()
        assert not torch.allclose(model(**probe).logits[real], want)
        with model.layers_off():
            assert torch.equal(model(**probe).logits[real], want)
    with pytest.raises(ValueError, match="matches no module"):
        EULModel(copy.deepcopy(micro["model"]), micro["tok"], modules=r"nothing\.here$")


def test_training_moves_only_the_layers_and_saves_and_reloads(micro, tmp_path):
    from obliviate.models.loading import load_model

    job = _job(micro)
    before = {n: t.clone() for n, t in job.model.state_dict().items()}
    out = build_method("eul", {"bottleneck": 4, "train": TRAIN}).unlearn(job)
    model = out.model
    assert isinstance(model, EULModel) and out.info["steps"] == 3 and out.info["n_fused"] == 1
    assert out.trainable_params == sum(p.numel() for p in model.layers.parameters())
    for n, t in model.base.state_dict().items():  # every original weight, byte for byte
        assert torch.equal(t, before[n]), n
    assert set(model.grams) == {"0.down", "0.up", "1.down", "1.up"}
    probe = _probe(micro)
    with torch.no_grad():
        logits = model(**probe).logits
        assert not torch.allclose(logits, micro["model"](**probe).logits)
    model.save_pretrained(tmp_path / "eul")
    assert (tmp_path / "eul" / "eul_layers.safetensors").is_file()
    loaded = load_model(str(tmp_path / "eul"))
    assert isinstance(loaded, EULModel)
    with torch.no_grad():
        assert torch.equal(loaded(**probe).logits, logits)
    for k, g in model.grams.items():
        assert torch.equal(loaded.grams[k], g)
    left = pad_batch([probe["input_ids"][0][probe["attention_mask"][0].bool()].tolist()], 0)
    gen = dict(max_new_tokens=5, pad_token_id=micro["tok"].pad_token_id)
    assert torch.equal(model.generate(**left, **gen), loaded.generate(**left, **gen))


def test_a_second_request_fuses_both_layers_in_closed_form(micro, tmp_path):
    from obliviate.models.loading import load_model

    first = build_method("eul", {"bottleneck": 4, "train": TRAIN}).unlearn(_job(micro)).model
    first.save_pretrained(tmp_path / "a")

    def second(fuse: bool) -> EULModel:
        job = _job(micro, load_model(str(tmp_path / "a")), forget=slice(4, 8))
        method = build_method("eul", {"bottleneck": 4, "fuse": fuse, "train": TRAIN})
        return method.unlearn(job).model

    alone, fused = second(False), second(True)
    assert alone.n_fused == 1 and fused.n_fused == 2
    for i in range(2):
        for key in ("down", "up"):
            lins = [getattr(m.layers[i], key) for m in (alone, first)]
            gs = [alone.layers[i].grams[key], first.layers[i].grams[key]]
            w, b = F.fuse_linear([x.weight for x in lins], [x.bias for x in lins], gs)
            assert torch.allclose(getattr(fused.layers[i], key).weight, w, atol=1e-6)
            assert torch.allclose(getattr(fused.layers[i], key).bias, b, atol=1e-6)
            assert torch.allclose(fused.layers[i].grams[key], gs[0] + gs[1])
    fused.save_pretrained(tmp_path / "ab")
    probe = _probe(micro)
    with torch.no_grad():
        assert torch.equal(load_model(str(tmp_path / "ab"))(**probe).logits, fused(**probe).logits)
    job = _job(micro, load_model(str(tmp_path / "a")))
    with pytest.raises(ValueError, match="same size"):
        build_method("eul", {"bottleneck": 8, "train": TRAIN}).unlearn(job)


def test_eul_needs_a_retain_set_for_its_retain_terms(micro):
    job = _job(micro)
    job.request = UnlearningRequest(forget=micro["items"][:4], retain=[])
    with pytest.raises(ValueError, match="no retain set"):
        build_method("eul", {"train": TRAIN}).unlearn(job)
    out = build_method("eul", {"alpha": 0.0, "lam": 0.0, "train": TRAIN}).unlearn(job)
    assert out.info["steps"] == 3
