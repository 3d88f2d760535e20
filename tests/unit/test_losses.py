"""Unit tests for obliviate.methods.functional against hand-computed values on tiny tensors.

Expected numbers are written from each paper's formula with ``math.log``/``math.exp``, never by
calling the function under test. Label convention (HF): labels are unshifted, the logits at
position t predict labels[t + 1]; -100 marks prompt and padding.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from obliviate.methods import functional as fn

IGN = -100


# --------------------------------------------------------------------------- hand maths


def lse(xs: list[float]) -> float:
    return math.log(sum(math.exp(x) for x in xs))


def logsoftmax(xs: list[float], i: int) -> float:
    return xs[i] - lse(xs)


def softmax(xs: list[float]) -> list[float]:
    s = lse(xs)
    return [math.exp(x - s) for x in xs]


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def kl(p_logits: list[float], q_logits: list[float]) -> float:
    """KL(softmax(p) || softmax(q))."""
    p = softmax(p_logits)
    return sum(pi * (logsoftmax(p_logits, i) - logsoftmax(q_logits, i)) for i, pi in enumerate(p))


def t(x, dtype=torch.float64, grad: bool = False) -> torch.Tensor:
    return torch.tensor(x, dtype=dtype, requires_grad=grad)


# A tiny batch used throughout: B=2, T=4, V=3.
# Row 0: prompt token at 0, answer labels at positions 1, 2, 3 -> scored by logits at 0, 1, 2.
# Row 1: prompt at 0, 1; answer at 2; padding at 3 -> scored by logits at position 1 only.
L0 = [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [2.0, -1.0, 0.5], [9.0, 9.0, 9.0]]
L1 = [[5.0, -5.0, 0.0], [0.3, 0.2, -0.4], [7.0, 1.0, 1.0], [4.0, 4.0, -4.0]]
LABELS = [[IGN, 2, 0, 1], [IGN, IGN, 1, IGN]]
# answer tokens, with the logits row that scores them
ROW0 = [(L0[0], 2), (L0[1], 0), (L0[2], 1)]
ROW1 = [(L1[1], 1)]


def batch(grad: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    return t([L0, L1], grad=grad), torch.tensor(LABELS)


def pad(x: torch.Tensor, labels: torch.Tensor, n: int, side: str, fill: float | None):
    """Append (right) or prepend (left) n positions with -100 labels and junk logits."""
    b, _, v = x.shape
    junk = torch.randn(b, n, v, dtype=x.dtype) * 5 if fill is None else torch.full((b, n, v), fill)
    junk = junk.to(x.dtype)
    pad_lab = torch.full((b, n), IGN, dtype=labels.dtype)
    if side == "right":
        return torch.cat([x, junk], 1), torch.cat([labels, pad_lab], 1)
    return torch.cat([junk, x], 1), torch.cat([pad_lab, labels], 1)


# --------------------------------------------------------------------------- shift / logprobs


def test_shift_labels_aligns_and_masks():
    logits, labels = batch()
    shifted, targets, mask = fn.shift_labels(logits, labels)
    assert shifted.shape == (2, 3, 3)
    assert torch.equal(shifted, logits[:, :-1])
    assert targets.tolist() == [[2, 0, 1], [0, 1, 0]]
    assert mask.tolist() == [[True, True, True], [False, True, False]]
    assert mask.dtype == torch.bool


@pytest.mark.parametrize(
    "logits_shape, labels_shape",
    [((2, 4), (2, 4)), ((2, 4, 3), (2, 5)), ((2, 4, 3), (2, 4, 1)), ((1, 4, 3), (2, 4))],
)
def test_shift_labels_rejects_bad_shapes(logits_shape, labels_shape):
    with pytest.raises(ValueError, match="shape"):
        fn.shift_labels(torch.zeros(logits_shape), torch.zeros(labels_shape, dtype=torch.long))


@pytest.mark.parametrize("bad", [3, 7, -1, -5])
def test_shift_labels_rejects_out_of_vocab_labels(bad):
    logits, labels = batch()
    labels[1, 2] = bad
    with pytest.raises(ValueError, match=r"labels\[1, 2\].*\[0, 3\)"):
        fn.shift_labels(logits, labels)


def test_shift_labels_ignores_out_of_range_label_at_position_zero():
    # labels[:, 0] is never predicted, so its value does not matter (it is dropped by the shift)
    logits, labels = batch()
    labels[0, 0] = 99
    _, _, mask = fn.shift_labels(logits, labels)
    assert mask.tolist()[0] == [True, True, True]


def test_shift_labels_rejects_float_labels():
    logits, labels = batch()
    with pytest.raises(ValueError, match="integer"):
        fn.shift_labels(logits, labels.double())


def test_token_logprobs_hand_values_and_zero_on_mask():
    logits, labels = batch()
    logp, mask = fn.token_logprobs(logits, labels)
    expected = [
        [logsoftmax(L0[0], 2), logsoftmax(L0[1], 0), logsoftmax(L0[2], 1)],
        [0.0, logsoftmax(L1[1], 1), 0.0],
    ]
    assert logp.shape == (2, 3)
    assert torch.allclose(logp, t(expected), atol=1e-12)
    assert mask.tolist() == [[True, True, True], [False, True, False]]


def test_token_logprobs_never_reads_masked_logits():
    logits, labels = batch(grad=True)
    with torch.no_grad():
        poisoned = logits.clone()
        poisoned[0, 3] = float("nan")  # last position: predicts nothing
        poisoned[1, 0] = float("nan")  # predicts a prompt token
        poisoned[1, 2] = float("inf")  # predicts padding
    poisoned.requires_grad_(True)
    logp, _mask = fn.token_logprobs(poisoned, labels)
    assert torch.isfinite(logp).all()
    logp.sum().backward()
    assert torch.isfinite(poisoned.grad).all()
    assert torch.all(poisoned.grad[1, 0] == 0) and torch.all(poisoned.grad[0, 3] == 0)


def test_sequence_logprob_is_sum_over_answer_tokens():
    logits, labels = batch()
    logp, mask = fn.token_logprobs(logits, labels)
    seq = fn.sequence_logprob(logp, mask)
    expected = [sum(logsoftmax(z, y) for z, y in ROW0), sum(logsoftmax(z, y) for z, y in ROW1)]
    assert torch.allclose(seq, t(expected), atol=1e-12)
    # values outside the mask are ignored even when they are not zero
    junk = logp.detach().clone()
    junk[~mask] = 123.0
    assert torch.allclose(fn.sequence_logprob(junk, mask), t(expected), atol=1e-12)


def test_sequence_logprob_rejects_mismatch():
    with pytest.raises(ValueError, match="mask"):
        fn.sequence_logprob(torch.zeros(2, 3), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        fn.sequence_logprob(torch.zeros(2, 3), torch.ones(2, 3))


# --------------------------------------------------------------------------- nll / ga


def nll_terms(rows):
    return [-logsoftmax(z, y) for z, y in rows]


def test_nll_token_mean_hand_value_and_matches_hf_cross_entropy():
    logits, labels = batch()
    terms = nll_terms(ROW0) + nll_terms(ROW1)
    expected = sum(terms) / 4
    got = fn.nll_loss(logits, labels)
    assert got.item() == pytest.approx(expected, abs=1e-12)
    # HF's outputs.loss: cross entropy over shifted labels with ignore_index=-100
    hf = F.cross_entropy(logits[:, :-1].reshape(-1, 3), labels[:, 1:].reshape(-1), ignore_index=IGN)
    assert got.item() == pytest.approx(hf.item(), abs=1e-12)


def test_nll_sample_mean_hand_value():
    logits, labels = batch()
    expected = (sum(nll_terms(ROW0)) / 3 + sum(nll_terms(ROW1)) / 1) / 2
    got = fn.nll_loss(logits, labels, reduction="sample_mean")
    assert got.item() == pytest.approx(expected, abs=1e-12)
    assert got.item() != pytest.approx(fn.nll_loss(logits, labels).item(), abs=1e-6)


def test_nll_sample_mean_leaves_out_empty_rows():
    logits, labels = batch()
    labels[1, 2] = IGN  # row 1 now has no answer token
    expected = sum(nll_terms(ROW0)) / 3
    assert fn.nll_loss(logits, labels, "sample_mean").item() == pytest.approx(expected, abs=1e-12)


def test_nll_num_items_divides_by_given_count():
    logits, labels = batch()
    expected = sum(nll_terms(ROW0) + nll_terms(ROW1)) / 10
    assert fn.nll_loss(logits, labels, num_items=10).item() == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="num_items"):
        fn.nll_loss(logits, labels, "sample_mean", num_items=10)


def test_nll_rejects_unknown_reduction():
    logits, labels = batch()
    with pytest.raises(ValueError, match="reduction"):
        fn.nll_loss(logits, labels, reduction="mean")


def test_nll_prompt_positions_do_not_count():
    logits, labels = batch()
    base = fn.nll_loss(logits, labels)
    changed = logits.clone()
    changed[1, 0] = torch.tensor([-30.0, 40.0, 2.0])  # predicts a prompt token of row 1
    assert fn.nll_loss(changed, labels).item() == pytest.approx(base.item(), abs=1e-12)
    # ... while an answer-scoring position does count
    changed[1, 1] = torch.tensor([-30.0, 40.0, 2.0])
    assert fn.nll_loss(changed, labels).item() != pytest.approx(base.item(), abs=1e-3)


def test_eos_is_a_normal_answer_token():
    eos = 2
    logits = t([[[0.5, 0.1, -0.2], [0.0, 1.0, 3.0], [1.0, 1.0, 1.0]]])
    with_eos = torch.tensor([[IGN, 0, eos]])
    without = torch.tensor([[IGN, 0, IGN]])
    rows = [([0.5, 0.1, -0.2], 0), ([0.0, 1.0, 3.0], eos)]
    expected = sum(nll_terms(rows)) / 2
    assert fn.nll_loss(logits, with_eos).item() == pytest.approx(expected, abs=1e-12)
    assert fn.nll_loss(logits, without).item() == pytest.approx(nll_terms(rows[:1])[0], abs=1e-12)


@pytest.mark.parametrize("reduction", ["token_mean", "sample_mean"])
def test_nll_and_ga_empty_answer_is_zero_with_graph(reduction):
    logits = t([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]], grad=True)
    labels = torch.tensor([[IGN, IGN]])
    for f in (fn.nll_loss, fn.ga_loss):
        loss = f(logits, labels, reduction)
        assert loss.item() == 0.0
        assert loss.requires_grad
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.all(grad == 0)


def test_single_token_sequence_gives_zero():
    logits = t([[[1.0, 2.0, 3.0]]], grad=True)
    loss = fn.nll_loss(logits, torch.tensor([[1]]))  # T=1: nothing to predict
    assert loss.item() == 0.0
    loss.backward()


def test_ga_is_negated_nll_and_grad_flows():
    logits, labels = batch(grad=True)
    loss = fn.ga_loss(logits, labels)
    assert loss.item() == pytest.approx(-sum(nll_terms(ROW0) + nll_terms(ROW1)) / 4, abs=1e-12)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    # gradient of GA on the scoring row = -(softmax - onehot)/N = (onehot - softmax)/4
    p = softmax(L0[0])
    expected = [(1.0 if i == 2 else 0.0) - p[i] for i in range(3)]
    assert torch.allclose(logits.grad[0, 0], t(expected) / 4, atol=1e-12)


def test_nll_low_precision_logits_are_upcast():
    logits, labels = batch()
    got = fn.nll_loss(logits.to(torch.bfloat16), labels)
    assert got.dtype == torch.float32
    ref = fn.nll_loss(logits.to(torch.bfloat16).double(), labels)
    assert got.item() == pytest.approx(ref.item(), abs=1e-5)


# --------------------------------------------------------------------------- npo


def npo_hand(theta: list[float], ref: list[float], beta: float) -> float:
    return -(2 / beta) * sum(log_sigmoid(-beta * (a - b)) for a, b in zip(theta, ref)) / len(theta)


@pytest.mark.parametrize("beta", [0.1, 1.0, 2.5])
def test_npo_hand_value(beta):
    theta, ref = [-2.0, -5.0], [-3.0, -1.0]
    got = fn.npo_loss(t(theta), t(ref), beta=beta)
    assert got.item() == pytest.approx(npo_hand(theta, ref, beta), abs=1e-12)


def test_npo_default_beta_is_0_1():
    theta, ref = [-2.0, -5.0], [-3.0, -1.0]
    assert fn.npo_loss(t(theta), t(ref)).item() == pytest.approx(npo_hand(theta, ref, 0.1))


def test_npo_is_stable_for_large_log_ratios():
    got = fn.npo_loss(t([-1e4, 1e4]), t([1e4, -1e4]), beta=1.0)
    # term 1: log σ(2e4) ≈ 0; term 2: log σ(-2e4) ≈ -2e4 -> loss = -(2/1)·(-2e4)/2 = 2e4
    assert torch.isfinite(got) and got.item() == pytest.approx(2e4, rel=1e-9)


def test_npo_on_token_logprobs_reference_detached_and_grad():
    logits, labels = batch(grad=True)
    ref_logits, _ = batch(grad=True)
    with torch.no_grad():
        ref_logits.add_(0.5 * torch.arange(3, dtype=torch.float64))
    th = fn.sequence_logprob(*fn.token_logprobs(logits, labels))
    rf = fn.sequence_logprob(*fn.token_logprobs(ref_logits, labels))
    loss = fn.npo_loss(th, rf, beta=0.1)
    theta_h = [sum(logsoftmax(z, y) for z, y in ROW0), sum(logsoftmax(z, y) for z, y in ROW1)]
    shift = [0.0, 0.5, 1.0]
    refrow = lambda rows: sum(logsoftmax([a + s for a, s in zip(z, shift)], y) for z, y in rows)
    ref_h = [refrow(ROW0), refrow(ROW1)]
    assert loss.item() == pytest.approx(npo_hand(theta_h, ref_h, 0.1), abs=1e-12)
    loss.backward()
    assert ref_logits.grad is None
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_npo_empty_answer_row_contributes_constant_and_no_grad():
    logits, labels = batch(grad=True)
    labels[1, 2] = IGN  # row 1 has no answer token: log π_θ = log π_ref = 0
    th = seq_logprob(logits, labels)
    rf = seq_logprob(logits.detach() + t([0.0, 1.0, 2.0]), labels)
    loss = fn.npo_loss(th, rf, beta=0.5)
    assert rf[1].item() == 0.0 and th[1].item() == 0.0
    row0 = npo_hand([th[0].item()], [rf[0].item()], 0.5)
    assert loss.item() == pytest.approx((row0 + (2 / 0.5) * math.log(2)) / 2, abs=1e-12)
    loss.backward()
    assert torch.all(logits.grad[1] == 0) and logits.grad[0].abs().sum() > 0


def test_npo_small_beta_gradient_is_proportional_to_ga():
    """As β → 0, ∇NPO → ∇ mean_i log π(y_i|x_i); GA (token mean) = Σ log p / N: ratio N/B."""
    logits, labels = batch(grad=True)
    ref = fn.sequence_logprob(*fn.token_logprobs(logits.detach() + 1.0, labels))
    th = fn.sequence_logprob(*fn.token_logprobs(logits, labels))
    (g_npo,) = torch.autograd.grad(fn.npo_loss(th, ref, beta=1e-6), logits)
    (g_ga,) = torch.autograd.grad(fn.ga_loss(logits, labels), logits)
    n_tokens, n_samples = 4, 2
    assert torch.allclose(g_npo, g_ga * n_tokens / n_samples, atol=1e-6)


@pytest.mark.parametrize("beta", [0.0, -0.1, float("nan"), float("inf")])
def test_npo_rejects_bad_beta(beta):
    with pytest.raises(ValueError, match="beta"):
        fn.npo_loss(t([0.0]), t([0.0]), beta=beta)


def test_npo_rejects_bad_shapes_and_empty():
    with pytest.raises(ValueError, match=r"\(B,\)"):
        fn.npo_loss(t([0.0, 1.0]), t([0.0]))
    with pytest.raises(ValueError, match=r"\(B,\)"):
        fn.npo_loss(t([[0.0]]), t([[0.0]]))
    with pytest.raises(ValueError, match="empty"):
        fn.npo_loss(t([]), t([]))


# --------------------------------------------------------------------------- kl retain

REF0 = [[0.0, 1.0, -1.0], [2.0, 0.0, 0.0], [1.0, 1.0, 3.0], [0.0, 0.0, 0.0]]
REF1 = [[1.0, 1.0, 1.0], [-0.5, 0.5, 1.5], [0.0, 2.0, 0.0], [1.0, 0.0, 0.0]]


def test_kl_retain_hand_value():
    logits, labels = batch(grad=True)
    ref = t([REF0, REF1])
    got = fn.kl_retain_loss(logits, ref, labels)
    # answer-scoring positions: row 0 at 0,1,2; row 1 at 1. KL(ref || theta), mean over 4.
    pairs = [(REF0[0], L0[0]), (REF0[1], L0[1]), (REF0[2], L0[2]), (REF1[1], L1[1])]
    expected = sum(kl(r, z) for r, z in pairs) / 4
    assert got.item() == pytest.approx(expected, abs=1e-12)
    got.backward()
    assert torch.isfinite(logits.grad).all()


def test_kl_retain_direction_is_ref_to_theta():
    logits = t([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    ref = t([[[3.0, 0.0, -2.0], [0.0, 0.0, 0.0]]])
    labels = torch.tensor([[IGN, 1]])
    got = fn.kl_retain_loss(logits, ref, labels).item()
    assert got == pytest.approx(kl([3.0, 0.0, -2.0], [0.0, 0.0, 0.0]), abs=1e-12)
    assert got != pytest.approx(kl([0.0, 0.0, 0.0], [3.0, 0.0, -2.0]), abs=1e-3)


def test_kl_retain_is_zero_for_identical_models_and_ref_detached():
    logits, labels = batch(grad=True)
    ref = logits.detach().clone().requires_grad_(True)
    loss = fn.kl_retain_loss(logits, ref, labels)
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    loss.backward()
    assert ref.grad is None


def test_kl_retain_ignores_prompt_positions():
    logits, labels = batch()
    ref = t([REF0, REF1])
    base = fn.kl_retain_loss(logits, ref, labels).item()
    ref2 = ref.clone()
    ref2[1, 0] = torch.tensor([50.0, -50.0, 0.0])  # predicts row 1's prompt token
    assert fn.kl_retain_loss(logits, ref2, labels).item() == pytest.approx(base, abs=1e-12)


def test_kl_retain_shape_mismatch_and_empty():
    logits, labels = batch(grad=True)
    with pytest.raises(ValueError, match="same shape"):
        fn.kl_retain_loss(logits, torch.zeros(2, 4, 5), labels)
    empty = torch.full_like(labels, IGN)
    loss = fn.kl_retain_loss(logits, t([REF0, REF1]), empty)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(logits.grad == 0)


# --------------------------------------------------------------------------- padding invariance

# Every token-level loss as f(logits, labels, other_logits) -> scalar.
TOKEN_LOSSES = {
    "nll_token_mean": lambda z, y, r: fn.nll_loss(z, y),
    "nll_sample_mean": lambda z, y, r: fn.nll_loss(z, y, "sample_mean"),
    "ga": lambda z, y, r: fn.ga_loss(z, y),
    "npo": lambda z, y, r: fn.npo_loss(
        fn.sequence_logprob(*fn.token_logprobs(z, y)),
        fn.sequence_logprob(*fn.token_logprobs(r, y)),
    ),
    "kl_retain": lambda z, y, r: fn.kl_retain_loss(z, r, y),
}


# =========================================================================== second group


def seq_logprob(z, y):
    return fn.sequence_logprob(*fn.token_logprobs(z, y))


# --------------------------------------------------------------------------- simnpo


def simnpo_hand(logp, lengths, beta, gamma):
    terms = [log_sigmoid(-(beta / n) * lp - gamma) for lp, n in zip(logp, lengths) if n > 0]
    return -(2 / beta) * sum(terms) / len(terms)


@pytest.mark.parametrize("beta, gamma", [(4.5, 0.0), (2.5, 0.5), (0.7, -1.0)])
def test_simnpo_hand_value(beta, gamma):
    logp, lengths = [-6.0, -2.0], [3, 1]
    got = fn.simnpo_loss(t(logp), torch.tensor(lengths), beta=beta, gamma=gamma)
    assert got.item() == pytest.approx(simnpo_hand(logp, lengths, beta, gamma), abs=1e-12)


def test_simnpo_defaults_are_beta_4_5_gamma_0():
    got = fn.simnpo_loss(t([-6.0, -2.0]), torch.tensor([3, 1]))
    assert got.item() == pytest.approx(simnpo_hand([-6.0, -2.0], [3, 1], 4.5, 0.0), abs=1e-12)


def test_simnpo_matches_ou_placement_with_gamma_equal_beta_delta():
    # OU (#123): -(2/β)·log σ(β·(NLL_sum/n - δ))
    beta, delta = 2.5, 0.4
    logp, lengths = [-6.0, -2.0], [3, 1]
    terms = [log_sigmoid(beta * (-lp / n - delta)) for lp, n in zip(logp, lengths)]
    ou = -(2 / beta) * sum(terms) / 2
    got = fn.simnpo_loss(t(logp), torch.tensor(lengths), beta=beta, gamma=beta * delta)
    assert got.item() == pytest.approx(ou, abs=1e-12)
    # ... and differs from passing δ itself as the paper's γ
    other = fn.simnpo_loss(t(logp), torch.tensor(lengths), beta=beta, gamma=delta)
    assert other.item() != pytest.approx(ou, abs=1e-6)


def test_simnpo_from_token_logprobs_is_length_normalised():
    logits, labels = batch(grad=True)
    logp, mask = fn.token_logprobs(logits, labels)
    loss = fn.simnpo_loss(fn.sequence_logprob(logp, mask), mask.sum(-1), beta=2.5)
    sums = [sum(logsoftmax(z, y) for z, y in ROW0), sum(logsoftmax(z, y) for z, y in ROW1)]
    assert loss.item() == pytest.approx(simnpo_hand(sums, [3, 1], 2.5, 0.0), abs=1e-12)
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_simnpo_empty_rows_left_out_and_all_empty_is_zero():
    got = fn.simnpo_loss(t([-6.0, 0.0]), torch.tensor([3, 0]), beta=2.5)
    assert got.item() == pytest.approx(simnpo_hand([-6.0], [3], 2.5, 0.0), abs=1e-12)
    x = t([0.0, 0.0], grad=True)
    zero = fn.simnpo_loss(x, torch.tensor([0, 0]))
    assert zero.item() == 0.0
    zero.backward()
    assert torch.all(x.grad == 0)


def test_simnpo_rejects_bad_input():
    with pytest.raises(ValueError, match="beta"):
        fn.simnpo_loss(t([-1.0]), torch.tensor([1]), beta=0.0)
    with pytest.raises(ValueError, match=r"\(B,\)"):
        fn.simnpo_loss(t([-1.0]), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="lengths"):
        fn.simnpo_loss(t([-1.0]), torch.tensor([-1]))


# --------------------------------------------------------------------------- dpo


def dpo_hand(w, wr, lo, lr, beta):
    terms = [log_sigmoid(beta * ((a - b) - (c - d))) for a, b, c, d in zip(w, wr, lo, lr)]
    return -(2 / beta) * sum(terms) / len(terms)


@pytest.mark.parametrize("beta", [0.1, 1.0])
def test_dpo_hand_value(beta):
    w, wr, lo, lr = [-3.0, -8.0], [-5.0, -7.0], [-1.0, -2.0], [-0.5, -4.0]
    got = fn.dpo_loss(t(w), t(wr), t(lo), t(lr), beta=beta)
    assert got.item() == pytest.approx(dpo_hand(w, wr, lo, lr, beta), abs=1e-12)


def test_dpo_equal_ratios_give_2_over_beta_log2_and_refs_detached():
    w = t([-3.0], grad=True)
    wr = t([-3.0], grad=True)
    loss = fn.dpo_loss(w, wr, t([-1.0]), t([-1.0]), beta=0.1)
    assert loss.item() == pytest.approx(20 * math.log(2), abs=1e-12)
    loss.backward()
    assert wr.grad is None
    # gradient wrt the winner: -(2/β)·β·σ(-0)·1 = -1
    assert w.grad.item() == pytest.approx(-1.0, abs=1e-12)


def test_dpo_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(B,\)"):
        fn.dpo_loss(t([0.0]), t([0.0]), t([0.0, 1.0]), t([0.0]))
    with pytest.raises(ValueError, match="empty"):
        fn.dpo_loss(t([]), t([]), t([]), t([]))
    with pytest.raises(ValueError, match="beta"):
        fn.dpo_loss(t([0.0]), t([0.0]), t([0.0]), t([0.0]), beta=-1.0)


# --------------------------------------------------------------------------- wga / satimp

ALL_ROWS = ROW0 + ROW1  # the 4 scored (logits row, label) pairs of `batch()`


def weighted_ga_hand(weight):
    """-(1/N)·Σ w(p)·ℓ over the batch's 4 answer tokens."""
    total = 0.0
    for z, y in ALL_ROWS:
        lp = logsoftmax(z, y)
        total += weight(math.exp(lp)) * (-lp)
    return -total / len(ALL_ROWS)


