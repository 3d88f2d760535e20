"""Sweep objectives on hand-made metric dicts, their parsing, and the study summary's
selection (best trial, Pareto front) and table (docs/sweep.md)."""

from __future__ import annotations

import pytest

from obliviate.registry import OBJECTIVES
from obliviate.sweep.objectives import parse_objective, utility_drop_value
from obliviate.sweep.summary import (
    best_trials,
    build_summary,
    pareto_front,
    select_by,
    summary_table,
)

TARGET = {"retain_prob": 0.8, "retain_rouge": 0.9, "model_utility": 0.2, "forget_prob": 0.9}
RETAIN = {"model_utility": 0.16, "forget_quality": 1.0}
REFS = {"target": TARGET, "retain": RETAIN}


def score(name: str, m: dict, **params: object):
    return OBJECTIVES.get(name).score(m, REFS, params)


def test_oracle_is_forget_quality_under_two_utility_floors() -> None:
    ok = {"forget_quality": 0.4, "model_utility": 0.16, "retain_prob": 0.72}
    s = score("oracle", ok)  # 0.16 >= 0.95 x 0.16 = 0.152; 0.72 >= 0.9 x 0.8 = 0.72
    assert (s.value, s.feasible, s.violations) == (0.4, True, ())
    bad = {"forget_quality": 0.9, "model_utility": 0.144, "retain_prob": 0.64}
    s = score("oracle", bad)
    assert s.value == 0.9 and not s.feasible
    # shortfalls (0.152 - 0.144) / 0.152 and (0.72 - 0.64) / 0.72
    assert s.shortfall == pytest.approx(0.008 / 0.152 + 0.08 / 0.72)
    assert s.violations == (
        "model_utility 0.144 < 0.95 x the retain model's 0.160",
        "retain_prob 0.640 < 0.9 x the target's 0.800",
    )
    oracle = OBJECTIVES.get("oracle")
    assert oracle.penalised(s) == pytest.approx(-1 - s.shortfall)  # below every feasible FQ
    # looser floors make the same trial feasible
    assert score("oracle", bad, utility=0.9, retain_prob=0.8).feasible


def test_oracle_needs_the_retain_model_and_its_metrics() -> None:
    with pytest.raises(ValueError, match="needs the retain model"):
        OBJECTIVES.get("oracle").score({"forget_quality": 1.0}, {"target": TARGET, "retain": None})
    with pytest.raises(ValueError, match="needs forget_quality of the trial"):
        score("oracle", {"model_utility": 0.2, "retain_prob": 0.8})


def test_utility_drop_is_the_largest_relative_drop_below_the_target() -> None:
    m = {"retain_prob": 0.6, "retain_rouge": 0.9, "model_utility": 0.25}
    assert utility_drop_value(m, TARGET) == pytest.approx(0.25)  # 1 - 0.6/0.8; MU rose: 0
    assert utility_drop_value({"retain_prob": 0.8}, TARGET) == 0.0
    with pytest.raises(ValueError, match="utility drop needs"):
        utility_drop_value({"forget_prob": 0.1}, TARGET)
    s = score("utility_drop", m, bound=0.2)
    assert s.value == pytest.approx(0.25) and not s.feasible
    assert OBJECTIVES.get("utility_drop").penalised(s) == pytest.approx(2.05)
    assert score("utility_drop", m).feasible  # default bound 1: no constraint


def test_mia_is_the_distance_of_the_auc_from_one_half() -> None:
    m = {"mia_loss_auc": 0.8, "mia_min_k_auc": 0.45, "retain_prob": 0.76}
    s = score("mia", m)
    assert s.value == pytest.approx(0.3) and s.feasible  # drop 0.05 <= 0.1
    assert score("mia", m, attack="min_k").value == pytest.approx(0.05)
    over = score("mia", {**m, "retain_prob": 0.6})  # drop 0.25 > 0.1
    assert not over.feasible and over.violations == ("utility drop 0.250 > 0.1",)
    with pytest.raises(ValueError, match="attack='gradnorm'"):
        score("mia", m, attack="gradnorm")
    with pytest.raises(ValueError, match="mia_zlib_auc"):
        score("mia", m, attack="zlib")


def test_forget_prob_gap_compares_with_the_holdout_level() -> None:
    m = {"forget_prob": 0.30, "holdout_prob": 0.12, "retain_prob": 0.8}
    assert score("forget_prob_gap", m).value == pytest.approx(0.18)
    assert score("forget_prob_gap", {**m, "forget_prob": 0.05}).value == pytest.approx(0.07)
    with pytest.raises(ValueError, match="holdout_prob"):
        score("forget_prob_gap", {"forget_prob": 0.3, "retain_prob": 0.8})


def test_objective_specs_parse_with_typed_parameters() -> None:
    obj, params = parse_objective("oracle:utility=0.9,retain_prob=0.8")
    assert obj.name == "oracle" and params == {"utility": 0.9, "retain_prob": 0.8}
    assert parse_objective("mia:attack=min_k")[1] == {"attack": "min_k"}
    with pytest.raises(ValueError, match="Did you mean 'utility'"):
        parse_objective("oracle:utilty=0.9")
    with pytest.raises(ValueError, match="expected float"):
        parse_objective("oracle:utility=high")
    with pytest.raises(ValueError, match="expected a name"):
        parse_objective("mia:attack=3")
    with pytest.raises(KeyError, match="orcale"):
        parse_objective("orcale")


