"""The pure maths of EUL (objective, fusion), SPUL (objective) and Ext-Sub (extraction,
subtraction) against values computed by hand on tiny tensors (docs/methods.md)."""

from __future__ import annotations

import math

import pytest
import torch

from obliviate.methods import functional as F

LN3 = math.log(3.0)


def _batch(answer_logits: list[float], label: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One row: BOS, the answer token ``label``, a padding position. Position 0 predicts the
    answer; position 1 predicts padding (-100) and its logits are NaN: never read."""
    z = torch.tensor([[answer_logits, [math.nan, math.nan], [math.nan, math.nan]]])
    labels = torch.tensor([[-100, label, -100]])
    return z, labels


def test_eul_loss_by_hand():
    zf, lf = _batch([0.0, 0.0], 0)  # student on forget: p = (.5, .5)
    rf, _ = _batch([LN3, 0.0], 0)  # teacher on forget: p = (.75, .25)
    zr, lr = _batch([0.0, LN3], 1)  # student on retain: p = (.25, .75)
    rr, _ = _batch([0.0, 0.0], 1)  # teacher on retain: p = (.5, .5)
    kl_f = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    nll_f = -math.log(0.5)
    kl_r = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    nll_r = -math.log(0.75)
    loss, parts = F.eul_loss(zf, rf, lf, zr, rr, lr, alpha=2.0, beta=3.0, lam=5.0, gamma=7.0)
    assert loss.item() == pytest.approx(2 * kl_r - 3 * kl_f + 5 * nll_r - 7 * nll_f, abs=1e-6)
    assert parts["kl_forget"].item() == pytest.approx(kl_f, abs=1e-6)
    assert parts["kl_retain"].item() == pytest.approx(kl_r, abs=1e-6)
    assert parts["nll_forget"].item() == pytest.approx(nll_f, abs=1e-6)
    assert parts["nll_retain"].item() == pytest.approx(nll_r, abs=1e-6)
    only_forget, parts = F.eul_loss(zf, rf, lf, beta=3.0, gamma=7.0)  # no retain batch
    assert only_forget.item() == pytest.approx(-3 * kl_f - 7 * nll_f, abs=1e-6)
    assert "kl_retain" not in parts


def test_eul_loss_without_answer_tokens_is_zero_with_a_graph():
    z = torch.zeros(1, 3, 2, requires_grad=True)
    labels = torch.full((1, 3), -100)
    loss, _ = F.eul_loss(z, z.detach(), labels, z, z.detach(), labels)
    loss.backward()
    assert loss.item() == 0.0 and z.grad is not None and not z.grad.any()


def test_spul_loss_by_hand():
    zr, lr = _batch([0.0, LN3], 1)
    rr, _ = _batch([0.0, 0.0], 1)
    nll_r = -math.log(0.75)
    kl_r = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    lf = torch.tensor(1.25)
    loss, parts = F.spul_loss(lf, zr, rr, lr, alpha=0.5, beta=2.0)
    assert loss.item() == pytest.approx(1.25 + 0.5 * nll_r + 2.0 * kl_r, abs=1e-6)
    assert parts["kl_retain"].item() == pytest.approx(kl_r, abs=1e-6)
    assert F.spul_loss(lf)[0].item() == 1.25


def test_augmented_gram_appends_a_column_of_ones():
    g = F.augmented_gram(torch.tensor([[1.0], [-1.0]]))
    assert g.dtype == torch.float64 and g.tolist() == [[2.0, 0.0], [0.0, 2.0]]
    g = F.augmented_gram(torch.tensor([[2.0], [0.0]]))
    assert g.tolist() == [[4.0, 2.0], [2.0, 2.0]]


def test_fuse_linear_closed_form_by_hand():
    # request 1: inputs x ∈ {1, -1}, layer y = 3x + 1; request 2: x ∈ {2, 0}, layer y = 0.
    # (G1 + G2) w = G1 w1 + G2 w2: [[6, 2], [2, 4]] (w, b) = (6, 2)  ->  w = 1, b = 0, the
    # least-squares fit of both layers' outputs on both requests' inputs.
    g1 = F.augmented_gram(torch.tensor([[1.0], [-1.0]]))
    g2 = F.augmented_gram(torch.tensor([[2.0], [0.0]]))
    w, b = F.fuse_linear(
        [torch.tensor([[3.0]]), torch.tensor([[0.0]])],
        [torch.tensor([1.0]), torch.tensor([0.0])],
        [g1, g2],
        ridge=0.0,
    )
    assert w.tolist() == [[pytest.approx(1.0)]] and b.tolist() == [pytest.approx(0.0, abs=1e-12)]


def test_fuse_linear_keeps_each_layer_on_its_own_inputs():
    # request 1 only uses input dim 0, request 2 only dim 1 (both through the origin: no bias
    # information, ridge pulls the bias to the mean) -> the fused weight takes column 0 from
    # layer 1 and column 1 from layer 2
    x1, x2 = torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), torch.tensor([[0.0, 2.0], [0.0, -2.0]])
    w1, w2 = torch.tensor([[1.0, 5.0]]), torch.tensor([[7.0, 2.0]])
    bias = torch.zeros(1)
    w, b = F.fuse_linear(
        [w1, w2], [bias, bias], [F.augmented_gram(x1), F.augmented_gram(x2)], ridge=1e-9
    )
    assert w[0].tolist() == [pytest.approx(1.0, abs=1e-6), pytest.approx(2.0, abs=1e-6)]
    assert b.tolist() == [pytest.approx(0.0, abs=1e-6)]


def test_fuse_linear_identical_layers_and_associativity():
    torch.manual_seed(0)
    w, b = torch.randn(3, 2), torch.randn(3)
    singular = F.augmented_gram(torch.ones(4, 2))  # rank 1
    fw, fb = F.fuse_linear([w, w], [b, b], [singular, 2 * singular])
    assert torch.allclose(fw, w, atol=1e-6) and torch.allclose(fb, b, atol=1e-6)
    ws, bs = [torch.randn(3, 2) for _ in range(3)], [torch.randn(3) for _ in range(3)]
    gs = [F.augmented_gram(torch.randn(6, 2)) for _ in range(3)]
    all_at_once = F.fuse_linear(ws, bs, gs, ridge=0.0)
    w12, b12 = F.fuse_linear(ws[:2], bs[:2], gs[:2], ridge=0.0)
    stepwise = F.fuse_linear([w12, ws[2]], [b12, bs[2]], [gs[0] + gs[1], gs[2]], ridge=0.0)
    for x, y in zip(all_at_once, stepwise):
        assert torch.allclose(x, y, atol=1e-5)


def test_fuse_linear_rejects_mismatched_layers():
    g = F.augmented_gram(torch.ones(2, 2))
    with pytest.raises(ValueError, match="differ in shape"):
        F.fuse_linear([torch.zeros(1, 2), torch.zeros(2, 2)], [torch.zeros(1)] * 2, [g, g])
    with pytest.raises(ValueError, match="Gram matrix"):
        F.fuse_linear([torch.zeros(1, 2)], [torch.zeros(1)], [torch.eye(2)])
    with pytest.raises(ValueError, match="at least 1"):
        F.fuse_linear([], [], [])


def test_ext_sub_extraction_by_hand():
    # row 0: expert (1, 0), anti (1, 1): the bisector is at 22.5°, the common part of the
    #        anti-expert row is (1/2 + √2/2, 1/2), its deficiency (1/2 - √2/2, 1/2).
    # row 1: expert (1, 0), anti (-2, 0): opposite rows share nothing -> all deficiency.
    # row 2: expert (0, 0), anti (0, 3): the expert did not move: all deficiency.
    # row 3: expert (0, 4), anti (0, 3): the same direction: no deficiency.
    r2 = math.sqrt(2.0)
    expert = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 4.0]])
    anti = torch.tensor([[1.0, 1.0], [-2.0, 0.0], [0.0, 3.0], [0.0, 3.0]])
    d = F.ext_sub_deficiency(expert, anti)
    want = [[0.5 - r2 / 2, 0.5], [-2.0, 0.0], [0.0, 3.0], [0.0, 0.0]]
    for row, w in zip(d.tolist(), want):
        assert row == [pytest.approx(v, abs=1e-6) for v in w]
    c = torch.tensor([math.cos(math.pi / 8), math.sin(math.pi / 8)])
    assert float(d[0] @ c) == pytest.approx(0.0, abs=1e-6)  # orthogonal to the common part
    upd = F.ext_sub_update(expert, anti, scale=2.0)
    assert upd[0].tolist() == [pytest.approx(r2, abs=1e-6), pytest.approx(-1.0, abs=1e-6)]
    assert upd[1].tolist() == [pytest.approx(5.0), pytest.approx(0.0)]
    assert upd[3].tolist() == [pytest.approx(0.0), pytest.approx(4.0)]
    with pytest.raises(ValueError, match="one shape"):
        F.ext_sub_deficiency(torch.zeros(2, 2), torch.zeros(2, 3))
