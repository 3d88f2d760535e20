"""Hand-computed checks of the maths of Selective Amnesia, EraseDiff, SPM and the UnlearnDiff
token search (obliviate.diffusion.functional)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from obliviate.diffusion import functional as F


def t(*v):
    return torch.tensor(v, dtype=torch.float64)


# ----------------------------------------------------------------------------- Selective Amnesia


def test_diagonal_fisher_is_the_mean_squared_per_sample_gradient():
    grads = [[t(1.0, 2.0), t(4.0)], [t(3.0, 0.0), t(-2.0)]]
    fisher = F.diagonal_fisher(iter(grads))  # a generator works: one sample at a time
    assert fisher[0].tolist() == [5.0, 2.0]  # [(1 + 9) / 2, (4 + 0) / 2]
    assert fisher[1].tolist() == [10.0]  # (16 + 4) / 2
    with pytest.raises(ValueError, match="no samples"):
        F.diagonal_fisher([])
    with pytest.raises(ValueError, match="one gradient per parameter"):
        F.diagonal_fisher([[t(1.0)], [t(1.0), t(2.0)]])


def test_ewc_penalty_on_two_parameters():
    theta = [t(1.0).requires_grad_(True), t(2.0).requires_grad_(True)]
    anchors, fisher = [t(0.0), t(1.0)], [t(2.0), t(3.0)]
    # (λ/2) Σ F_i (θ_i − θ*_i)² = 0.5 · (2·1² + 3·1²) = 2.5 with λ = 1
    value = F.ewc_penalty(theta, anchors, fisher, 1.0)
    assert value.item() == pytest.approx(2.5)
    assert F.ewc_penalty(theta, anchors, fisher, 4.0).item() == pytest.approx(10.0)
    value.backward()  # ∂/∂θ_i = λ F_i (θ_i − θ*_i) = [2, 3]
    assert [p.grad.item() for p in theta] == [2.0, 3.0]
    # at the anchors the penalty and its gradient vanish
    assert F.ewc_penalty([t(0.0), t(1.0)], anchors, fisher, 1.0).item() == 0.0
    with pytest.raises(ValueError, match="one of each per parameter"):
        F.ewc_penalty(theta, anchors[:1], fisher, 1.0)
    with pytest.raises(ValueError, match="no parameters"):
        F.ewc_penalty([], [], [], 1.0)


# ----------------------------------------------------------------------------- EraseDiff


def test_erasediff_direction():
    d = F.erasediff_direction([t(1.0, 2.0)], [t(3.0, 1.0)], [t(1.0, 1.0)], 0.5)
    assert d[0].tolist() == [2.0, 2.0]  # [1 + 0.5·(3 − 1), 2 + 0.5·(1 − 1)]
    with pytest.raises(ValueError, match="one tensor per parameter"):
        F.erasediff_direction([t(1.0)], [], [t(1.0)], 1.0)


def test_erasediff_loss_has_the_penalised_value_and_the_first_order_gradient():
    p = t(1.0, 2.0).requires_grad_(True)
    remain = (p**2).sum()  # 5, gradient 2p = [2, 4]
    forget_theta = (3 * p).sum()  # 9, gradient [3, 3]
    forget_phi = t(5.0)
    loss = F.erasediff_loss(remain, forget_theta, forget_phi, [p], [t(1.0, -1.0)], 0.5)
    assert loss.item() == pytest.approx(7.0)  # 5 + 0.5 · (9 − 5)
    loss.backward()
    # ∇F + λ (∇f(θ) − ∇f(φ)) = [2, 4] + 0.5 · ([3, 3] − [1, −1]) = [3, 6]
    assert p.grad.tolist() == [3.0, 6.0]
    # a parameter the forget loss does not reach (gradient None) gets no shift
    q = t(1.0).requires_grad_(True)
    F.erasediff_loss((q * 2).sum(), q.sum() * 0, t(0.0), [q], [None], 1.0).backward()
    assert q.grad.item() == 2.0


def test_bilevel_step_on_quadratics():
    # F(θ) = (θ − 1)², f(φ) = (φ − 3)², θ = 0
    def grad_remain(th):
        return [2 * (th[0] - 1)]

    def grad_forget(ph):
        return [2 * (ph[0] - 3)]

    # K = 1, α = 0.25: φ_1 = 0 − 0.25·(−6) = 1.5, ∇f(φ_1) = −3; d = −2 + (−6 + 3) = −5
    out = F.bilevel_step([t(0.0)], grad_remain, grad_forget, 1.0, 1, 0.25, 0.1)
    assert out[0].item() == pytest.approx(0.5)
    # K = 2: φ_2 = 1.5 + 0.75 = 2.25, ∇f(φ_2) = −1.5; d = −2 + (−6 + 1.5) = −6.5
    out = F.bilevel_step([t(0.0)], grad_remain, grad_forget, 1.0, 2, 0.25, 0.1)
    assert out[0].item() == pytest.approx(0.65)
    with pytest.raises(ValueError, match="inner_steps"):
        F.bilevel_step([t(0.0)], grad_remain, grad_forget, 1.0, 0, 0.25, 0.1)


# ----------------------------------------------------------------------------- SPM


def test_spm_erase_target():
    e_t, e_s = t(1.0, 2.0).requires_grad_(True), t(0.0, 1.0)
    # ε_sur − η (ε_tar − ε_sur)
    assert F.spm_erase_target(e_t, e_s, 1.0).tolist() == [-1.0, 0.0]
    out = F.spm_erase_target(e_t, e_s, 2.0)
    assert out.tolist() == [-2.0, -1.0] and not out.requires_grad


def test_adapter_forward_and_its_merged_weight():
    x = t(1.0, 2.0)[None]
    w, b = t(1.0, 0.0, 0.0, 1.0).view(2, 2), t(0.5, -0.5)
    down, up = t(1.0, 1.0).view(1, 2), t(2.0, 0.0).view(2, 1)
    # W x + b = [1.5, 1.5]; dᵀx = 3; s · u · 3 = 0.5 · [6, 0] = [3, 0]
    y = F.adapter_forward(x, w, b, down, up, 0.5)
    assert y.tolist() == [[4.5, 1.5]]
    delta = F.adapter_delta(down, up, 0.5)
    assert delta.tolist() == [[1.0, 1.0], [0.0, 0.0]]
    assert torch.equal(torch.nn.functional.linear(x, w + delta, b), y)
    # a zero up-projection (a new adapter) changes nothing
    assert torch.equal(F.adapter_forward(x, w, b, down, up * 0, 0.5), x @ w.T + b)
    with pytest.raises(ValueError, match="adapter shapes do not fit"):
        F.adapter_delta(down, up.T, 1.0)


# ----------------------------------------------------------------------------- UnlearnDiff

VOCAB = t(0.0, 0.0, 1.0, 0.0, 0.0, 1.0).view(3, 2)


def test_nearest_tokens_with_an_allowed_mask_and_ties():
    e = t(0.9, 0.2, 0.1, 0.1, 0.4, 0.6).view(3, 2)
    assert F.nearest_tokens(e, VOCAB).tolist() == [1, 0, 2]
    # token 0 excluded: [0.1, 0.1] is equally far from tokens 1 and 2 -> the smaller id
    allowed = torch.tensor([False, True, True])
    assert F.nearest_tokens(e, VOCAB, allowed).tolist() == [1, 1, 2]
    with pytest.raises(ValueError, match="no allowed tokens"):
        F.nearest_tokens(e, VOCAB, torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="share D"):
        F.nearest_tokens(t(1.0, 2.0, 3.0).view(1, 3), VOCAB)


def test_token_search_step_moves_along_the_normalised_gradient_then_projects():
    cont = t(0.5, 0.5, 0.9, 0.1).view(2, 2)
    grad = t(3.0, 4.0, 0.0, 0.0).view(2, 2)  # row 1: |∇| = 5 -> step [0.6, 0.8]; row 2: none
    new, ids = F.token_search_step(cont, grad, VOCAB, 1.0)
    assert torch.allclose(new, t(-0.1, -0.3, 0.9, 0.1).view(2, 2))
    assert ids.tolist() == [0, 1]
    # the step length is lr, whatever the gradient's scale
    new2, _ = F.token_search_step(cont, grad * 1000, VOCAB, 1.0)
    assert torch.allclose(new, new2)
    with pytest.raises(ValueError, match="shape of the continuous"):
        F.token_search_step(cont, grad[:1], VOCAB, 1.0)
