"""Search spaces of `obliviate sweep`: the --space syntax, grids, nesting, sampling through an
Optuna trial, the method's default spaces (docs/sweep.md)."""

from __future__ import annotations

import pytest

from obliviate.registry import METHODS
from obliviate.sweep.space import (
    Dimension,
    flatten,
    grid_size,
    nest,
    parse_dimension,
    parse_space,
    resolve_space,
    start_point,
    suggest,
)


def test_ranges_and_choices_parse_to_their_dimensions() -> None:
    assert parse_dimension("train.lr", "1e-5:1e-3:log") == Dimension(
        "train.lr", "float", 1e-5, 1e-3, True
    )
    assert parse_dimension("alpha", "0.5:2") == Dimension("alpha", "float", 0.5, 2.0, False)
    assert parse_dimension("train.epochs", "2:10:int") == Dimension(
        "train.epochs", "int", 2, 10, False
    )
    assert parse_dimension("train.epochs", "1:16:int-log").log
    beta = parse_dimension("forget_params.beta", "0.05, 0.1,0.5")
    assert beta.kind == "choice" and beta.choices == (0.05, 0.1, 0.5)
    words = parse_dimension("retain", "nll,kl,null")
    assert words.choices == ("nll", "kl", None)
    assert parse_dimension("alpha", "2").choices == (2,)  # one value: fixed


def test_spec_round_trips() -> None:
    for spec in ("1e-05:0.001:log", "0.5:2", "2:10:int", "1:16:int-log", "0.05,0.1,0.5"):
        assert parse_dimension("k", spec).spec() == spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("1e-3:1e-5:log", "LOW must be smaller than HIGH"),
        ("0:1:log", "a log range needs LOW > 0"),
        ("a:1", "'a' is not a number"),
        ("1:2:cubic", "unknown range mode 'cubic'"),
        ("1:2:3:4", "a range is LOW:HIGH"),
        ("1.5:4:int", "integer bounds"),
        ("0.1,0.1", "listed twice"),
        ("", "give LOW:HIGH"),
        ("1:inf", "must be finite"),
    ],
)
def test_bad_specs_are_one_sentence_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_dimension("train.lr", spec)
    assert "\n" not in str(info.value) and "train.lr=" in str(info.value)


def test_parse_space_keeps_order_and_rejects_bad_items() -> None:
    space = parse_space(["train.lr=1e-4:1e-3:log", "alpha=1,2"])
    assert list(space) == ["train.lr", "alpha"]
    with pytest.raises(ValueError, match="must look like key=LOW:HIGH"):
        parse_space(["train.lr"])
    with pytest.raises(ValueError, match="given twice"):
        parse_space(["alpha=1,2", "alpha=3,4"])
    with pytest.raises(ValueError, match="the key must be a setting"):
        parse_space(["train..lr=1:2"])


