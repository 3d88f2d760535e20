"""The split / gather logic of data-parallel evaluation (obliviate.parallel_eval) without a
launch: assignment balanced by token count, order restored, uneven sizes, more ranks than
batches, empty input, and the mode off outside ``data_parallel()`` (docs/scale-out.md)."""

from __future__ import annotations

from typing import Any

import pytest

from obliviate import parallel_eval as pe


def test_assign_balances_token_counts_by_hand() -> None:
    # costliest first, to the least-loaded rank: 5 -> r0, 3 -> r1, 3 -> r1 (3 < 5), 1 -> r0 (5 < 6)
    assert pe.assign([5, 3, 3, 1], 2) == [0, 1, 1, 0]
    # equal costs: ties go to the first unit and the lowest rank
    assert pe.assign([2, 2, 2], 2) == [0, 1, 0]
    # one process gets everything
    assert pe.assign([7, 1, 4], 1) == [0, 0, 0]


def test_assign_uneven_sizes_and_more_ranks_than_units() -> None:
    assert pe.assign([4, 2], 4) == [0, 1]  # ranks 2 and 3 get nothing
    assert pe.share([4, 2], 3, 4) == []
    owner = pe.assign([10, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 2)
    loads = [sum(c for c, r in zip([10] + [1] * 10, owner) if r == k) for k in range(2)]
    assert loads == [10, 10]


def test_assign_empty_and_bad_world() -> None:
    assert pe.assign([], 3) == []
    assert pe.share([], 0, 3) == []
    with pytest.raises(ValueError, match="world size 0"):
        pe.assign([1], 0)


def test_shares_partition_the_units_and_merge_restores_order() -> None:
    costs = [9, 1, 8, 8, 3, 3, 3, 7, 2]
    for world in (1, 2, 3, 5, 12):
        shares = [pe.share(costs, r, world) for r in range(world)]
        flat = sorted(i for s in shares for i in s)
        assert flat == list(range(len(costs)))
        parts = [{i: f"r{i}" for i in s} for s in reversed(shares)]  # any rank order
        assert pe.merge(parts, len(costs)) == [f"r{i}" for i in range(len(costs))]


def test_merge_refuses_missing_and_twice_computed_units() -> None:
    with pytest.raises(RuntimeError, match="no rank"):
        pe.merge([{0: "a"}, {2: "c"}], 3)
    with pytest.raises(RuntimeError, match="two ranks"):
        pe.merge([{0: "a", 1: "b"}, {1: "b"}], 2)
    assert pe.merge([{}, {}], 0) == []


def _simulate(monkeypatch: pytest.MonkeyPatch, rank: int, world: int, costs: list[int]) -> Any:
    """map_batches as ``rank`` of ``world``: the gather hands back what the other ranks
    would compute (their shares, run here)."""
    calls: list[int] = []

    def run(b: int) -> int:
        calls.append(b)
        return b * 10

    def fake_gather(mine: dict, shape: tuple, ranks: pe.Ranks) -> list[dict]:
        assert shape == (len(costs), sum(costs))
        return [
            mine if r == rank else {i: i * 10 for i in pe.share(costs, r, world)}
            for r in range(world)
        ]

    monkeypatch.setattr(pe, "_all_gather", fake_gather)
    token = pe._ACTIVE.set(pe.Ranks(rank, world))
    try:
        out = pe.map_batches(list(range(len(costs))), costs, run)
        writer = pe.is_writer()
    finally:
        pe._ACTIVE.reset(token)
    return out, calls, writer


def test_map_batches_runs_only_its_share_and_returns_every_result_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    costs = [5, 3, 3, 1, 6]
    for rank in range(3):
        out, calls, writer = _simulate(monkeypatch, rank, 3, costs)
        assert out == [0, 10, 20, 30, 40]
        assert calls == pe.share(costs, rank, 3)
        assert writer == (rank == 0)
    out, calls, _ = _simulate(monkeypatch, 3, 4, [1, 1])  # a rank without work still gathers
    assert out == [0, 10] and calls == []


def test_map_batches_outside_data_parallel_runs_everything_here() -> None:
    seen: list[int] = []
    assert pe.map_batches([3, 1, 2], [1, 1, 1], lambda b: seen.append(b) or b + 1) == [4, 2, 3]
    assert seen == [3, 1, 2]
    assert pe.map_batches([], [], lambda b: 1 / 0) == []  # empty: nothing run, nothing gathered
    with pytest.raises(ValueError, match="2 costs for 1 batches"):
        pe.map_batches([1], [1, 2], lambda b: b)


def test_progress_wraps_only_the_batches_run_here() -> None:
    wrapped: list[list[int]] = []

    def bar(todo: list[int]) -> list[int]:
        wrapped.append(list(todo))
        return todo

    pe.map_batches(["a", "b"], [1, 1], str.upper, bar)
    assert wrapped == [[0, 1]]


def test_mode_is_off_without_a_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pe.data_parallel() as ranks:
        assert ranks is None and pe.current() is None and pe.is_writer()
        assert pe.on_rank0(lambda: 7) == 7 and pe.from_rank0("x") == "x"
    with pe.launched() as main:  # a single process: no group joined, this process prints
        assert main and pe.current() is None
    assert pe.launched_world_size({"WORLD_SIZE": "4"}) == 4
    assert pe.launched_world_size({}) == 1
    assert pe.launched_world_size({"WORLD_SIZE": "x"}) == 1


def test_training_inside_data_parallel_is_local_and_equals_one_process() -> None:
    """The audit's relearning attack inside a data-parallel evaluation: the training loop gets
    a LocalAccelerator (no collective) and ends with the weights of the default accelerator."""
    import copy

    import torch
    from micro_models import micro_llama  # tests/unit/micro_models.py

    from obliviate.config import TrainConfig
    from obliviate.data.templates import PromptTemplate, encode
    from obliviate.methods import functional as F
    from obliviate.training import get_accelerator, train_loop

    micro = micro_llama(n_items=6)
    tok, model = micro["tok"], micro["model"]
    enc = [encode(tok, it.question, it.answer, PromptTemplate(), 64) for it in micro["items"]]
    cfg = TrainConfig(lr=1e-2, max_steps=3, batch_size=2, warmup_epochs=0.0, seed=3)

    def loss(m: Any, batch: dict, _rb: Any, _step: int) -> tuple[Any, dict]:
        out = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return F.nll_loss(out.logits, batch["labels"]), {}

    one, split = copy.deepcopy(model), copy.deepcopy(model)
    ref = train_loop(one, loss, enc, cfg, tok.pad_token_id, progress=False)
    token = pe._ACTIVE.set(pe.Ranks(1, 2))
    try:
        acc = get_accelerator()
        assert isinstance(acc, pe.LocalAccelerator) and acc.num_processes == 1
        res = train_loop(split, loss, enc, cfg, tok.pad_token_id, progress=False)
    finally:
        pe._ACTIVE.reset(token)
    assert [r["loss"] for r in res.log] == [r["loss"] for r in ref.log]
    for a, b in zip(one.parameters(), split.parameters()):
        assert torch.equal(a, b)
    assert not isinstance(get_accelerator(), pe.LocalAccelerator)  # outside: the usual one