def weighted_ga_grad_row(weight, z, y, n):
    """d/dz of -(1/N)·sg(w)·ℓ: -(w/N)·(softmax(z) - onehot(y))."""
    w = weight(math.exp(logsoftmax(z, y)))
    p = softmax(z)
    return [-(w / n) * (p[i] - (1.0 if i == y else 0.0)) for i in range(len(z))]


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_wga_hand_value_and_stop_gradient(beta):
    logits, labels = batch(grad=True)
    loss = fn.wga_loss(logits, labels, beta=beta)
    weight = lambda p: p**beta
    assert loss.item() == pytest.approx(weighted_ga_hand(weight), abs=1e-12)
    loss.backward()
    expected = weighted_ga_grad_row(weight, L0[0], 2, 4)
    assert torch.allclose(logits.grad[0, 0], t(expected), atol=1e-12)


def test_wga_beta_zero_is_ga():
    logits, labels = batch()
    assert fn.wga_loss(logits, labels, beta=0.0).item() == pytest.approx(
        fn.ga_loss(logits, labels).item(), abs=1e-12
    )


@pytest.mark.parametrize("beta1, beta2", [(5.0, 1.0), (1.0, 2.0), (0.0, 0.0)])
def test_satimp_hand_value_and_stop_gradient(beta1, beta2):
    logits, labels = batch(grad=True)
    loss = fn.satimp_loss(logits, labels, beta1=beta1, beta2=beta2)
    weight = lambda p: p**beta1 * (1 - p) ** beta2
    assert loss.item() == pytest.approx(weighted_ga_hand(weight), abs=1e-12)
    loss.backward()
    expected = weighted_ga_grad_row(weight, L1[1], 1, 4)
    assert torch.allclose(logits.grad[1, 1], t(expected), atol=1e-12)


