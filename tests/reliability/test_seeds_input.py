"""Bad ``--seeds`` usage is one line on stderr, before any model is loaded (the model folder
here does not exist)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import assert_clear_error, run_cli  # tests/reliability/cli_helpers.py


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--seeds", "2"], "add --eval"),
        (["--seeds", "0", "--eval"], "--seeds must be at least 1"),
        (["--seeds", "2", "--eval", "--sequence", "forget01"], "cannot be combined"),
    ],
)
def test_unlearn_seeds_misuse(
    extra: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["unlearn", "--model", str(tmp_path / "none"), "--method", "graddiff"]
    code, _, err = run_cli([*argv, "--out", str(out), *extra], capsys)
    assert_clear_error(code, err, expected)
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--benchmark", "builtin-muse", "--seeds", "2"], "not supported for builtin-muse"),
        (["--seeds", "0"], "--seeds must be at least 1"),
    ],
)
def test_benchmark_seeds_misuse(
    extra: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench"
    code, _, err = run_cli(["benchmark", "--out", str(out), "--methods", "npo", *extra], capsys)
    assert_clear_error(code, err, expected)
    assert not out.exists()
