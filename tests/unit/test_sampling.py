"""Batches and retain draws as pure functions of (seed, epoch, global position): the same global
batches for any number of processes (obliviate.sampling)."""

from __future__ import annotations

import pytest
import torch

from obliviate.config import TrainConfig
from obliviate.data.templates import PromptTemplate, encode
from obliviate.methods import functional as F
from obliviate.models.tiny import build_tiny_llama, train_tokenizer
from obliviate.sampling import epoch_micro_batches, retain_index, splitmix64
from obliviate.training import train_loop


def test_splitmix64_matches_the_reference_generator() -> None:
    # the reference generator seeded with 0 outputs mix(k * golden) for k = 1, 2, 3
    assert splitmix64(0) == 0xE220A8397B1DCDAF
    assert splitmix64(0x9E3779B97F4A7C15) == 0x6E789E6AA1B965F4
    assert splitmix64((2 * 0x9E3779B97F4A7C15) % 2**64) == 0x06C45D188009454F


def test_retain_index_is_deterministic_and_in_range() -> None:
    draws = [retain_index(3, 1, p, 7) for p in range(200)]
    assert draws == [retain_index(3, 1, p, 7) for p in range(200)]
    assert all(0 <= d < 7 for d in draws)
    assert retain_index(3, 1, 5, 1) == 0
    # seed, epoch and position each change the stream
    assert draws != [retain_index(4, 1, p, 7) for p in range(200)]
    assert draws != [retain_index(3, 2, p, 7) for p in range(200)]
    assert draws[:100] != draws[100:]
    with pytest.raises(ValueError, match="empty retain set"):
        retain_index(0, 0, 0, 0)


def test_retain_index_is_close_to_uniform() -> None:
    n, draws = 10, 20_000
    counts = torch.bincount(
        torch.tensor([retain_index(0, 0, p, n) for p in range(draws)]), minlength=n
    )
    expected = draws / n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 27.9  # the 0.001 quantile of chi-square with 9 degrees of freedom


def test_ranks_deal_out_the_global_micro_batches() -> None:
    one = epoch_micro_batches(24, 3, seed=5, epoch=2)
    two = [epoch_micro_batches(24, 3, seed=5, epoch=2, rank=r, world=2) for r in range(2)]
    # global micro-batch j goes to rank j % 2: interleaving the ranks gives the 1-process order
    assert [mb for pair in zip(*two) for mb in pair] == one
    assert sorted(item for mb in one for _, item in mb) == list(range(24))
    assert [p for mb in one for p, _ in mb] == list(range(24))
    ranks_positions = [{p for mb in rank for p, _ in mb} for rank in two]
    assert not ranks_positions[0] & ranks_positions[1]  # each rank its own positions
    assert epoch_micro_batches(24, 3, 5, 3) != one  # a new permutation every epoch


def test_uneven_epochs_give_every_rank_the_same_count() -> None:
    order = torch.randperm(5, generator=torch.Generator().manual_seed(7 + 0)).tolist()
    ranks = [epoch_micro_batches(5, 2, seed=7, epoch=0, rank=r, world=2) for r in range(2)]
    # 3 micro-batches (2 + 2 + 1 items) padded to 4: micro-batch 3 holds positions 6, 7 (items order[p % 5])
    assert ranks[0] == [[(0, order[0]), (1, order[1])], [(4, order[4])]]
    assert ranks[1] == [[(2, order[2]), (3, order[3])], [(6, order[1]), (7, order[2])]]
    assert len(epoch_micro_batches(5, 2, seed=7, epoch=0)) == 3  # one process: no padding


QA = [(f"Who is person {i}?", f"Person {i} lives in town {i % 3}.") for i in range(8)]


@pytest.fixture(scope="module")
def setup():
    tok = train_tokenizer([q + " " + a for q, a in QA], vocab_size=300)
    return tok, [encode(tok, q, a, PromptTemplate()) for q, a in QA]


def test_train_loop_draws_retain_items_by_position_and_logs_the_step_mean(setup) -> None:
    tok, enc = setup
    seen: list[list[int]] = []
    micro_losses: list[float] = []

    def loss_fn(m, batch, rb, step):
        seen.append(rb["index"].tolist())
        logits = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = F.nll_loss(logits, batch["labels"])
        micro_losses.append(float(loss.detach()))
        return loss, {"retain_loss": torch.tensor(float(len(micro_losses)))}

    cfg = TrainConfig(lr=1e-3, max_steps=3, batch_size=2, grad_accum=2, warmup_epochs=0, seed=3)
    res = train_loop(build_tiny_llama(tok, "xs"), loss_fn, enc[:6], cfg, 0, enc, progress=False)
    # epoch e, position p -> retain_index(seed, e, p, n): 3 micro-batches of 2 per epoch
    want = [
        [retain_index(3, e, p, 8) for p in (2 * j, 2 * j + 1)] for e in (0, 1) for j in range(3)
    ]
    assert seen == want
    assert res.retain_indices == [i for mb in want for i in mb]
    # micro-batches accumulate across the epoch boundary: steps of micro-batches (1,2),(3,4),(5,6)
    assert [r["loss"] for r in res.log] == pytest.approx(
        [(micro_losses[k] + micro_losses[k + 1]) / 2 for k in (0, 2, 4)], abs=1e-6
    )
    assert [r["retain_loss"] for r in res.log] == [1.5, 3.5, 5.5]