def test_satimp_defaults_are_5_and_1():
    logits, labels = batch()
    expected = weighted_ga_hand(lambda p: p**5 * (1 - p))
    assert fn.satimp_loss(logits, labels).item() == pytest.approx(expected, abs=1e-12)


def test_weighted_losses_reject_negative_betas():
    logits, labels = batch()
    with pytest.raises(ValueError, match="beta"):
        fn.wga_loss(logits, labels, beta=-1.0)
    with pytest.raises(ValueError, match="beta2"):
        fn.satimp_loss(logits, labels, beta2=-1.0)


# --------------------------------------------------------------------------- ce-u


def ceu_term(z, y):
    """CE(z, softmax(z with z_y = -inf)) by hand."""
    others = [v for i, v in enumerate(z) if i != y]
    s = lse(others)
    q = [0.0 if i == y else math.exp(v - s) for i, v in enumerate(z)]
    return -sum(qi * logsoftmax(z, i) for i, qi in enumerate(q))


def test_ceu_hand_value_skips_first_answer_token():
    logits, labels = batch(grad=True)
    loss = fn.ceu_loss(logits, labels)
    # row 0: y_1 (= labels[0,1], predicted at position 0) is skipped; row 1 has only y_1.
    expected = (ceu_term(L0[1], 0) + ceu_term(L0[2], 1)) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    loss.backward()
    assert torch.all(logits.grad[0, 0] == 0) and torch.all(logits.grad[1] == 0)
    # target detached: d CE / dz = softmax(z) - q, divided by the 2 positions
    z, y = L0[1], 0
    p = softmax(z)
    others = lse([v for i, v in enumerate(z) if i != y])
    q = [0.0 if i == y else math.exp(v - others) for i, v in enumerate(z)]
    assert torch.allclose(logits.grad[0, 1], t([(a - b) / 2 for a, b in zip(p, q)]), atol=1e-12)


