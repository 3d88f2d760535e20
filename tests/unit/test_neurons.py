"""Neuron-level methods (obliviate.methods.neurons, neuron_scores): DEPN's integrated-gradient
attribution on a hand-built 2-layer model whose answer depends on one known neuron, its
aggregator, and selective pruning's importance functions and scores on hand-computed
activations (padding excluded, empty input refused)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from obliviate.methods.neuron_scores import (
    ActivationStats,
    importance,
    privacy_neurons,
    pruning_scores,
    riemann_integrated_gradients,
    top_fraction,
)
from obliviate.methods.neurons import (
    MLPNeurons,
    activation_stats,
    depn_attributions,
    prune_selectively,
)


class TwoLayer(torch.nn.Module):
    """token -> one-hot embedding -> relu(W1 e) (3 neurons) -> W2 h = logits over 2 tokens.

    At token 0 the neurons are h = [1, 2, 0.5]; W2's rows differ only in column 0 (by 2), so
    logit(1) - logit(0) = 2·s_0·h_0 = 2·s_0: the answer "1" after "0" depends on neuron 0 only.
    """

    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(2, 2)
        self.up = torch.nn.Linear(2, 3, bias=False)
        self.down = torch.nn.Linear(3, 2, bias=False)
        with torch.no_grad():
            self.emb.weight.copy_(torch.eye(2))
            self.up.weight.copy_(torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.5, 0.0]]))
            self.down.weight.copy_(torch.tensor([[0.0, 0.5, 1.0], [2.0, 0.5, 1.0]]))

    def forward(self, input_ids, attention_mask):
        return SimpleNamespace(logits=self.down(torch.relu(self.up(self.emb(input_ids)))))


def batch(n: int = 1) -> dict:
    return {
        "input_ids": torch.tensor([[0, 1]] * n),
        "attention_mask": torch.ones(n, 2, dtype=torch.long),
        "labels": torch.tensor([[-100, 1]] * n),
    }


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_integrated_gradients_match_the_hand_computed_riemann_sums() -> None:
    model = TwoLayer()
    neurons = MLPNeurons([model.down])
    # log-probability: F = log sig(2 s0), dF/ds0 = 2 (1 - sig(2 s0)); m = 2 points s0 = 0.5, 1
    att = depn_attributions(model, neurons, [batch()], steps=2, objective="logprob")
    want = ((1 - sig(1.0)) * 2 + (1 - sig(2.0)) * 2) / 2  # = 0.3881443
    assert att.shape == (1, 3)
    assert att[0, 0].item() == pytest.approx(want, abs=1e-6)
    assert att[0, 1:].abs().max().item() < 1e-6  # no effect on the answer (float rounding)
    # probability (DEPN's target): dP/ds0 = 2 sig (1 - sig)
    att = depn_attributions(model, neurons, [batch()], steps=2, objective="prob")
    want = (2 * sig(1.0) * (1 - sig(1.0)) + 2 * sig(2.0) * (1 - sig(2.0))) / 2  # = 0.3016055
    assert att[0, 0].item() == pytest.approx(want, abs=1e-6)
    # completeness: with many points the attribution is P(s=1) - P(s=0) = sig(2) - 1/2
    att = depn_attributions(model, neurons, [batch()], steps=400, objective="prob")
    assert att[0, 0].item() == pytest.approx(sig(2.0) - 0.5, abs=1e-3)


def test_riemann_sum_of_a_known_gradient_and_bad_steps() -> None:
    # grad(s) = s**2 elementwise: (1/4) * (1/16 + 4/16 + 9/16 + 16/16) = 30/64
    got = riemann_integrated_gradients(lambda s: s * s, (2, 3), 4)
    assert torch.allclose(got, torch.full((2, 3), 30 / 64))
    with pytest.raises(ValueError, match="steps >= 1"):
        riemann_integrated_gradients(lambda s: s, (1,), 0)


def test_depn_finds_the_one_neuron_and_zeroing_it_removes_the_answer() -> None:
    model = TwoLayer()
    neurons = MLPNeurons([model.down])
    att = depn_attributions(model, neurons, [batch(2)], steps=5, objective="prob")
    assert att.shape == (2, 3)
    chosen = privacy_neurons(att, threshold=0.2, top_z=2)
    assert chosen == [0]  # the only neuron with a positive attribution
    neurons.zero(chosen)
    assert torch.equal(model.down.weight[:, 0], torch.zeros(2))
    assert torch.equal(model.down.weight[:, 1:], TwoLayer().down.weight[:, 1:])
    logits = model(**{k: v for k, v in batch().items() if k != "labels"}).logits
    assert torch.softmax(logits[0, 0], -1)[1].item() == pytest.approx(0.5)  # was sig(2)
    assert all(p.requires_grad for p in model.parameters())  # restored after attribution


def test_the_aggregator_counts_items_then_sums_attributions() -> None:
    att = torch.tensor(
        [
            [1.0, 0.5, 0.05, -1.0],  # threshold 0.2 * 1.0: neurons 0, 1
            [0.1, 2.0, 0.0, 0.0],  # 0.4: neuron 1 only
            [0.9, 0.0, 1.0, 0.0],  # 0.2: neurons 0, 2
        ]
    )
    # counts: n0 2, n1 2, n2 1; n1 sums 2.5 > n0 2.0 -> [1, 0, 2]; n3 is never detected
    assert privacy_neurons(att, 0.2, 10) == [1, 0, 2]
    assert privacy_neurons(att, 0.2, 1) == [1]
    assert privacy_neurons(torch.zeros(2, 3), 0.2, 5) == []  # nothing positive
    assert privacy_neurons(torch.zeros(0, 3), 0.2, 5) == []  # no items
    with pytest.raises(ValueError, match="threshold"):
        privacy_neurons(att, 1.5, 1)


ACTS_F = torch.tensor([[[1.0, 0.0, -2.0], [3.0, 0.0, 2.0], [99.0, 99.0, 99.0]]])  # last: pad
MASK_F = torch.tensor([[1, 1, 0]])
ACTS_R = torch.tensor([[1.0, 1.0, 0.0], [1.0, -1.0, 0.0]])


def stats(acts, mask=None) -> ActivationStats:
    s = ActivationStats()
    s.add(acts, mask)
    return s


def test_importance_functions_on_hand_computed_activations() -> None:
    f, r = stats(ACTS_F, MASK_F), stats(ACTS_R)
    assert f.n == 2 and r.n == 2  # the padding position is not counted
    assert importance(f, "abs").tolist() == [2.0, 0.0, 2.0]
    assert importance(r, "abs").tolist() == [1.0, 1.0, 0.0]
    assert importance(f, "freq").tolist() == [1.0, 0.0, 0.5]
    assert importance(r, "freq").tolist() == [1.0, 0.5, 0.0]
    assert torch.allclose(
        importance(f, "rms"), torch.tensor([5**0.5, 0.0, 2.0], dtype=torch.float64)
    )
    assert importance(f, "std").tolist() == [1.0, 0.0, 2.0]  # means 2, 0, 0
    assert importance(r, "std").tolist() == [0.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="empty"):
        importance(ActivationStats(), "abs")
    with pytest.raises(ValueError, match="importance must be one of"):
        importance(f, "max")


def test_scores_and_top_fraction() -> None:
    f = importance(stats(ACTS_F, MASK_F), "abs")
    r = importance(stats(ACTS_R), "abs")
    scores = pruning_scores(f, r, eps=1e-5)
    want = [2 / (1 + 1e-5), 0.0, 2 / 1e-5]
    assert torch.allclose(scores, torch.tensor(want, dtype=torch.float64))
    assert top_fraction(scores, 0.34).tolist() == [2]  # floor(0.34 * 3) = 1
    assert top_fraction(scores, 0.1).tolist() == [2]  # at least one
    assert top_fraction(scores, 0.67).tolist() == [2, 0]
    allowed = torch.tensor([True, True, False])  # neuron 2 already pruned
    assert top_fraction(scores, 0.34, allowed).tolist() == [0]
    with pytest.raises(ValueError, match="fraction"):
        top_fraction(scores, 0.0)


def test_selective_pruning_zeroes_the_forget_specific_neuron() -> None:
    model = TwoLayer()
    neurons = MLPNeurons([model.down])
    # forget text "0 1": token 0 gives h = [1, 2, 0.5], token 1 gives h = 0 (second column of W1)
    # retain text "1 1": every activation 0 -> each neuron's score is I_f / eps; the largest is
    # neuron 1 (mean |a| = 1 over the 2 forget tokens) then 0 (0.5) then 2 (0.25)
    forget = [batch()]
    retain = [{"input_ids": torch.tensor([[1, 1]]), "attention_mask": torch.ones(1, 2)}]
    got = activation_stats(model, neurons, forget)
    assert importance(got[0], "abs").tolist() == [0.5, 1.0, 0.25]
    pruned = prune_selectively(model, neurons, forget, retain, fraction=0.34, steps=2)
    assert pruned == [1, 0]  # the second step re-measures and skips the pruned neuron
    assert torch.equal(model.down.weight[:, :2], torch.zeros(2, 2))
    assert torch.equal(model.down.weight[:, 2], torch.tensor([1.0, 1.0]))


def test_methods_refuse_missing_data_in_one_sentence(tiny_models) -> None:
    from obliviate import api
    from obliviate.data.types import UnlearningRequest
    from obliviate.methods.base import UnlearnJob, build_method
    from obliviate.models.loading import load_model, load_tokenizer

    request = api.load_request("builtin", tiny_models["split"], builtin=tiny_models["builtin"])
    no_retain = UnlearningRequest(forget=request.forget, retain=[])
    path = tiny_models["target"]
    job = UnlearnJob(load_model(path), load_tokenizer(path), no_retain, progress=False)
    with pytest.raises(ValueError, match="give both --forget and --retain"):
        build_method("selective_pruning").unlearn(job)
    with pytest.raises(ValueError, match="objective must be one of"):
        build_method("depn", {"objective": "loss"})
    with pytest.raises(ValueError, match="fraction"):
        build_method("selective_pruning", {"fraction": 1.5})
