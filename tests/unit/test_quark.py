"""DeMem / Quark (Lu+ 2022, arXiv 2205.13636): the reward, the binning, the reward-token
conditioning of a batch, the loss and the sampler, against hand-computed values."""

from __future__ import annotations

import math
from typing import ClassVar

import pytest
import torch

from obliviate.config import TrainConfig
from obliviate.data.collate import pad_batch
from obliviate.data.templates import PromptTemplate
from obliviate.data.types import QAItem, UnlearningRequest
from obliviate.methods import functional as F
from obliviate.methods.base import UnlearnJob
from obliviate.methods.quark import QuarkUnlearning, conditioned_pair, sample_continuations
from obliviate.methods.reward_losses import (
    dissimilarity_reward,
    quantise_rewards,
    quark_loss,
    reward_prefix,
    token_bleu,
)

LN = math.log


def test_token_bleu_by_hand():
    # p1 = 3/4, p2 = (2+1)/(3+1), p3 = (1+1)/(2+1), p4 = (0+1)/(1+1), BP = 1
    assert token_bleu([1, 2, 3, 4], [1, 2, 3, 5]) == pytest.approx((3 / 16) ** 0.25)
    # brevity: p1 = p2 = 1, BP = exp(1 - 4/2)
    assert token_bleu([1, 2], [1, 2, 3, 4]) == pytest.approx(math.exp(-1))
    # clipping: p1 = 1/3 (one 7 in the reference), p2 = (0+1)/(2+1)
    assert token_bleu([7, 7, 7], [7, 8]) == pytest.approx(1 / 3)
    assert token_bleu([1, 2], [3, 4]) == 0.0
    assert token_bleu([], [1]) == 0.0 and token_bleu([1], []) == 0.0
    assert token_bleu([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="order"):
        token_bleu([1], [1], 0)


def test_dissimilarity_reward_is_one_minus_bleu():
    assert dissimilarity_reward([1, 2, 3], [1, 2, 3]) == pytest.approx(0.0)
    assert dissimilarity_reward([9], [1, 2]) == 1.0
    assert dissimilarity_reward([1, 2], [1, 2, 3, 4], 2) == pytest.approx(1 - math.exp(-1))


def test_quantise_rewards_into_equal_quantiles_best_first():
    rewards = [0.2, 0.9, 0.5, 0.9, 0.1]  # ranking: 1, 3, 2, 0, 4
    assert quantise_rewards(rewards, 2) == [1, 0, 0, 0, 1]  # bins floor(r*2/5): 0 0 0 1 1
    assert quantise_rewards(rewards, 3) == [1, 0, 1, 0, 2]  # floor(r*3/5): 0 0 1 1 2
    assert quantise_rewards(rewards, 1) == [0] * 5
    assert quantise_rewards([], 3) == []
    with pytest.raises(ValueError, match="bins"):
        quantise_rewards(rewards, 0)


def test_reward_prefix_best_bin_is_the_plain_prompt():
    assert reward_prefix(0, 5) == ""
    assert reward_prefix(2, 5) == "<reward 2/5> "
    with pytest.raises(ValueError, match="not in"):
        reward_prefix(5, 5)


class WordTokenizer:
    """Whitespace words through a fixed table, BOS = 0 first."""

    bos_token_id, eos_token_id, pad_token_id = 0, 9, 0
    vocab: ClassVar[dict] = {"<reward": 1, "1/3>": 2, "who": 3}

    def __call__(self, text, add_special_tokens=True):
        ids = [self.vocab[w] for w in text.split()]
        return {"input_ids": ([0] if add_special_tokens else []) + ids}


def test_conditioned_pair_inserts_the_reward_token_before_the_prompt():
    tok, tpl = WordTokenizer(), PromptTemplate("raw")
    pol, ref = conditioned_pair(tok, tpl, "who", [7, 8], 1, 3)
    assert pol.input_ids == [0, 1, 2, 3, 7, 8]
    assert pol.labels == [-100, -100, -100, -100, 7, 8]
    assert ref.input_ids == [0, 3, 7, 8] and ref.labels == [-100, -100, 7, 8]
    best, ref0 = conditioned_pair(tok, tpl, "who", [7], 0, 3)
    assert best.input_ids == ref0.input_ids == [0, 3, 7]  # best bin: no token at all
    # a hand-built batch of both: right-padded, the sample tokens labelled in both
    batch = pad_batch([pol.input_ids, best.input_ids], 0, [pol.labels, best.labels])
    assert batch["input_ids"].tolist() == [[0, 1, 2, 3, 7, 8], [0, 3, 7, 0, 0, 0]]
    assert batch["labels"].tolist() == [
        [-100, -100, -100, -100, 7, 8],
        [-100, -100, 7] + [-100] * 3,
    ]
    assert batch["attention_mask"].tolist() == [[1] * 6, [1, 1, 1, 0, 0, 0]]


def _loss_inputs():
    logits = torch.full((1, 3, 2), float("nan"))
    logits[0, 1] = torch.tensor([0.0, LN(3)])  # p = (1/4, 3/4), predicts labels[0, 2] = 1
    ref = torch.full((1, 2, 2), float("nan"))
    ref[0, 0] = torch.tensor([0.0, 0.0])  # q = (1/2, 1/2)
    return logits.requires_grad_(), torch.tensor([[-100, -100, 1]]), ref, torch.tensor([[-100, 1]])


def test_quark_loss_is_nll_plus_beta_kl_ref_to_policy():
    logits, labels, ref, ref_labels = _loss_inputs()
    total, nll, kl = quark_loss(logits, labels, ref, ref_labels, kl_beta=0.1)
    assert nll.item() == pytest.approx(-LN(3 / 4))
    # KL(q || p) = 1/2 log((1/2)/(1/4)) + 1/2 log((1/2)/(3/4)) = 1/2 log(4/3)
    assert kl.item() == pytest.approx(0.5 * LN(4 / 3))
    assert total.item() == pytest.approx(-LN(3 / 4) + 0.1 * 0.5 * LN(4 / 3))
    total.backward()
    assert torch.isfinite(logits.grad).all()  # NaN logits off the sample are never read
    assert F.quark_loss is quark_loss


def test_quark_loss_rejects_misaligned_rows_and_empty_is_zero():
    logits, labels, ref, _ = _loss_inputs()
    with pytest.raises(ValueError, match="same number of sample tokens"):
        quark_loss(logits, labels, ref, torch.tensor([[-100, -100]]), 0.1)
    with pytest.raises(ValueError, match="kl_beta"):
        quark_loss(logits, labels, ref, torch.tensor([[-100, 1]]), -1.0)
    z = torch.zeros(1, 2, 2, requires_grad=True)
    none = torch.tensor([[-100, -100]])
    total, _, _ = quark_loss(z, none, torch.zeros(1, 2, 2), none, 0.1)
    assert total.item() == 0.0
    total.backward()


class Bigram(torch.nn.Module):
    def __init__(self, table):
        super().__init__()
        self.table = torch.nn.Parameter(torch.as_tensor(table, dtype=torch.float))

    def forward(self, input_ids, attention_mask=None):
        return type("Out", (), {"logits": self.table[input_ids]})()


def test_sample_continuations_stop_after_eos():
    table = torch.full((10, 10), -1e4)
    table[3, 4] = table[4, 9] = table[9, 1] = 0.0  # 3 -> 4 -> EOS(9) -> 1
    gen = torch.Generator().manual_seed(0)
    out = sample_continuations(Bigram(table), [0, 3], 2, 5, 1.0, gen, {9})
    assert out == [[4, 9], [4, 9]]
    assert sample_continuations(Bigram(table), [3], 1, 1, 1.0, gen, {9}) == [[4]]


def test_demem_rejects_bad_settings_and_documents():
    with pytest.raises(ValueError, match="n_bins=0 must be >= 1"):
        QuarkUnlearning(TrainConfig(), n_bins=0)
    with pytest.raises(ValueError, match="temperature"):
        QuarkUnlearning(TrainConfig(), temperature=0.0)
    job = UnlearnJob(
        Bigram(torch.zeros(10, 10)), WordTokenizer(), UnlearningRequest([QAItem("", "a doc")], [])
    )
    with pytest.raises(ValueError, match="question/answer forget items"):
        QuarkUnlearning(TrainConfig()).unlearn(job)