def test_ceu_without_skip_scores_every_answer_token():
    logits, labels = batch()
    expected = sum(ceu_term(z, y) for z, y in ALL_ROWS) / 4
    got = fn.ceu_loss(logits, labels, ignore_first_n=0)
    assert got.item() == pytest.approx(expected, abs=1e-12)


def test_ceu_document_without_prompt_skips_nothing_scored():
    # labels[:, 0] is an answer token (no prompt, no BOS): it is the one skipped, and it is
    # never predicted anyway, so positions 0 and 1 are both scored.
    logits = t([[[1.0, 0.0, -1.0], [0.5, 2.0, 0.0], [3.0, 3.0, 3.0]]])
    labels = torch.tensor([[0, 2, 1]])
    expected = (ceu_term([1.0, 0.0, -1.0], 2) + ceu_term([0.5, 2.0, 0.0], 1)) / 2
    assert fn.ceu_loss(logits, labels).item() == pytest.approx(expected, abs=1e-12)


def test_ceu_rejects_bad_arguments():
    logits, labels = batch()
    with pytest.raises(ValueError, match="ignore_first_n"):
        fn.ceu_loss(logits, labels, ignore_first_n=-1)
    with pytest.raises(ValueError, match="vocabulary"):
        fn.ceu_loss(torch.zeros(1, 3, 1), torch.tensor([[IGN, 0, 0]]))


