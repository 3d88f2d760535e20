"""The one greedy decoding loop (obliviate.decoding) against a hand-rolled loop on a toy model,
and the one style of settings errors (obliviate.config)."""

from __future__ import annotations

import pytest
import torch

from obliviate.config import TrainConfig, coerce, from_dict
from obliviate.decoding import eos_ids, greedy_generate, positions

V = 7


def _next_logits(seq: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """A toy LM: the next token depends on the last token and its position (never on padding)."""
    last, p = seq[:, -1], pos[:, -1]
    return torch.nn.functional.one_hot((3 * last + p + 1) % V, V).float()


def _cached_step(calls: list):
    """A step that only sees the new tokens and keeps (ids, positions) as its 'cache'."""

    def step(ids, mask, pos, past):
        calls.append(ids.shape[1])
        seq = ids if past is None else torch.cat([past[0], ids], 1)
        allpos = pos if past is None else torch.cat([past[1], pos], 1)
        assert seq.shape == mask.shape and allpos.shape == mask.shape
        return _next_logits(seq, allpos), (seq, allpos)

    return step


def test_loop_equals_a_hand_rolled_decode_with_left_padding_and_eos():
    ids = torch.tensor([[0, 0, 4, 2], [0, 5, 1, 3], [6, 2, 2, 1]])
    mask = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1], [1, 1, 1, 1]])
    eos, pad, n = 5, 0, 6
    calls: list[int] = []
    got = greedy_generate(_cached_step(calls), ids, mask, n, pad, eos)
    assert calls == [4] + [1] * (got.shape[1] - 4 - 1)  # prompt once, then one token per step
    for row in range(3):  # unpadded, one row at a time, the whole prefix every step
        real = ids[row][mask[row].bool()][None]
        seq, done = real, False
        for _ in range(got.shape[1] - 4):
            nxt = pad if done else int(_next_logits(seq, positions(torch.ones_like(seq))).argmax())
            done = done or nxt == eos
            seq = torch.cat([seq, torch.tensor([[nxt]])], 1)
        assert got[row, 4:].tolist() == seq[0, real.shape[1] :].tolist()
    assert got.shape[1] - 4 <= n and torch.equal(got[:, :4], ids)


def test_no_new_tokens_and_eos_id_forms():
    ids, mask = torch.tensor([[1, 2]]), torch.ones(1, 2, dtype=torch.long)
    assert torch.equal(greedy_generate(_cached_step([]), ids, mask, 0, None, None), ids)
    assert eos_ids(None) == [] and eos_ids(3) == [3] and eos_ids([3, 4]) == [3, 4]


def test_settings_errors_are_one_sentence_in_one_style():
    with pytest.raises(
        ValueError, match=r"^unknown train setting 'lrr'\. Did you mean 'lr'\? Known: "
    ):
        from_dict(TrainConfig, {"lrr": 1e-3}, "train")
    with pytest.raises(ValueError, match=r"^train setting lr='fast': expected float$"):
        from_dict(TrainConfig, {"lr": "fast"}, "train")
    assert coerce("off", bool, "k", "x") is False and coerce("7", int, "k", "x") == 7
    with pytest.raises(ValueError, match=r"^x setting k=True: expected int$"):
        coerce(True, int, "k", "x")
