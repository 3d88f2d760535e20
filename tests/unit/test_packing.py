"""Packed training passes (obliviate.packing): the row plan, the packed inputs written out by hand,
logits equal to padded ones at every answer-predicting position, and the fallback for models whose
forward does not honour packing."""

from __future__ import annotations

import logging

import pytest
import torch

from obliviate import packing
from obliviate.packing import (
    checked_packed_logits,
    pack,
    packed_logits,
    plan_rows,
    prefix_lengths,
)


def _batch(lengths: list[int], prompt: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """A right-padded batch (pad id 0): ``prompt`` prompt tokens, then answer tokens."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask, labels = torch.zeros_like(ids), torch.full_like(ids, -100)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(3, 60, (n,), generator=g)
        mask[i, :n] = 1
        labels[i, prompt:n] = ids[i, prompt:n]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@pytest.fixture(scope="module")
def llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, intermediate_size=64, tie_word_embeddings=True)  # fmt: skip
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


def test_plan_rows_first_fit_decreasing() -> None:
    # longest first: 9 -> row 0; 7 -> row 1; 5 -> row 1 at 7; 4 -> row 0 at 9 (fills 13);
    # 3 -> no room in rows 0 (13) and 1 (12) -> row 2; 2 -> row 2 at 3
    assert plan_rows([7, 3, 5, 4, 9, 2], 13) == [(1, 0), (2, 0), (1, 7), (0, 9), (0, 0), (2, 3)]
    assert plan_rows([4, 4], 4) == [(0, 0), (1, 0)]  # equal lengths keep input order
    assert plan_rows([], 5) == []
    with pytest.raises(ValueError, match="does not fit"):
        plan_rows([6], 5)


def test_prefix_lengths_only_for_right_padding() -> None:
    assert prefix_lengths(torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]])) == [2, 3, 1]
    assert prefix_lengths(torch.tensor([[0, 1, 1], [1, 1, 1]])) is None  # left padding
    assert prefix_lengths(torch.tensor([[1, 0, 1]])) is None  # a hole


def test_pack_written_out() -> None:
    ids = torch.tensor([[5, 6, 7], [8, 9, 0]])
    p = pack(ids, [3, 2], pad_id=0, dtype=torch.float32)
    assert p.width == 4  # 1.5 x the longest sequence (3), rounded down
    # 3 tokens -> row 0; 2 do not fit next to them (3 + 2 > 4) -> row 1
    assert p.input_ids.tolist() == [[5, 6, 7, 0], [8, 9, 0, 0]]
    assert p.position_ids.tolist() == [[0, 1, 2, 0], [0, 1, 0, 0]]
    assert p.index.tolist() == [[0, 1, 2], [4, 5, 0]]
    allowed = (p.mask == 0)[:, 0].int().tolist()
    # row 0: sequence 0 causal, the unused tail sees only itself
    assert allowed[0] == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 1]]
    assert allowed[1] == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]
    # two sequences in one row never see each other
    q = pack(torch.tensor([[1, 2], [3, 4]]), [2, 2], pad_id=0, dtype=torch.float32)
    assert q.width == 3 and q.input_ids.shape == (2, 3)  # 2 + 2 > 3: one row each
    r = pack(torch.tensor([[1, 2, 3, 4], [5, 0, 0, 0], [6, 7, 0, 0]]), [4, 1, 2], 0, torch.float32)
    assert r.width == 6 and r.input_ids.tolist() == [[1, 2, 3, 4, 6, 7], [5, 0, 0, 0, 0, 0]]
    assert r.position_ids[0].tolist() == [0, 1, 2, 3, 0, 1]
    seen = (r.mask[0, 0] == 0).int()
    assert seen[4].tolist() == [0, 0, 0, 0, 1, 0] and seen[5].tolist() == [0, 0, 0, 0, 1, 1]


@pytest.mark.parametrize("split", [True, False])
def test_packed_logits_equal_padded_at_answer_positions(llama, monkeypatch, split) -> None:
    if not split:  # a wrapped model: the full forward on the packed rows
        monkeypatch.setattr(packing, "head_split", lambda model: None)
    fb, rb = _batch([7, 3, 5, 2], seed=1), _batch([4, 9, 2], prompt=3, seed=2)
    with torch.no_grad():
        got = packed_logits(llama, [fb, rb], pad_id=0)
        assert got is not None
        for z, b in zip(got, [fb, rb], strict=True):
            ref = llama(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
            assert z.shape == ref.shape
            at = torch.zeros_like(b["labels"], dtype=torch.bool)
            at[:, :-1] = b["labels"][:, 1:] != -100
            torch.testing.assert_close(z[at], ref[at], atol=1e-5, rtol=1e-5)
            if split:  # the LM head ran at the answer positions only
                assert bool((z[~at] == 0).all())
            else:  # the model's own values at the other real positions
                real = b["attention_mask"].bool()
                torch.testing.assert_close(z[real], ref[real], atol=1e-5, rtol=1e-5)


def test_no_answer_tokens_give_zero_logits_with_a_graph(llama) -> None:
    b = _batch([4, 3], prompt=5)  # every position is prompt: no label
    assert bool((b["labels"] == -100).all())
    z = packed_logits(llama.train(), [b], pad_id=0)
    llama.eval()
    assert z is not None and bool((z[0] == 0).all())
    from obliviate.methods import functional as F

    loss = F.nll_loss(z[0], b["labels"])
    loss.backward()  # the graph is intact
    assert float(loss) == 0.0


def test_left_padded_batches_are_not_packed(llama) -> None:
    b = _batch([3, 3])
    b["attention_mask"] = torch.tensor([[0, 1, 1], [1, 1, 1]])
    assert packed_logits(llama, [b], pad_id=0) is None
    assert checked_packed_logits(llama, [b], pad_id=0) is None


def test_a_model_that_changes_logits_after_the_head_trains_unpacked(llama, caplog) -> None:
    """A final transform the packed path skips (here a logit scale, as some architectures
    have) fails the check: the caller runs unpacked, with a warning; a plain model passes."""
    import copy

    class Scaled(type(llama)):  # type: ignore[misc]
        def forward(self, *args, **kwargs):
            out = super().forward(*args, **kwargs)
            out.logits = out.logits * 2.0
            return out

    scaled = copy.deepcopy(llama)
    scaled.__class__ = Scaled
    batches = [_batch([5, 4], seed=3)]
    with caplog.at_level(logging.WARNING, logger="obliviate.packing"):
        assert checked_packed_logits(scaled, batches, pad_id=0) is None
        assert checked_packed_logits(scaled, batches, pad_id=0) is None  # checked once
    assert sum("training unpacked" in r.getMessage() for r in caplog.records) == 1
    assert scaled.training is False  # the check restores the mode it found
    plain = copy.deepcopy(llama).train()
    got = checked_packed_logits(plain, batches, pad_id=0)
    assert got is not None and got[0].requires_grad and plain.training