# --------------------------------------------------------------------------- undial


def undial_term(z, z_ref, y, beta):
    adj = [v - (beta if i == y else 0.0) for i, v in enumerate(z_ref)]
    q = softmax(adj)
    return -sum(qi * logsoftmax(z, i) for i, qi in enumerate(q))


@pytest.mark.parametrize("beta", [10.0, 3.0, 0.0])
def test_undial_hand_value(beta):
    logits, labels = batch(grad=True)
    ref = t([REF0, REF1])
    loss = fn.undial_loss(logits, ref, labels, beta=beta)
    pairs = [(L0[0], REF0[0], 2), (L0[1], REF0[1], 0), (L0[2], REF0[2], 1), (L1[1], REF1[1], 1)]
    expected = sum(undial_term(z, r, y, beta) for z, r, y in pairs) / 4
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_undial_default_beta_is_10_and_ref_detached():
    logits, labels = batch(grad=True)
    ref = t([REF0, REF1], grad=True)
    a = fn.undial_loss(logits, ref, labels)
    b = fn.undial_loss(logits, ref, labels, beta=10.0)
    assert a.item() == b.item()
    a.backward()
    assert ref.grad is None
    with pytest.raises(ValueError, match="same shape"):
        fn.undial_loss(logits, torch.zeros(2, 4, 4), labels)


