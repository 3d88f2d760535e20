"""Simulated round-to-nearest quantisation: hand-computed grids and round-trip error bounds."""

from __future__ import annotations

import pytest
import torch

from obliviate.audits.quantise import quantise_model, quantise_tensor


def test_4bit_per_channel_hand_values():
    # row 0: max |w| = 1.75 -> scale 1.75/7 = 0.25 (exact in binary); w/scale = 7, -2.5, 1.5, 0.2
    #   round (ties to even): 7, -2, 2, 0 -> 1.75, -0.5, 0.5, 0.0
    # row 1: all zero -> stays zero (scale 0)
    # row 2: max 0.7 -> scale 0.1; 0.7, 0.33, -0.06 -> 7, 3.3, -0.6 -> 7, 3, -1 -> 0.7, 0.3, -0.1
    w = torch.tensor([[1.75, -0.625, 0.375, 0.05], [0.0, 0.0, 0.0, 0.0], [0.7, 0.33, -0.06, 0.0]])
    q = quantise_tensor(w, bits=4)
    expected = torch.tensor([[1.75, -0.5, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0], [0.7, 0.3, -0.1, 0.0]])
    assert torch.allclose(q, expected, atol=1e-6)
    assert q.dtype == w.dtype and q.shape == w.shape
    # round-trip error: 0, 0.125, 0.125, 0.05 in row 0 (<= scale/2 = 0.125); 0.03, 0.04 in row 2
    err = (q - w).abs()
    assert err[0].tolist() == pytest.approx([0.0, 0.125, 0.125, 0.05], abs=1e-6)
    assert err[2].max().item() == pytest.approx(0.04, abs=1e-6)
    assert torch.equal(w[1], q[1])


def test_8bit_hand_values_and_error_bound():
    # scale = 1/127; 0.5 * 127 = 63.5 -> 64 (ties to even) -> 64/127
    w = torch.tensor([[1.0, 0.5, -0.25]])
    q = quantise_tensor(w, bits=8)
    assert q[0, 0].item() == pytest.approx(1.0)
    assert q[0, 1].item() == pytest.approx(64 / 127)
    assert q[0, 2].item() == pytest.approx(-32 / 127)  # -31.75 -> -32
    torch.manual_seed(0)
    big = torch.randn(16, 64)
    for bits in (8, 4, 3):
        qb = quantise_tensor(big, bits)
        scale = big.abs().amax(1, keepdim=True) / (2 ** (bits - 1) - 1)
        assert ((qb - big).abs() <= scale / 2 + 1e-6).all()
        # values lie on the integer grid of their row
        assert torch.allclose(qb / scale, torch.round(qb / scale), atol=1e-4)
    # fewer bits, larger error
    e8 = (quantise_tensor(big, 8) - big).abs().mean()
    e4 = (quantise_tensor(big, 4) - big).abs().mean()
    assert e4 > 10 * e8


def test_group_size_uses_one_scale_per_group():
    # groups [4, 1] and [0.7, 0.1] at 4 bits: scales 4/7 and 0.1
    w = torch.tensor([[4.0, 1.0, 0.7, 0.1]])
    q = quantise_tensor(w, 4, group_size=2)
    assert torch.allclose(q, torch.tensor([[4.0, 8 / 7, 0.7, 0.1]]), atol=1e-6)
    # per channel instead: scale 4/7 for the whole row, 0.7 -> 1.225 -> 1 -> 4/7, 0.1 -> 0
    q_row = quantise_tensor(w, 4)
    assert torch.allclose(q_row, torch.tensor([[4.0, 8 / 7, 4 / 7, 0.0]]), atol=1e-6)


def test_quantise_tensor_errors_and_no_mutation():
    w = torch.ones(2, 4)
    before = w.clone()
    quantise_tensor(w, 4)
    assert torch.equal(w, before)
    with pytest.raises(ValueError, match="bits"):
        quantise_tensor(w, 1)
    with pytest.raises(ValueError, match="bits"):
        quantise_tensor(w, 4.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2-D"):
        quantise_tensor(torch.ones(3), 4)
    with pytest.raises(ValueError, match="group_size"):
        quantise_tensor(w, 4, group_size=3)


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(5, 4)
        self.proj = torch.nn.Linear(4, 4)
        self.lm_head = torch.nn.Linear(4, 5, bias=False)


def test_quantise_model_copies_and_skips_lm_head_embeddings_and_biases():
    torch.manual_seed(0)
    net = _Net()
    orig = {k: v.clone() for k, v in net.state_dict().items()}
    q, count = quantise_model(net, 4)
    assert count == 1  # proj only
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in orig.items())  # original untouched
    sd = q.state_dict()
    assert torch.equal(sd["proj.weight"], quantise_tensor(orig["proj.weight"], 4))
    assert not torch.equal(sd["proj.weight"], orig["proj.weight"])
    for k in ("emb.weight", "proj.bias", "lm_head.weight"):
        assert torch.equal(sd[k], orig[k])
    _q2, count2 = quantise_model(net, 8, skip=())
    assert count2 == 2
    with pytest.raises(ValueError, match=r"no nn.Linear"):
        quantise_model(torch.nn.Embedding(3, 2), 8)
