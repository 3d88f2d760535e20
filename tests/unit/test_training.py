"""The trainer: schedule from the real loader length, divergence errors, collapse guard,
and exact resume from an epoch checkpoint."""

from __future__ import annotations

import pytest
import torch

from obliviate.config import TrainConfig
from obliviate.data.templates import PromptTemplate, encode
from obliviate.methods import functional as F
from obliviate.models.tiny import build_tiny_llama, train_tokenizer
from obliviate.training import TrainingDiverged, train_loop

QA = [
    (f"Who is person {i}?", f"Person {i} is a {w} from town {i % 3}.")
    for i, w in enumerate(
        ["baker", "sailor", "potter", "judge", "pilot", "weaver", "chemist", "tailor"]
    )
]


@pytest.fixture(scope="module")
def setup():
    tok = train_tokenizer([q + " " + a for q, a in QA], vocab_size=300)
    enc = [encode(tok, q, a, PromptTemplate()) for q, a in QA]
    return tok, enc


def _nll(m, batch, rb, step):
    logits = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.nll_loss(logits, batch["labels"]), {}


def _params(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_schedule_steps_follow_the_loader(setup) -> None:
    tok, enc = setup
    model = build_tiny_llama(tok, "xs")
    cfg = TrainConfig(lr=1e-3, epochs=2, batch_size=3, warmup_epochs=0)
    res = train_loop(model, _nll, enc, cfg, tok.pad_token_id, progress=False)
    assert res.steps == 2 * 3  # ceil(8 / 3) = 3 batches per epoch
    assert res.log[-1]["lr"] == pytest.approx(0.0)  # linear decay ends at 0
    assert res.log[0]["loss"] > res.log[-1]["loss"]


def test_divergence_is_a_clear_error(setup) -> None:
    tok, enc = setup
    model = build_tiny_llama(tok, "xs")

    def bad(m, b, rb, step):
        loss, logs = _nll(m, b, rb, step)
        return loss * float("nan"), logs

    with pytest.raises(TrainingDiverged, match=r"step 0.*lower the learning rate"):
        train_loop(
            model,
            bad,
            enc,
            TrainConfig(lr=1e-3, epochs=1, batch_size=4),
            tok.pad_token_id,
            progress=False,
        )


def test_retain_guard_stops_a_collapsing_run(setup) -> None:
    tok, enc = setup
    model = build_tiny_llama(tok, "xs")

    def rising(m, b, rb, step):
        loss, _ = _nll(m, b, rb, step)
        return loss, {"retain_loss": 1.0 + step}  # retain loss doubles at step 1

    cfg = TrainConfig(lr=1e-3, epochs=3, batch_size=4, retain_guard=1.5)
    res = train_loop(model, rising, enc, cfg, tok.pad_token_id, progress=False)
    assert res.stopped is not None and "exceeded 1.5x" in res.stopped
    assert res.steps == 2


def test_resume_from_checkpoint_equals_an_uninterrupted_run(setup, tmp_path) -> None:
    tok, enc = setup
    cfg = TrainConfig(lr=1e-3, epochs=3, batch_size=4, warmup_epochs=0)
    retain = enc[:4]
    ref = build_tiny_llama(tok, "xs", seed=1)
    full = train_loop(ref, _nll, enc, cfg, tok.pad_token_id, retain_set=retain, progress=False)

    model = build_tiny_llama(tok, "xs", seed=1)

    def crash_at_5(m, b, rb, step):
        if step == 5:
            raise KeyboardInterrupt
        return _nll(m, b, rb, step)

    with pytest.raises(KeyboardInterrupt):
        train_loop(
            model,
            crash_at_5,
            enc,
            cfg,
            tok.pad_token_id,
            retain_set=retain,
            progress=False,
            checkpoint_dir=tmp_path / "ckpt",
        )
    saved = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert saved == ["step-00000002", "step-00000004"]  # epochs 1 and 2 were saved
    fresh = build_tiny_llama(tok, "xs", seed=1)
    resumed = train_loop(
        fresh,
        _nll,
        enc,
        cfg,
        tok.pad_token_id,
        retain_set=retain,
        progress=False,
        checkpoint_dir=tmp_path / "ckpt",
    )
    assert resumed.steps == full.steps == 6
    assert [r["loss"] for r in resumed.log] == pytest.approx(
        [r["loss"] for r in full.log], rel=1e-5
    )
    assert resumed.retain_indices == full.retain_indices
    torch.testing.assert_close(_params(fresh), _params(ref), rtol=1e-5, atol=1e-6)
    assert not (tmp_path / "ckpt").exists()  # removed once finished


def test_empty_training_set_is_an_error(setup) -> None:
    tok, _ = setup
    with pytest.raises(ValueError, match="empty"):
        train_loop(build_tiny_llama(tok, "xs"), _nll, [], TrainConfig(), tok.pad_token_id)


class _SecondRank:
    """A stand-in for rank 1 of 2 that reaches the checkpoint before rank 0 created the folder."""

    process_index, is_main_process, num_processes = 1, False, 2

    def wait_for_everyone(self) -> None:
        pass


def test_a_non_main_rank_can_checkpoint_before_rank_0_made_the_folder(setup, tmp_path) -> None:
    from obliviate.checkpoints import LoopState, save

    gen = torch.Generator().manual_seed(3)
    folder = tmp_path / "ckpt"
    drawn = LoopState(step=1, retain_indices=[4, 2])
    save(folder, _SecondRank(), None, None, None, {"retain": gen}, drawn, "key")
    saved = torch.load(folder / ".tmp-step-00000001" / "rng_1.pt", weights_only=True)
    assert torch.equal(saved["rng"]["gens"]["retain"], gen.get_state())
    assert saved["retain_indices"].tolist() == [4, 2]  # this rank's own draws, not rank 0's
    assert not (folder / "step-00000001").exists()  # only rank 0 marks the checkpoint complete
