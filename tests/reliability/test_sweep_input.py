"""`obliviate sweep`'s bad input: one line naming the fix, before any model is loaded."""

from __future__ import annotations

import sys

import pytest
from cli_helpers import assert_clear_error, run_cli  # tests/reliability/cli_helpers.py

BASE = ["sweep", "--model", "no/such/model", "--out", "unused", "--no-progress"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([], "the oracle objective needs the retain model"),
        (["--objective", "orcale"], "Did you mean 'oracle'"),
        (["--objective", "mia:attack=gradnorm", "--retain-model", "x"], "attack='gradnorm'"),
        (["--objective", "oracle:utilty=1"], "Did you mean 'utility'"),
        (["--objective", "mia", "--trials", "0"], "give at least 1 trial"),
        (["--objective", "mia", "--space", "train.lr=1e-3:1e-5:log"], "LOW must be smaller"),
        (["--objective", "mia", "--space", "train.lr"], "must look like key=LOW:HIGH"),
        (["--objective", "mia", "--space", "train.lrr=1e-4:1e-3"], "Did you mean 'lr'"),
        (["--objective", "mia", "--space", "forget_params.bta=1,2"], "Did you mean 'beta'"),
        (
            ["--objective", "mia", "--space", "train.lr=1e-4:1e-3", "--set", "train.lr=1e-4"],
            "both searched (--space) and fixed (--set)",
        ),
        (["--method", "npoo"], "Did you mean 'npo'"),
    ],
)
def test_bad_sweep_input_is_one_line(
    extra: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli([*BASE, *extra], capsys)
    assert_clear_error(code, err, expected)


def test_missing_optuna_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from obliviate.sweep.study import import_optuna

    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    with pytest.raises(ValueError, match=r"pip install 'obliviate\[sweep\]'"):
        import_optuna()


def test_objectives_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["ls", "objectives"], capsys)
    assert code == 0
    assert out.splitlines()[0] == "objectives (4):"
    assert any(line.split()[0] == "forget_prob_gap" for line in out.splitlines()[1:5])
    code, out, _ = run_cli(["ls", "objectives", "oracle"], capsys)
    assert code == 0 and "direction: maximize\nutility: 0.95\nretain_prob: 0.9" in out
