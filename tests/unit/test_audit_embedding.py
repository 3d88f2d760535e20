"""The embedding-space attack's maths against hand-computed values: projection onto the budget,
one signed / normalised step, the soft-token batch layout and one step on a hand-built model
whose gradient is known in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from obliviate.audits.embedding import (
    embedding_scale,
    embedding_step,
    per_item_nll,
    project,
    with_soft_tokens,
)
from obliviate.audits.settings import AuditSettings, plan_attacks
from obliviate.data.types import QAItem, UnlearningRequest


def _close(t: torch.Tensor, expected: list) -> None:
    torch.testing.assert_close(t, torch.tensor(expected), rtol=0, atol=1e-6)


def test_project_linf_clamps_every_entry():
    d = torch.tensor([[0.5, -2.0, 0.1], [3.0, 0.0, -0.2]])
    _close(project(d, 1.0, "linf"), [[0.5, -1.0, 0.1], [1.0, 0.0, -0.2]])
    assert project(d, None, "linf") is d  # unbounded


def test_project_l2_rescales_only_long_rows():
    d = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    out = project(d, 1.0, "l2")
    _close(out, [[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]])
    with pytest.raises(ValueError, match="embed_norm"):
        project(d, 1.0, "l1")


def test_signed_step_descends_the_loss_and_stays_in_the_box():
    delta = torch.tensor([[0.0, 0.0, 0.0], [0.9, -0.9, 0.2]])
    grad = torch.tensor([[2.0, -3.0, 0.0], [-1.0, 1.0, 0.0]])
    out = embedding_step(delta, grad, 0.5, 1.0, "linf")
    # row 0: -0.5 * sign(g); row 1: 0.9 + 0.5 = 1.4 -> 1, -0.9 - 0.5 -> -1, zero gradient: stays
    _close(out, [[-0.5, 0.5, 0.0], [1.0, -1.0, 0.2]])


def test_l2_step_is_normalised_per_token_then_projected():
    delta = torch.zeros(3, 2)
    grad = torch.tensor([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]])
    out = embedding_step(delta, grad, 1.0, None, "l2")
    _close(out, [[-0.6, -0.8], [0.0, 0.0], [0.0, 1.0]])
    out = embedding_step(delta, grad, 1.0, 0.5, "l2")  # length 1 -> projected to 0.5
    _close(out, [[-0.3, -0.4], [0.0, 0.0], [0.0, 0.5]])


def test_embedding_scale_is_the_mean_row_norm():
    w = torch.tensor([[1.0, -2.0], [0.5, 0.5]])
    assert embedding_scale(w, "linf") == pytest.approx((2.0 + 0.5) / 2)
    assert embedding_scale(w, "l2") == pytest.approx((math.sqrt(5) + math.sqrt(0.5)) / 2)


def test_soft_tokens_are_inserted_unscored_and_the_batch_is_right_padded():
    e1 = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])  # prompt 2 tokens + 1 answer
    e2 = torch.tensor([[4.0, 4.0], [5.0, 5.0]])  # prompt 1 token + 1 answer
    soft = torch.tensor([[9.0, 9.0]])
    x, mask, labels = with_soft_tokens([e1, e2], [[-100, -100, 7], [-100, 8]], [2, 0], soft)
    assert x[0].tolist() == [[1.0, 1.0], [2.0, 2.0], [9.0, 9.0], [3.0, 3.0]]
    assert x[1].tolist() == [[9.0, 9.0], [4.0, 4.0], [5.0, 5.0], [0.0, 0.0]]  # prefix, padded
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert labels.tolist() == [[-100, -100, -100, 7], [-100, -100, 8, -100]]


def test_per_item_nll_masks_prompt_padding_and_empty_rows():
    # logits at position t predict label t+1; vocab 2
    logits = torch.tensor(
        [
            [
                [0.0, 0.0],
                [math.log(3.0), 0.0],
                [5.0, 5.0],
            ],  # scores label 1 (p .5), label 0 (p .75)
            [[9.0, 0.0], [9.0, 0.0], [9.0, 0.0]],  # no answer token at all
        ]
    )
    labels = torch.tensor([[-100, 1, 0], [-100, -100, -100]])
    nll = per_item_nll(logits, labels)
    assert nll.tolist() == pytest.approx([(math.log(2) + math.log(4 / 3)) / 2, 0.0])


class _Linear(torch.nn.Module):
    """logits_t = x_t (d = V = 2): the soft token before the answer alone sets its first
    logits, so the gradient is softmax(s) - onehot(answer) in closed form."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(2, 2)
        with torch.no_grad():
            self.emb.weight.copy_(torch.eye(2))

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.emb

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> object:
        return type("Out", (), {"logits": inputs_embeds})()


def test_one_attack_step_on_a_hand_built_model():
    model = _Linear()
    table = model.get_input_embeddings()
    init = table.weight.mean(0, keepdim=True).detach()  # [0.5, 0.5]
    assert init.tolist() == [[0.5, 0.5]]
    embeds = [table(torch.tensor([0, 1])).detach()]  # prompt token 0, answer token 1
    delta = torch.zeros(1, 2, requires_grad=True)

    def nll(d: torch.Tensor) -> torch.Tensor:
        x, mask, labels = with_soft_tokens(embeds, [[-100, 1]], [1], init + d)
        return per_item_nll(model(inputs_embeds=x, attention_mask=mask).logits, labels)

    loss = nll(delta).sum()
    assert float(loss.detach()) == pytest.approx(math.log(2))  # p(answer) = 1/2
    (grad,) = torch.autograd.grad(loss, [delta])
    _close(grad, [[0.5, -0.5]])  # softmax([.5,.5]) - onehot(1)
    new = embedding_step(delta.detach(), grad, 0.25, 0.2, "linf")
    _close(new, [[-0.2, 0.2]])  # step 0.25, clipped to the budget 0.2
    # logits now [0.3, 0.7]: NLL = log(1 + e^-0.4), lower than before
    assert float(nll(new).sum()) == pytest.approx(math.log(1 + math.exp(-0.4)))


def test_embedding_attack_is_opt_in_and_checks_its_settings():
    forget = [QAItem("q0", "a0"), QAItem("q1", "a1")]
    req = UnlearningRequest(forget=forget, retain=[], eval={"forget": forget})
    attacks, skipped = plan_attacks(req, AuditSettings())
    assert "embedding" not in attacks and "embedding" not in skipped
    attacks, _ = plan_attacks(req, AuditSettings(attacks=("embedding",)))
    assert attacks == ["embedding"]
    with pytest.raises(ValueError, match="embedding: the unlearned model has no weights"):
        plan_attacks(req, AuditSettings(attacks=("embedding",)), has_weights=False)
    one = UnlearningRequest(forget=forget[:1], retain=[], eval={"forget": forget[:1]})
    with pytest.raises(ValueError, match="embedding: needs at least 2 forget items"):
        plan_attacks(one, AuditSettings(attacks=("embedding",)))
    for bad in (
        {"embed_budget": 0.0},
        {"embed_norm": "l1"},
        {"embed_position": "middle"},
        {"embed_tokens": 0},
        {"embed_fraction": 1.0},
    ):
        with pytest.raises(ValueError, match="embed_"):
            AuditSettings(**bad)