def test_pareto_front_by_hand() -> None:
    pts = [[0.1, 0.5], [0.2, 0.2], [0.3, 0.1], [0.3, 0.3], [0.1, 0.5]]
    # minimise both: [0.3, 0.3] is dominated by [0.2, 0.2]; equal points are both kept
    assert pareto_front(pts, ["minimize", "minimize"]) == [0, 1, 2, 4]
    # maximise the first, minimise the second: [0.3, 0.1] dominates all but itself
    assert pareto_front(pts, ["maximize", "minimize"]) == [2]
    assert pareto_front([], ["minimize"]) == []


def _trial(n: int, scores: list[float], feasible: bool, state: str = "COMPLETE") -> dict:
    values = scores if feasible else [2.0 + s for s in scores]
    return {
        "number": n,
        "state": state,
        "params": {"train.lr": 1e-4 * (n + 1)},
        "values": values,
        "scores": scores,
        "feasible": feasible,
        "metrics": {"forget_quality": 0.5, "retain_prob": 0.7},
    }


def test_selection_prefers_feasible_trials() -> None:
    trials = [
        _trial(0, [0.05], False),  # best value, but misses a constraint
        _trial(1, [0.2], True),
        _trial(2, [0.1], True),
        _trial(3, [0.1], True),  # a tie: the lower number wins
        {**_trial(4, [0.0], True), "state": "FAIL", "scores": None},
    ]
    assert best_trials(trials, ["minimize"]) == [2]
    assert best_trials(trials[:1], ["minimize"]) == [0]  # none feasible: by penalised value
    two = [_trial(0, [0.1, 0.3], True), _trial(1, [0.2, 0.1], True), _trial(2, [0.3, 0.4], True)]
    assert best_trials(two, ["minimize", "minimize"]) == [0, 1]


def test_summary_and_table() -> None:
    study = {
        "method": "npo",
        "data_label": "tofu (builtin)",
        "space": {"train.lr": "1e-5:1e-3:log"},
        "objectives": [{"name": "mia", "direction": "minimize", "params": {"max_drop": 0.1}}],
    }
    trials = [_trial(0, [0.05], False), _trial(1, [0.2], True), _trial(2, [0.1], True)]
    summary = build_summary(study, trials, ["minimize"])
    assert summary["selected"] == [2] and summary["selection"] == "best"
    assert summary["counts"] == {"COMPLETE": 3}
    table = summary_table(summary).splitlines()
    assert table[0] == "sweep: npo on tofu (builtin)  (3 complete)"
    assert table[1] == "objectives: mia (minimize, max_drop=0.1)"
    assert table[3] == "| trial | state | train.lr | mia | FQ | retain prob |"
    assert table[5] == "| 0! | complete | 1.00e-04 | 0.050 | 0.500 | 0.700 |"
    assert table[7] == "| 2* | complete | 3.00e-04 | 0.100 | 0.500 | 0.700 |"
    assert table[-1] == "* best trial; ! misses a constraint"
    none = build_summary(study, trials[:1], ["minimize"])
    assert none["selection"] == "best_of_infeasible"


def _finished(number: int, **metrics: float) -> dict:
    return {"number": number, "state": "COMPLETE", "params": {}, "metrics": metrics}


def test_another_objective_selects_among_the_same_finished_trials() -> None:
    trials = [
        # the preset: oracle-feasible but forgets little; the attack still wins (AUC 0.95)
        _finished(0, forget_quality=0.01, model_utility=0.2, retain_prob=0.8, mia_loss_auc=0.95),
        # the oracle's pick; its utility drop is 1 - 0.17 / 0.2 = 0.15 > mia's max_drop 0.1
        _finished(1, forget_quality=0.6, model_utility=0.17, retain_prob=0.75, mia_loss_auc=0.7),
        # drop 0.05, AUC 0.6: mia's pick, with less forget quality than the oracle's
        _finished(2, forget_quality=0.3, model_utility=0.19, retain_prob=0.78, mia_loss_auc=0.6),
        # AUC 0.5 but utility gone: feasible for nobody
        _finished(3, forget_quality=0.9, model_utility=0.05, retain_prob=0.2, mia_loss_auc=0.5),
        {"number": 4, "state": "PRUNED", "params": {}, "metrics": {}},
    ]
    assert select_by(trials, "oracle", REFS) == {"number": 1, "value": 0.6, "feasible": True}
    mia = select_by(trials, "mia", REFS)
    assert mia is not None and (mia["number"], mia["feasible"]) == (2, True)
    assert mia["value"] == pytest.approx(0.1)
    # the objective's parameters apply: a looser utility bound lets trial 3 in
    assert select_by(trials, "mia:max_drop=0.8", REFS) == {
        "number": 3,
        "value": 0.0,
        "feasible": True,
    }
    # without a feasible trial, the closest to feasible (as best_trials does)
    assert select_by(trials[3:], "mia", REFS) == {"number": 3, "value": 0.0, "feasible": False}
    assert select_by(trials[4:], "mia", REFS) is None
    with pytest.raises(ValueError, match="needs mia_zlib_auc of the trial"):
        select_by(trials, "mia:attack=zlib", REFS)
