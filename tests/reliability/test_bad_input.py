"""Bad input, table by table: every malformed file shape and every bad option value gives a
non-zero exit, exactly one line on stderr naming the problem, no traceback, and no output
folder. Everything fires before a model is loaded (the model folder here is not loadable)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import assert_clear_error, run_cli  # tests/reliability/cli_helpers.py

GOOD = '{"question": "Who is Ann?", "answer": "Ann is a sailor."}\n'

# name -> (file name, content (str or bytes, None = a folder), text the error must contain)
FILES: dict[str, tuple[str, str | bytes | None, str]] = {
    "empty file": ("forget.jsonl", "", "forget.jsonl"),
    "blank lines only": ("forget.jsonl", "\n\n  \n", "forget.jsonl"),
    "invalid JSON line": ("forget.jsonl", GOOD + '{"question": "q2", "answer": \n', "line 2"),
    "missing answer field": ("forget.jsonl", GOOD + '{"question": "q2"}\n', "line 2"),
    "missing question field": ("forget.jsonl", '{"answer": "a"}\n', "line 1"),
    "answer is an object": ("forget.jsonl", '{"question": "q", "answer": {"a": 1}}\n', "answer"),
    "answer is null": ("forget.jsonl", '{"question": "q", "answer": null}\n', "answer"),
    "answer is a list": ("forget.jsonl", '{"question": "q", "answer": ["a"]}\n', "answer"),
    "row is not an object": ("forget.jsonl", GOOD + '["q", "a"]\n', "line 2"),
    "JSON array in a .jsonl file": ("forget.jsonl", "[" + GOOD.strip() + "]\n", "forget.jsonl"),
    "JSON object, not a list": ("forget.json", '{"question": "q", "answer": "a"}', "forget.json"),
    "empty JSON list": ("forget.json", "[]", "forget.json"),
    "invalid JSON file": ("forget.json", '[{"question": "q",', "forget.json"),
    "perturbed answers of a wrong type": (
        "forget.jsonl",
        '{"question": "q", "answer": "a", "perturbed_answer": {"x": 1}}\n',
        "perturbed",
    ),
    "CSV without the answer column": ("forget.csv", "question,reply\nq,a\n", "answer"),
    "CSV with a header only": ("forget.csv", "question,answer\n", "forget.csv"),
    "not UTF-8": ("forget.jsonl", b'{"question": "q", "answer": "caf\xe9"}\n', "UTF-8"),
    "unsupported extension": ("forget.xlsx", "question,answer\n", ".xlsx"),
    "empty folder": ("forget", None, "forget"),
}


def _write(tmp_path: Path, name: str, content: str | bytes | None) -> Path:
    path = tmp_path / "data" / name
    path.parent.mkdir(exist_ok=True)
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize("command", ["unlearn", "eval"])
@pytest.mark.parametrize("case", FILES)
def test_malformed_forget_file(
    tmp_path: Path, fake_model: Path, capsys, case: str, command: str
) -> None:
    name, content, expected = FILES[case]
    bad = _write(tmp_path, name, content)
    out = tmp_path / "out"
    argv = [command, "--model", str(fake_model), "--forget", str(bad), "--out", str(out)]
    if command == "unlearn":
        argv += ["--method", "ga"]
    code, _, err = run_cli(argv, capsys)
    assert_clear_error(code, err, expected)
    assert not out.exists()


@pytest.mark.parametrize("case", ["missing answer field", "not UTF-8", "empty file"])
def test_malformed_retain_and_holdout_files(
    tmp_path: Path, fake_model: Path, qa_file: Path, capsys, case: str
) -> None:
    name, content, expected = FILES[case]
    for flag in ("--retain", "--holdout"):
        bad = _write(tmp_path, name.replace("forget", flag[2:]), content)
        out = tmp_path / "out"
        code, _, err = run_cli(
            ["eval", "--model", str(fake_model), "--forget", str(qa_file), flag, str(bad)]
            + ["--out", str(out)],
            capsys,
        )
        assert_clear_error(code, err, expected.replace("forget", flag[2:]))
        assert not out.exists()
        bad.unlink() if bad.is_file() else bad.rmdir()


def test_missing_data_file(tmp_path: Path, fake_model: Path, capsys) -> None:
    out = tmp_path / "out"
    missing = tmp_path / "nope.jsonl"
    code, _, err = run_cli(
        ["unlearn", "--model", str(fake_model), "--method", "ga", "--forget", str(missing)]
        + ["--out", str(out)],
        capsys,
    )
    assert_clear_error(code, err, "nope.jsonl", "not found")
    assert not out.exists()


# (arguments after the command, text the error must contain); "M" is the model, "F" the forget file
OPTIONS: dict[str, tuple[list[str], str]] = {
    "unknown method": (["unlearn", "--method", "graddif"], "Did you mean 'graddiff'"),
    "unknown benchmark (unlearn)": (["unlearn", "--method", "ga", "--benchmark", "tofuu"], "tofuu"),
    "unknown benchmark (eval)": (["eval", "--benchmark", "tofuu"], "tofuu"),
    "unknown template": (["eval", "--template", "alpaca"], "invalid choice: 'alpaca'"),
    "unknown command": (["evl"], "invalid choice: 'evl'"),
    "missing --model": (["eval", "--model"], "--model"),
    "--set without '='": (["unlearn", "--method", "ga", "--set", "alpha"], "key=value"),
    "unknown method setting": (["unlearn", "--method", "ga", "--set", "lrr=1"], "'lrr'"),
    "unknown train setting": (["unlearn", "--method", "ga", "--set", "train.lrr=1"], "'lrr'"),
    "unknown evaluation setting": (["eval", "--set", "batchsize=2"], "'batchsize'"),
    "lr not a number": (["unlearn", "--method", "ga", "--set", "train.lr=abc"], "lr='abc'"),
    "epochs not a number": (["unlearn", "--method", "ga", "--set", "train.epochs=x"], "epochs"),
    "alpha not a number": (["unlearn", "--method", "graddiff", "--set", "alpha=abc"], "alpha"),
    "batch_size not an int": (
        ["unlearn", "--method", "ga", "--set", "train.batch_size=two"],
        "batch_size",
    ),
    "batch_size 0": (["unlearn", "--method", "ga", "--set", "train.batch_size=0"], "batch_size"),
    "negative epochs": (["unlearn", "--method", "ga", "--set", "train.epochs=-1"], "epochs"),
    "zero lr": (["unlearn", "--method", "ga", "--set", "train.lr=0"], "lr"),
    "unknown scheduler": (
        ["unlearn", "--method", "ga", "--set", "train.scheduler=step"],
        "scheduler",
    ),
    "generate not a boolean": (["eval", "--set", "generate=maybe"], "generate='maybe'"),
    "eval batch_size 0": (["eval", "--set", "batch_size=0"], "batch_size=0"),
    "min_k out of range": (["eval", "--set", "min_k=2"], "min_k=2"),
    "people not an int": (["eval", "--people", "many"], "invalid int value"),
    "unknown metric": (["ls", "metrics", "forget_qualty"], "forget_qualty"),
    "unknown ls kind": (["ls", "method"], "invalid choice: 'method'"),
    "own files with a fixed benchmark": (["eval", "--benchmark", "tofu"], "--benchmark qa"),
}


@pytest.mark.parametrize("case", OPTIONS)
def test_bad_option_value(
    tmp_path: Path, fake_model: Path, qa_file: Path, capsys, case: str
) -> None:
    args, expected = OPTIONS[case]
    out = tmp_path / "out"
    argv = list(args)
    if argv[0] in ("unlearn", "eval") and argv[-1] != "--model":
        argv += ["--model", str(fake_model), "--forget", str(qa_file), "--out", str(out)]
    code, _, err = run_cli(argv, capsys)
    assert_clear_error(code, err, expected)
    assert not out.exists()
