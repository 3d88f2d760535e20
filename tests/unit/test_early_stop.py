"""Early stopping inside a run (docs/sweep.md, "Early stopping"): the stopping rule on scripted
measurement sequences, the per-item NLL and criteria by hand, the settings, and the trainer
stopping and restoring the best state with a scripted monitor."""

from __future__ import annotations

import math

import pytest
import torch

from obliviate.config import EarlyStopConfig, TrainConfig, from_dict, to_dict
from obliviate.early_stop import (
    EarlyStopper,
    StopTracker,
    criterion_value,
    fixed_sample,
    item_nll,
    summarise,
)


def m(auc: float, retain: float = 0.8, forget: float = 0.5, holdout: float = 0.2) -> dict:
    return {"mia_auc": auc, "forget_prob": forget, "holdout_prob": holdout, "retain_prob": retain}


def test_tracker_keeps_the_best_step_and_stops_after_patience() -> None:
    t = StopTracker(EarlyStopConfig(patience=2))
    decisions = [
        t.update(0, m(0.95)),  # |0.95 - 0.5| = 0.45: the first value is the best so far
        t.update(5, m(0.70)),  # 0.20
        t.update(10, m(0.55)),  # 0.05: best
        t.update(15, m(0.30)),  # 0.20: worse (over-unlearned), 1 check
        t.update(20, m(0.35)),  # 0.15: worse, 2 checks -> stop
    ]
    assert [d.improved for d in decisions] == [True, True, True, False, False]
    assert [d.stop for d in decisions[:4]] == [None] * 4
    assert decisions[4].stop == "mia did not improve for 2 checks (best 0.0500 at step 10)"
    assert t.best_step == 10 and t.best == pytest.approx(0.05)
    assert [h["step"] for h in t.history] == [0, 5, 10, 15, 20]


def test_an_improvement_resets_the_patience_and_min_delta_counts() -> None:
    t = StopTracker(EarlyStopConfig(patience=2, min_delta=0.01))
    t.update(0, m(0.9))  # 0.4
    assert not t.update(1, m(0.895)).improved  # 0.395: better by less than min_delta
    assert t.update(2, m(0.8)).improved and t.bad == 0  # 0.3
    assert t.update(3, m(0.85)).stop is None
    assert t.update(4, m(0.85)).stop is not None


def test_the_retain_floor_stops_at_once_and_never_becomes_best() -> None:
    t = StopTracker(EarlyStopConfig(patience=5, min_retain=0.9))
    t.update(0, m(0.95, retain=0.8))
    d = t.update(5, m(0.5, retain=0.7))  # perfect AUC but 0.7 < 0.9 x 0.8 = 0.72
    assert not d.improved and t.best_step == 0
    assert d.stop == "retain probability 0.700 fell below 0.9 x its initial 0.800 at step 5"


def test_forget_prob_gap_criterion() -> None:
    assert criterion_value("forget_prob_gap", m(0.9, forget=0.5, holdout=0.2)) == pytest.approx(0.3)
    assert criterion_value("mia", m(0.25)) == pytest.approx(0.25)
    t = StopTracker(EarlyStopConfig(criterion="forget_prob_gap", patience=1))
    t.update(0, m(0.9, forget=0.9, holdout=0.2))
    assert t.update(1, m(0.9, forget=0.25, holdout=0.2)).improved
    assert t.update(2, m(0.9, forget=0.05, holdout=0.2)).stop is not None  # 0.15 > 0.05
    with pytest.raises(ValueError, match="unknown early-stopping criterion"):
        criterion_value("rouge", m(0.5))


def test_item_nll_by_hand_with_padding_and_an_empty_answer() -> None:
    # vocab 2; logits favour token 0 with p = e^1 / (e^1 + e^0)
    logits = torch.tensor([[[1.0, 0.0]] * 4] * 3)
    labels = torch.tensor(
        [
            [-100, 0, 1, -100],  # answer tokens 0 and 1, then padding
            [-100, -100, 0, 0],
            [-100, -100, -100, -100],  # no answer token
        ]
    )
    p0 = math.e / (math.e + 1)
    nll = item_nll(logits, labels).tolist()
    assert nll[0] == pytest.approx((-math.log(p0) - math.log(1 - p0)) / 2)
    assert nll[1] == pytest.approx(-math.log(p0))
    assert math.isnan(nll[2])


def test_summarise_by_hand() -> None:
    out = summarise([0.1, 0.2], [0.3, 0.05], [0.0, math.log(2)])
    # AUC = P(s_holdout > s_forget): pairs (0.3 > 0.1, 0.3 > 0.2, 0.05 < both) = 2 / 4
    assert out["mia_auc"] == pytest.approx(0.5)
    assert out["forget_prob"] == pytest.approx((math.exp(-0.1) + math.exp(-0.2)) / 2)
    assert out["retain_prob"] == pytest.approx(0.75)
    assert summarise([float("nan")], [1.0], [1.0])["forget_prob"] == 0.0  # counts as 0


def test_fixed_sample_spreads_evenly() -> None:
    assert fixed_sample(10, 4) == [0, 2, 5, 7]
    assert fixed_sample(3, 4) == [0, 1, 2]
    assert fixed_sample(0, 4) == []


