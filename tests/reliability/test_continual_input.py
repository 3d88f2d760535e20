"""`obliviate unlearn --sequence` with bad requests: one line naming the problem, before any
model is loaded, and nothing written."""

from __future__ import annotations

import pytest
from cli_helpers import assert_clear_error, run_cli  # tests/reliability/cli_helpers.py


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--sequence", "forget10:1/3,forget10:2/3", "--people", "20"], "2 author(s)"),
        (["--sequence", "forget10:1/2,forget10:1/2"], "names a request twice"),
        (["--sequence", "forget10:0/2"], "does not exist"),
        (["--sequence", "forget10:1/2", "--split", "forget10"], "leave out --split"),
        (["--sequence", "forget10:1-2"], "SPLIT:I/K"),
    ],
)
def test_bad_sequences_fail_in_one_line_and_write_nothing(tmp_path, capsys, extra, expected):
    out = tmp_path / "seq"
    argv = ["unlearn", "--model", str(tmp_path / "no-model"), "--out", str(out), *extra]
    code, _, err = run_cli(argv, capsys)
    assert_clear_error(code, err, expected)
    assert not out.exists()