# --------------------------------------------------------------------------- pdu


def test_pdu_margin_hand_value():
    logits, labels = batch(grad=True)
    loss = fn.pdu_margin_loss(logits, labels)
    rows = [L0[0], L0[1], L0[2], L1[1]]
    expected = sum((max(z) - sum(z) / len(z)) ** 2 for z in rows) / 4
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    loss.backward()
    assert torch.all(logits.grad[1, 0] == 0)  # prompt-predicting position ignored


def test_pdu_dual_update():
    assert fn.pdu_dual_update(1.0, 0.2, eps=0.3, eta=5.0) == pytest.approx(0.5)
    assert fn.pdu_dual_update(0.1, 0.2, eps=0.3, eta=5.0) == 0.0
    assert fn.pdu_dual_update(100.0, torch.tensor(0.5, requires_grad=True), 0.3, 5.0) == (
        pytest.approx(101.0)
    )
    assert isinstance(fn.pdu_dual_update(1.0, torch.tensor(0.2), 0.3, 1.0), float)
    with pytest.raises(ValueError, match="eta"):
        fn.pdu_dual_update(1.0, 0.2, 0.3, 0.0)
    with pytest.raises(ValueError, match="lam"):
        fn.pdu_dual_update(-1.0, 0.2, 0.3, 1.0)
    with pytest.raises(ValueError, match="retain_loss"):
        fn.pdu_dual_update(1.0, float("nan"), 0.3, 1.0)


