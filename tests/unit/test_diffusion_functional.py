"""Hand-computed checks of the concept-erasure maths (obliviate.diffusion.functional)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from obliviate.data.types import DataError
from obliviate.diffusion import functional as F


def t(*v):
    return torch.tensor(v, dtype=torch.float64)


# ----------------------------------------------------------------------------- losses


def test_mse_is_mean_over_elements_and_rejects_bad_input():
    assert F.mse(t(1.0, 3.0), t(0.0, 0.0)).item() == pytest.approx(5.0)  # (1 + 9) / 2
    with pytest.raises(ValueError, match="shape mismatch"):
        F.mse(t(1.0), t(1.0, 2.0))
    with pytest.raises(ValueError, match="empty"):
        F.mse(torch.zeros(0), torch.zeros(0))


def test_esd_target_code_form_and_paper_equivalence():
    e_from, e_c, e_0 = t(1.0, 2.0), t(3.0, 1.0), t(1.0, 1.0)
    # ε_from − η (ε_c − ε_0) with η = 2: [1 − 2·2, 2 − 2·0]
    assert F.esd_target(e_from, e_c, e_0, 2.0).tolist() == [-3.0, 2.0]
    # with c_from = c, code η = 2 equals the paper's ε_0 − 1·(ε_c − ε_0)
    paper = e_0 - 1.0 * (e_c - e_0)
    assert torch.allclose(F.esd_target(e_c, e_c, e_0, 2.0), paper)


def test_esd_target_is_detached():
    e = t(1.0, 2.0).requires_grad_(True)
    assert not F.esd_target(e, e * 2, e * 0, 1.0).requires_grad


def test_ablation_loss_value_and_stop_gradient():
    pred = t(1.0, 2.0).requires_grad_(True)
    anchor = t(0.0, 0.0).requires_grad_(True)
    loss = F.ablation_loss(pred, anchor)
    assert loss.item() == pytest.approx(2.5)  # (1 + 4) / 2
    loss.backward()
    assert anchor.grad is None
    assert pred.grad.tolist() == [1.0, 2.0]  # d/dx mean((x − a)²) = (x − a)


def test_salun_loss_value_and_stop_gradient():
    eps_f = t(1.0, 1.0).requires_grad_(True)
    eps_m = t(0.0, 2.0).requires_grad_(True)
    # forget: ((1−0)² + (1−2)²)/2 = 1; retain: (2 − 0)² = 4; α = 0.1 -> 1.4
    loss = F.salun_loss(eps_f, eps_m, t(2.0), t(0.0), alpha=0.1)
    assert loss.item() == pytest.approx(1.4)
    loss.backward()
    assert eps_m.grad is None


def test_saliency_mask_keeps_the_largest_magnitudes_globally():
    grads = {"a": t(0.1, -0.5), "b": t(0.3, 0.0, 0.2, -0.4).view(2, 2)}
    mask = F.saliency_mask(grads, 0.5)  # 6 entries, keep 3: |−0.5|, |−0.4|, 0.3
    assert mask["a"].tolist() == [0.0, 1.0]
    assert mask["b"].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert mask["b"].shape == grads["b"].shape


def test_saliency_mask_ties_and_bounds():
    mask = F.saliency_mask({"a": t(1.0, 1.0, 0.5)}, 1 / 3)  # tie at the threshold: both kept
    assert mask["a"].tolist() == [1.0, 1.0, 0.0]
    assert F.saliency_mask({"a": t(1.0, 2.0)}, 1.0)["a"].tolist() == [1.0, 1.0]
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="ratio"):
            F.saliency_mask({"a": t(1.0)}, bad)
    with pytest.raises(ValueError, match="no gradients"):
        F.saliency_mask({}, 0.5)


def test_attention_resteer_loss_hand_value():
    probs = t(0.5, 0.25, 0.25, 0.1, 0.8, 0.1).view(1, 1, 2, 3)
    mask = torch.tensor([[False, True, False]])
    # queries: 0.25² and 0.8²; mean over the 2 queries
    assert F.attention_resteer_loss(probs, mask).item() == pytest.approx((0.0625 + 0.64) / 2)


def test_attention_resteer_loss_sums_tokens_means_heads_and_batch():
    p = torch.full((2, 2, 1, 4), 0.25, dtype=torch.float64)
    mask = torch.tensor([[True, True, False, False], [True, False, False, False]])
    # sample 0: 2·0.0625, sample 1: 0.0625; mean over batch and heads
    assert F.attention_resteer_loss(p, mask).item() == pytest.approx((0.125 + 0.0625) / 2)


def test_attention_resteer_loss_rejects_missing_concept_and_bad_shapes():
    p = torch.full((1, 1, 1, 3), 1 / 3)
    with pytest.raises(ValueError, match="at least one concept token"):
        F.attention_resteer_loss(p, torch.zeros(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="concept_mask"):
        F.attention_resteer_loss(p, torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="batch, heads"):
        F.attention_resteer_loss(p[0], torch.ones(1, 3, dtype=torch.bool))


# ----------------------------------------------------------------------------- UCE


def test_uce_closed_form_scalar_hand_value():
    # W* = (λW + s v c) / (λ + s c²) = (0.5·2 + 0) / (0.5 + 1)
    w = F.uce_closed_form(t(2.0).view(1, 1), t(1.0).view(1, 1), t(0.0).view(1, 1), lam=0.5)
    assert w.item() == pytest.approx(2 / 3)


def test_uce_closed_form_2d_erase_and_preserve_hand_values():
    W = t(1.0, 2.0, 3.0, 4.0).view(2, 2)
    e1, e2 = t(1.0, 0.0).view(1, 2), t(0.0, 1.0).view(1, 2)
    new = F.uce_closed_form(W, e1, t(0.0, 0.0).view(1, 2), preserve_keys=e2, lam=0.5)
    # (0.5W + 0 + (W e2) e2ᵀ) / 1.5 = [[1/3, 2], [1, 4]]: preserved column kept exactly,
    # erased column shrunk by λ/(λ+1)
    assert torch.allclose(new, t(1 / 3, 2.0, 1.0, 4.0).view(2, 2))
    assert torch.allclose(new @ e2.T, W @ e2.T)


def test_uce_closed_form_is_the_least_squares_optimum():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(3, 5, generator=g, dtype=torch.float64)
    ce, ve = (
        torch.randn(2, 5, generator=g, dtype=torch.float64),
        torch.randn(2, 3, generator=g, dtype=torch.float64),
    )
    cp = torch.randn(4, 5, generator=g, dtype=torch.float64)
    se, sp, lam = 1.5, 0.7, 0.3
    new = F.uce_closed_form(W, ce, ve, cp, se, sp, lam).requires_grad_(True)
    obj = (
        lam * (new - W).pow(2).sum()
        + se * (new @ ce.T - ve.T).pow(2).sum()
        + sp * (new @ cp.T - W @ cp.T).pow(2).sum()
    )
    obj.backward()
    assert new.grad.abs().max().item() < 1e-9


def test_uce_closed_form_rejects_bad_input():
    W = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="lambda"):
        F.uce_closed_form(W, torch.zeros(1, 3), torch.zeros(1, 2), lam=0.0)
    with pytest.raises(ValueError, match="erase_keys"):
        F.uce_closed_form(W, torch.zeros(1, 2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="erase_values"):
        F.uce_closed_form(W, torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="preserve_keys"):
        F.uce_closed_form(W, torch.zeros(1, 3), torch.zeros(1, 2), torch.zeros(2, 2))


def test_uce_closed_form_keeps_dtype_and_empty_preserve_is_ignored():
    W = torch.eye(2, dtype=torch.float32)
    a = F.uce_closed_form(W, torch.ones(1, 2), torch.zeros(1, 2), torch.zeros(0, 2))
    b = F.uce_closed_form(W, torch.ones(1, 2), torch.zeros(1, 2), None)
    assert a.dtype == torch.float32 and torch.equal(a, b)


# ----------------------------------------------------------------------------- prompts


def test_anchor_prompt_replaces_whole_words():
    assert F.anchor_prompt("a red circle", "red", "green") == "a green circle"
    assert F.anchor_prompt("a red circle", "red", "") == "a circle"
    assert F.anchor_prompt("A Red circle", "red", "blue") == "A blue circle"
    assert F.anchor_prompt("a reddish red circle", "red", "x") == "a reddish x circle"
    assert F.anchor_prompt("painting by Van Gogh", "van gogh", "") == "painting by"
    assert F.anchor_prompt("red", "red", "") == ""


def test_anchor_prompt_requires_the_concept():
    with pytest.raises(DataError, match="does not contain the concept 'red'"):
        F.anchor_prompt("a reddish circle", "red", "")
    with pytest.raises(DataError):
        F.anchor_prompt("a circle", "  ", "")
    assert not F.contains_concept("a reddish circle", "red")
    assert F.contains_concept("red, then blue", "red")


def test_align_replacement_same_length():
    # "<bos> a red circle <eos> <pad>" vs "<bos> a green circle <eos> <pad>"
    assert F.align_replacement(6, 2, 1, 1) == [(2, 2), (3, 3), (4, 4), (5, 5)]


def test_align_replacement_removed_concept_maps_to_previous_token_and_shifts_suffix():
    # "<bos> a red circle <eos> <pad>" vs "<bos> a circle <eos> <pad> <pad>"
    assert F.align_replacement(6, 2, 1, 0) == [(2, 1), (3, 2), (4, 3), (5, 4)]


def test_align_replacement_multi_token_concept_and_anchor():
    # concept of 2 tokens at 1, anchor of 3 tokens: suffix shifted by +1, last one dropped
    assert F.align_replacement(7, 1, 2, 3) == [(1, 1), (2, 2), (3, 4), (4, 5), (5, 6)]
    assert F.align_replacement(5, 1, 2, 1) == [(1, 1), (2, 1), (3, 2), (4, 3)]


def test_align_replacement_rejects_bad_positions():
    with pytest.raises(ValueError, match="bad alignment"):
        F.align_replacement(4, 0, 1, 1)  # the concept cannot replace <bos>
    with pytest.raises(ValueError, match="bad alignment"):
        F.align_replacement(4, 3, 2, 1)


def test_find_subsequence():
    assert F.find_subsequence([5, 1, 2, 3, 1, 2], [1, 2]) == 1
    assert F.find_subsequence([5, 1], [1, 2]) == -1
    assert F.find_subsequence([5, 1], []) == -1