def test_settings_are_typed_nested_and_checked() -> None:
    cfg = from_dict(TrainConfig, {"early_stop": {"every": "2", "criterion": "forget_prob_gap"}})
    assert cfg.early_stop == EarlyStopConfig(every=2, criterion="forget_prob_gap")
    assert to_dict(cfg)["early_stop"]["every"] == 2  # recorded in config.yaml and run keys
    assert TrainConfig().early_stop is None
    for bad, message in (
        ({"evry": 2}, "Did you mean 'every'"),
        ({"every": 0}, "early_stop.every=0: must be >= 1"),
        ({"criterion": "rouge"}, "choose one of mia, forget_prob_gap"),
        ({"min_retain": 1.5}, "must be in \\[0, 1\\]"),
    ):
        with pytest.raises(ValueError, match=message):
            TrainConfig(early_stop=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="give its settings"):
        TrainConfig(early_stop=5)  # type: ignore[arg-type]


def test_methods_that_are_not_compositions_refuse_early_stopping() -> None:
    from obliviate.registry import METHODS

    with pytest.raises(ValueError, match="not a composed gradient method"):
        METHODS.get("task_vector").build({"train": {"early_stop": {"every": 2}}})
    METHODS.get("graddiff").build({"train": {"early_stop": {"every": 2}}})


def test_the_stopper_needs_a_holdout_and_a_retain_set() -> None:
    with pytest.raises(ValueError, match="needs a holdout set"):
        EarlyStopper(EarlyStopConfig(), [1], [], [1], 0)
    with pytest.raises(ValueError, match="needs a retain set"):
        EarlyStopper(EarlyStopConfig(), [1], [1], [], 0)


class Scripted(EarlyStopper):
    """Measurements from a script (by check), and a copy of the weights at each check."""

    def __init__(self, cfg: EarlyStopConfig, script: list[dict], items: list) -> None:
        super().__init__(cfg, items, items, items, 0)
        self.script, self.seen = script, []

    def measure(self, model):  # type: ignore[no-untyped-def]
        self.seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return self.script[len(self.seen) - 1]


@pytest.mark.parametrize("restore", [True, False])
def test_the_trainer_stops_and_restores_the_best_state(restore: bool) -> None:
    from obliviate.data.templates import PromptTemplate, encode
    from obliviate.methods import functional as F
    from obliviate.models.tiny import build_tiny_llama, train_tokenizer
    from obliviate.training import train_loop

    qa = [(f"Who is person {i}?", f"Person {i} bakes bread in town {i}.") for i in range(6)]
    tok = train_tokenizer([q + " " + a for q, a in qa], vocab_size=300)
    enc = [encode(tok, q, a, PromptTemplate()) for q, a in qa]
    model = build_tiny_llama(tok, "xs", seed=1)
    es = EarlyStopConfig(every=2, patience=1, restore=restore)
    # checks at steps 0, 2, 4: best at 2, worse at 4 -> stop at 4 (of 12 steps)
    monitor = Scripted(es, [m(0.9), m(0.6), m(0.8), m(0.5)], enc)
    cfg = TrainConfig(lr=1e-3, max_steps=12, batch_size=2, warmup_epochs=0, early_stop=es)

    def loss(mod, b, rb, step):  # type: ignore[no-untyped-def]
        out = mod(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        return F.nll_loss(out.logits, b["labels"]), {}

    res = train_loop(model, loss, enc, cfg, tok.pad_token_id, progress=False, monitor=monitor)
    assert res.steps == 4 and len(monitor.seen) == 3
    assert [r["step"] for r in res.log if "es_mia_auc" in r] == [2, 4]
    assert res.log[1]["es_mia_auc"] == 0.6 and res.log[1]["es_criterion"] == pytest.approx(0.1)
    final = model.state_dict()
    at_best, at_stop = monitor.seen[1], monitor.seen[2]
    expected = at_best if restore else at_stop
    assert all(torch.equal(final[k], expected[k]) for k in final)
    assert not all(torch.equal(at_best[k], at_stop[k]) for k in final)  # training moved it
    assert res.stopped is not None and res.stopped.startswith("mia did not improve for 1 checks")
    assert ("restored the best state (step 2, mia 0.1000)" in res.stopped) is restore
    record = monitor.record()
    assert record["best_step"] == 2 and record["note"] == res.stopped


def test_an_unmeasured_final_state_is_measured_before_choosing() -> None:
    es = EarlyStopConfig(every=4, patience=3)
    # 5 steps: checks at 0 and 4, then the final step 5 is measured by finish()
    from obliviate.data.templates import PromptTemplate, encode
    from obliviate.methods import functional as F
    from obliviate.models.tiny import build_tiny_llama, train_tokenizer
    from obliviate.training import train_loop

    qa = [(f"Q{i}?", f"Answer {i}.") for i in range(4)]
    tok = train_tokenizer([q + " " + a for q, a in qa], vocab_size=300)
    enc = [encode(tok, q, a, PromptTemplate()) for q, a in qa]
    model = build_tiny_llama(tok, "xs", seed=1)
    monitor = Scripted(es, [m(0.9), m(0.7), m(0.5)], enc)
    cfg = TrainConfig(lr=1e-3, max_steps=5, batch_size=2, warmup_epochs=0, early_stop=es)

    def loss(mod, b, rb, step):  # type: ignore[no-untyped-def]
        out = mod(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        return F.nll_loss(out.logits, b["labels"]), {}

    res = train_loop(model, loss, enc, cfg, tok.pad_token_id, progress=False, monitor=monitor)
    assert res.steps == 5 and len(monitor.seen) == 3
    assert monitor.tracker.best_step == 5 and res.stopped is None  # the final state is best