# --------------------------------------------------------------------------- rmu

# B=2, T=3, D=2; mask per input position (unshifted).
H = [[[1.0, 2.0], [0.0, 0.0], [5.0, -1.0]], [[2.0, 2.0], [9.0, 9.0], [0.5, 1.5]]]
H_MASK = [[True, True, False], [True, False, False]]


def mse(a, b):
    return sum((x - y) ** 2 for x, y in zip(a, b)) / len(a)


def test_rmu_control_vector_unit_nonnegative_reproducible():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    u = fn.rmu_control_vector(16, generator=g1)
    assert u.shape == (16,) and u.dtype == torch.float32
    assert u.norm().item() == pytest.approx(1.0, abs=1e-6)
    assert bool((u >= 0).all())
    assert torch.equal(u, fn.rmu_control_vector(16, generator=g2))
    with pytest.raises(ValueError, match="dim"):
        fn.rmu_control_vector(0)


def test_rmu_forget_hand_value_token_and_sample_mean():
    hidden = t(H, grad=True)
    u, c = t([0.6, 0.8]), 2.0
    target = [1.2, 1.6]
    mask = torch.tensor(H_MASK)
    a, b, d = mse(H[0][0], target), mse(H[0][1], target), mse(H[1][0], target)
    loss = fn.rmu_forget_loss(hidden, u, mask, coeff=c)
    assert loss.item() == pytest.approx((a + b + d) / 3, abs=1e-12)
    sample = fn.rmu_forget_loss(hidden, u, mask, coeff=c, reduction="sample_mean")
    assert sample.item() == pytest.approx(((a + b) / 2 + d) / 2, abs=1e-12)
    loss.backward()
    assert torch.all(hidden.grad[0, 2] == 0) and torch.all(hidden.grad[1, 1:] == 0)
    # d/dh mean_d (h - cu)^2 / 3 positions = 2·(h - cu)/(D·3)
    assert torch.allclose(hidden.grad[0, 0], t([2 * (1.0 - 1.2) / 6, 2 * (2.0 - 1.6) / 6]))


def test_rmu_mask_is_not_shifted():
    # position 0 counts (a shifted mask would drop it), and only it is counted here
    hidden = t(H)
    mask = torch.tensor([[True, False, False], [False, False, False]])
    got = fn.rmu_forget_loss(hidden, t([1.0, 0.0]), mask, coeff=1.0)
    assert got.item() == pytest.approx(mse(H[0][0], [1.0, 0.0]), abs=1e-12)


def test_rmu_retain_hand_value_and_ref_detached():
    hidden = t(H, grad=True)
    ref = t([[[0.0, 2.0], [1.0, 1.0], [0.0, 0.0]], [[2.0, 0.0], [0.0, 0.0], [0.0, 0.0]]], grad=True)
    mask = torch.tensor(H_MASK)
    loss = fn.rmu_retain_loss(hidden, ref, mask)
    expected = (
        mse([1.0, 2.0], [0.0, 2.0]) + mse([0.0, 0.0], [1.0, 1.0]) + mse([2.0, 2.0], [2.0, 0.0])
    ) / 3
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    loss.backward()
    assert ref.grad is None
    assert fn.rmu_retain_loss(hidden, hidden.detach(), mask).item() == 0.0


def test_rmu_rejects_bad_shapes_and_masks():
    hidden, u = t(H), t([0.6, 0.8])
    with pytest.raises(ValueError, match="bool"):
        fn.rmu_forget_loss(hidden, u, torch.ones(2, 3), coeff=1.0)
    with pytest.raises(ValueError, match="mask"):
        fn.rmu_forget_loss(hidden, u, torch.ones(2, 2, dtype=torch.bool), coeff=1.0)
    with pytest.raises(ValueError, match="control"):
        fn.rmu_forget_loss(hidden, t([1.0, 0.0, 0.0]), torch.tensor(H_MASK), coeff=1.0)
    with pytest.raises(ValueError, match="hidden_ref"):
        fn.rmu_retain_loss(hidden, torch.zeros(2, 3, 3), torch.tensor(H_MASK))


@pytest.mark.parametrize("side", ["right", "left"])
def test_rmu_padding_invariance(side):
    hidden, ref, u = t(H), t(H) * 0.5, t([0.6, 0.8])
    mask = torch.tensor(H_MASK)
    junk = torch.full((2, 2, 2), float("nan"), dtype=torch.float64)
    no = torch.zeros(2, 2, dtype=torch.bool)

    def cat(a, b):
        return torch.cat([a, b] if side == "right" else [b, a], 1)

    for red in ("token_mean", "sample_mean"):
        base_f = fn.rmu_forget_loss(hidden, u, mask, 2.0, red)
        base_r = fn.rmu_retain_loss(hidden, ref, mask, red)
        hp = cat(hidden, junk).requires_grad_(True)
        pf = fn.rmu_forget_loss(hp, u, cat(mask, no), 2.0, red)
        pr = fn.rmu_retain_loss(hp, cat(ref, junk), cat(mask, no), red)
        assert pf.item() == pytest.approx(base_f.item(), abs=1e-12)
        assert pr.item() == pytest.approx(base_r.item(), abs=1e-12)
        (pf + pr).backward()
        assert torch.isfinite(hp.grad).all()