def test_grids_by_hand() -> None:
    assert parse_dimension("k", "1e-4:1e-2:log").grid(3) == [1e-4, 1e-3, 1e-2]
    assert parse_dimension("k", "0:1").grid(5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert parse_dimension("k", "2:10:int").grid(3) == [2, 6, 10]
    assert parse_dimension("k", "1:2:int").grid(5) == [1, 2]  # rounded, duplicates dropped
    assert parse_dimension("k", "a,b").grid(7) == ["a", "b"]
    space = parse_space(["a=1e-4:1e-2:log", "b=1:2:int", "c=x,y,z"])
    assert grid_size(space, 3) == 3 * 2 * 3


def test_nest_and_flatten_are_inverse() -> None:
    flat = {"train.lr": 1e-4, "train.epochs": 3, "alpha": 2.0, "forget_params.beta": 0.1}
    nested = nest(flat)
    assert nested == {
        "train": {"lr": 1e-4, "epochs": 3},
        "alpha": 2.0,
        "forget_params": {"beta": 0.1},
    }
    assert flatten(nested) == flat
    with pytest.raises(ValueError, match="conflicts"):
        nest({"train": 1, "train.lr": 2})


def test_suggest_asks_the_trial_one_value_per_dimension() -> None:
    from optuna.trial import FixedTrial

    space = parse_space(["train.lr=1e-5:1e-3:log", "train.epochs=2:10:int", "retain=nll,kl"])
    trial = FixedTrial({"train.lr": 3e-4, "train.epochs": 4, "retain": "kl"})
    assert suggest(trial, space) == {"train.lr": 3e-4, "train.epochs": 4, "retain": "kl"}


def test_sampling_stays_inside_the_ranges() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = parse_space(["a=1e-5:1e-3:log", "b=2:10:int", "c=x,y"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(20):
        trial = study.ask()
        v = suggest(trial, space)
        study.tell(trial, 0.0)
        seen.append(v)
    assert all(1e-5 <= v["a"] <= 1e-3 and 2 <= v["b"] <= 10 for v in seen)
    assert all(isinstance(v["b"], int) and v["c"] in ("x", "y") for v in seen)
    assert len({v["a"] for v in seen}) == 20


def test_resolve_space_merges_defaults_given_and_fixed() -> None:
    default = {"train.lr": "5e-5:1e-3:log", "train.epochs": "2:12:int", "alpha": "0.1:10:log"}
    space = resolve_space(
        default, ["alpha=1,2", "forget_params.beta=0.1:1"], {"train": {"epochs": 3}}
    )
    assert list(space) == ["train.lr", "alpha", "forget_params.beta"]  # epochs fixed by --set
    assert space["alpha"].choices == (1, 2)  # replaced by the command line
    only = resolve_space(default, ["alpha=1,2"], {}, use_default=False)
    assert list(only) == ["alpha"]
    with pytest.raises(ValueError, match="both searched"):
        resolve_space(default, ["train.lr=1e-4:1e-3"], {"train": {"lr": 1e-4}})
    with pytest.raises(ValueError, match="the search space is empty"):
        resolve_space({}, [], {})


def test_default_spaces_live_with_the_method_presets() -> None:
    npo = METHODS.get("npo").search_space("tiny")
    assert npo == {
        "train.lr": "1e-4:3e-3:log",
        "train.epochs": "4:40:int",
        "alpha": "0.1:10:log",
        "forget_params.beta": "0.01:1:log",
    }
    assert METHODS.get("ga").search_space("real") == {
        "train.lr": "1e-6:1e-4:log",
        "train.epochs": "1:10:int",
    }  # no retain term: no alpha
    with pytest.raises(ValueError, match="choose tiny or real"):
        METHODS.get("ga").search_space("huge")
    # every default dimension parses and names a setting the method accepts
    for name in ("npo", "npo_kl", "simnpo", "dpo", "wga", "satimp", "graddiff", "ga_kl"):
        preset = METHODS.get(name)
        for scale in ("tiny", "real"):
            space = parse_space(preset.search_space(scale))
            for pick in (0, -1):
                values = {
                    k: d.choices[pick] if d.kind == "choice" else (d.low, d.high)[pick]
                    for k, d in space.items()
                }
                preset.build(nest(values))


def test_start_point_keeps_the_values_inside_the_space() -> None:
    space = parse_space(
        ["train.lr=5e-5:1e-3:log", "train.epochs=2:12:int", "alpha=0.1:10:log", "loss=a,b"]
    )
    preset = {"train.lr": 2.5e-4, "train.epochs": 10.0, "alpha": 20.0, "loss": "c", "gamma": 1}
    # epochs rounded to the int dimension; alpha out of range and loss not a choice: sampled
    assert start_point(space, preset) == {"train.lr": 2.5e-4, "train.epochs": 10}
    assert start_point(space, {"loss": "b", "train.epochs": True}) == {"loss": "b"}
    assert start_point(space, {}) == {}