def test_rmu_empty_mask_is_zero_with_graph():
    hidden = t(H, grad=True)
    loss = fn.rmu_forget_loss(hidden, t([0.6, 0.8]), torch.zeros(2, 3, dtype=torch.bool), 2.0)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(hidden.grad == 0)


# --------------------------------------------------------------------------- distillation / whp


@pytest.mark.parametrize("tau", [1.0, 2.0, 0.5])
def test_distillation_hand_value(tau):
    logits, labels = batch(grad=True)
    teacher = t([REF0, REF1], grad=True)
    loss = fn.distillation_loss(logits, teacher, labels, temperature=tau)
    pairs = [(REF0[0], L0[0]), (REF0[1], L0[1]), (REF0[2], L0[2]), (REF1[1], L1[1])]
    scaled = lambda v: [x / tau for x in v]
    expected = tau**2 * sum(kl(scaled(tz), scaled(sz)) for tz, sz in pairs) / 4
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    loss.backward()
    assert teacher.grad is None


def test_distillation_at_temperature_1_equals_kl_retain():
    logits, labels = batch()
    ref = t([REF0, REF1])
    assert fn.distillation_loss(logits, ref, labels).item() == pytest.approx(
        fn.kl_retain_loss(logits, ref, labels).item(), abs=1e-12
    )
    with pytest.raises(ValueError, match="temperature"):
        fn.distillation_loss(logits, ref, labels, temperature=0.0)


def test_whp_generic_logits_hand_values():
    base = t([[1.0, 2.0, 3.0]])
    reinforced = t([[2.0, 1.0, 3.5]])
    assert fn.whp_generic_logits(base, reinforced).tolist() == [[0.0, 2.0, 2.5]]
    assert fn.whp_generic_logits(base, reinforced, alpha=2.0).tolist() == [[-1.0, 2.0, 2.0]]
    assert fn.whp_generic_logits(base, reinforced, alpha=0.0).tolist() == [[1.0, 2.0, 3.0]]
    with pytest.raises(ValueError, match="same shape"):
        fn.whp_generic_logits(base, t([1.0, 2.0, 3.0, 4.0]))
    with pytest.raises(ValueError, match="alpha"):
        fn.whp_generic_logits(base, reinforced, alpha=-1.0)


# --------------------------------------------------------------------------- every token loss

TOKEN_LOSSES.update(
    {
        "simnpo": lambda z, y, r: fn.simnpo_loss(
            seq_logprob(z, y), (y[:, 1:] != IGN).sum(-1), beta=2.5
        ),
        "dpo": lambda z, y, r: fn.dpo_loss(
            seq_logprob(z, y), seq_logprob(r, y), seq_logprob(2 * z, y), seq_logprob(2 * r, y)
        ),
        "wga": lambda z, y, r: fn.wga_loss(z, y),
        "satimp": lambda z, y, r: fn.satimp_loss(z, y),
        "ceu": lambda z, y, r: fn.ceu_loss(z, y),
        "ceu_noskip": lambda z, y, r: fn.ceu_loss(z, y, ignore_first_n=0),
        "undial": lambda z, y, r: fn.undial_loss(z, r, y),
        "pdu_margin": lambda z, y, r: fn.pdu_margin_loss(z, y),
        "distillation_t2": lambda z, y, r: fn.distillation_loss(z, r, y, temperature=2.0),
    }
)
# simnpo/dpo/npo map an all-empty batch to a constant, not 0: see their own tests
ZERO_WHEN_EMPTY = sorted(set(TOKEN_LOSSES) - {"npo", "dpo"})


@pytest.mark.parametrize("name", sorted(TOKEN_LOSSES))
def test_every_token_loss_backward_is_finite_and_nonzero(name):
    logits, labels = batch(grad=True)
    loss = TOKEN_LOSSES[name](logits, labels, t([REF0, REF1]))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ZERO_WHEN_EMPTY)
def test_every_token_loss_is_zero_on_empty_answers(name):
    logits = t([L0, L1], grad=True)
    labels = torch.full((2, 4), IGN)
    loss = TOKEN_LOSSES[name](logits, labels, t([REF0, REF1]))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(logits.grad == 0)


@pytest.mark.parametrize("name", sorted(TOKEN_LOSSES))
def test_every_token_loss_upcasts_bf16(name):
    logits, labels = batch()
    ref = t([REF0, REF1])
    low = TOKEN_LOSSES[name](logits.to(torch.bfloat16), labels, ref.to(torch.bfloat16))
    z16, r16 = logits.to(torch.bfloat16), ref.to(torch.bfloat16)
    high = TOKEN_LOSSES[name](z16.double(), labels, r16.double())
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(high.item(), rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("name", sorted(TOKEN_LOSSES))
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("fill", [None, float("nan")])
def test_padding_does_not_change_any_loss(name, side, fill):
    torch.manual_seed(0)
    f = TOKEN_LOSSES[name]
    logits, labels = batch()
    ref = t([REF0, REF1])
    base = f(logits, labels, ref)
    z_pad, y_pad = pad(logits, labels, 3, side, fill)
    r_pad, _ = pad(ref, labels, 3, side, fill)
    z_pad.requires_grad_(True)
    padded = f(z_pad, y_pad, r_pad)
    assert padded.item() == pytest.approx(base.item(), abs=1e-12)
    padded.backward()
    assert torch.isfinite(z_pad.grad).all()
