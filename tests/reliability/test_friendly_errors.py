"""Friendly errors: each mistake a user makes gets one sentence saying what to do, at once, with
no traceback and nothing written; the commands' help examples and ``--no-progress`` do what
they say."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import pytest
from cli_helpers import assert_clear_error, run_cli  # tests/reliability/cli_helpers.py

from obliviate.cli import build_parser


def test_mistyped_local_path_fails_at_once_with_did_you_mean(
    tmp_path: Path, fake_model: Path, qa_file: Path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for typo, guess in (
        ("runs/targt", "runs/target"),  # looks like a hub name 'owner/name'
        ("runs/targt/model", "runs/target/model"),
        ("runs/target/modle", "runs/target/model"),
        ("rns/target", "runs/target"),
    ):
        t0 = time.perf_counter()
        code, _, err = run_cli(
            ["eval", "--model", typo, "--forget", str(qa_file), "--out", "out"], capsys
        )
        assert time.perf_counter() - t0 < 10
        assert_clear_error(code, err, repr(typo), "does not exist", f"did you mean {guess!r}")
        assert not (tmp_path / "out").exists()


def test_a_bare_name_is_not_sent_to_the_hub(tmp_path: Path, qa_file: Path, capsys) -> None:
    code, _, err = run_cli(
        ["eval", "--model", "no-such-model-name", "--forget", str(qa_file)], capsys
    )
    assert_clear_error(code, err, "'no-such-model-name' does not exist", "owner/name")


def test_offline_hub_name_missing_from_the_cache(
    tmp_path: Path, qa_file: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(
        ["eval", "--model", "no-such-owner/no-such-model", "--forget", str(qa_file)], capsys
    )
    assert_clear_error(code, err, "not in the local Hugging Face cache", "HF_HUB_OFFLINE")


def test_pickle_only_checkpoint_is_refused_never_loaded(
    tmp_path: Path, qa_file: Path, capsys
) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "pytorch_model.bin").write_bytes(b"a pickle that must never be unpickled")
    code, _, err = run_cli(["eval", "--model", str(folder), "--forget", str(qa_file)], capsys)
    assert_clear_error(code, err, "pytorch_model.bin", "pickle", "safetensors", "convert")


def test_model_needing_remote_code_names_the_flag(
    tmp_path: Path, fake_model: Path, qa_file: Path, capsys
) -> None:
    config = fake_model / "config.json"
    config.write_text(json.dumps({"model_type": "x", "auto_map": {"AutoModelForCausalLM": "m.M"}}))
    out = tmp_path / "o"
    code, _, err = run_cli(
        ["unlearn", "--model", str(fake_model), "--method", "ga", "--forget", str(qa_file)]
        + ["--out", str(out)],
        capsys,
    )
    assert_clear_error(code, err, "needs its own Python code", "--trust-remote-code")
    assert not out.exists()


@pytest.mark.parametrize(
    "setting, expected",
    [
        ("train.batch_size=0", "batch_size=0: batch_size must be >= 1"),
        ("train.epochs=0", "epochs=0: epochs must be > 0"),
        ("train.epochs=-2", "epochs=-2: epochs must be > 0"),
        ("train.lr=0", "lr=0: lr must be > 0"),
        ("train.lr=-1e-4", "lr must be > 0"),
        ("alpha=abc", "alpha='abc': expected float"),  # ga has no retain term: still checked
        ("gamma=[1, 2]", "gamma=[1, 2]: expected float"),
        ("train.grad_accum=0", "grad_accum must be >= 1"),
    ],
)
def test_bad_training_values_are_one_sentence_before_loading(
    tmp_path: Path, fake_model: Path, qa_file: Path, capsys, setting: str, expected: str
) -> None:
    out = tmp_path / "o"
    code, _, err = run_cli(
        ["unlearn", "--model", str(fake_model), "--method", "ga", "--forget", str(qa_file)]
        + ["--out", str(out), "--set", setting],
        capsys,
    )
    assert_clear_error(code, err, expected)
    assert not out.exists()


def test_same_file_as_forget_and_retain(
    tmp_path: Path, fake_model: Path, qa_file: Path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "o"
    same = f"./{qa_file.name}"  # another spelling of the same file
    code, _, err = run_cli(
        ["unlearn", "--model", str(fake_model), "--method", "graddiff", "--forget", str(qa_file)]
        + ["--retain", same, "--out", str(out)],
        capsys,
    )
    assert_clear_error(code, err, "both --forget and --retain")
    assert not out.exists()
    code, _, err = run_cli(
        ["eval", "--model", str(fake_model), "--forget", str(qa_file), "--holdout", same], capsys
    )
    assert_clear_error(code, err, "both --forget and --holdout")


def test_finetune_data_file_works_as_its_help_says(tmp_path: Path, capsys) -> None:
    parser = build_parser()
    help_text = parser._subparsers._group_actions[0].choices["finetune"].format_help()  # type: ignore[union-attr]
    assert "a QA file" in help_text
    data = tmp_path / "train.jsonl"
    rows = [
        {"question": f"Who is P{i}?", "answer": f"P{i} is a sailor from town {i}."}
        for i in range(6)
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "ft"
    code, stdout, err = run_cli(
        ["finetune", "--data", str(data), "--out", str(out), "--size", "xs", "--no-progress"]
        + ["--set", "train.epochs=1"],
        capsys,
    )
    assert code == 0, err
    assert (out / "model" / "model.safetensors").is_file() and "saved" in stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--tuned", "-1"], "--tuned must be 0 (off) or a number of trials"),
        (["--benchmark", "builtin-muse", "--tuned", "2"], "--tuned is not supported for"),
        (["--tuned", "2", "--tune-compare", "mai"], "Did you mean 'mia'"),
        (["--tuned", "2", "--tune-compare", "mia:attack=lss"], "choose one of loss"),
    ],
)
def test_benchmark_tuned_refuses_bad_values(argv, message, tmp_path: Path, capsys) -> None:
    out = tmp_path / "b"
    code, _, err = run_cli(["benchmark", "--out", str(out), "--methods", "npo", *argv], capsys)
    assert_clear_error(code, err, message)
    assert not out.exists()


def test_finetune_variants_need_the_builtin_benchmark(tmp_path: Path, capsys) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"question": "Who is P?", "answer": "A sailor."}) + "\n")
    out = tmp_path / "ft"
    argv = ["finetune", "--data", str(data), "--out", str(out), "--variants", "--no-progress"]
    code, _, err = run_cli(argv, capsys)
    assert_clear_error(code, err, "--variants applies only to --data builtin")
    assert not out.exists()


def _examples(command: str) -> list[str]:
    """The ``obliviate ...`` example lines of a command's ``--help``."""
    sub = build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    lines = [line.split("#")[0].strip() for line in sub.format_help().splitlines()]
    return [line for line in lines if line.startswith("obliviate ")]


def _subcommands() -> list[str]:
    return list(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


@pytest.mark.parametrize("command", _subcommands())
def test_help_examples_parse_and_use_settings_the_command_knows(command: str) -> None:
    for example in _examples(command):
        argv = shlex.split(example)[1:]
        args = build_parser().parse_args(argv)  # argparse exits on a bad example
        assert args.command == command


def test_eval_and_finetune_set_help_shows_their_own_settings() -> None:
    choices = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert "alpha=2" not in choices["eval"].format_help()  # not an evaluation setting
    assert "alpha=2" not in choices["finetune"].format_help()  # finetune takes train.* only
    assert _examples("eval"), "eval --help shows examples"


@pytest.mark.slow
def test_eval_help_examples_run(tmp_path: Path, tiny_models: dict, capsys, monkeypatch) -> None:
    """Every ``obliviate eval`` example of ``eval --help`` runs as written (the run folders it
    names are the tiny models)."""
    from obliviate import api

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for name, src in (("target", "target"), ("retain", "retain"), ("npo", "target")):
        (tmp_path / "runs" / name).mkdir()  # results and caches stay in this scratch folder
        (tmp_path / "runs" / name / "model").symlink_to(tiny_models[src], True)
    request = api.load_request("builtin", tiny_models["split"], builtin=tiny_models["builtin"])
    for name, items in (("forget", request.forget[:4]), ("retain", request.retain[:4])):
        rows = [json.dumps({"question": it.question, "answer": it.answer}) for it in items]
        (tmp_path / f"{name}.jsonl").write_text("\n".join(rows) + "\n")
    # the OpenUnlearning log that the `--retain-results` example reads (docs/run-format.md)
    for setup in (
        "eval --model runs/retain --split forget10 --out runs/retain",
        "export runs/retain --format open-unlearning --out saves/eval/retain",
    ):
        code, _, err = run_cli(shlex.split(setup), capsys)
        assert code == 0, f"{setup}: {err}"
    for example in _examples("eval"):
        code, out, err = run_cli(shlex.split(example)[1:] + ["--no-progress"], capsys)
        assert code == 0, f"{example}: {err}"
        assert "forget_prob" in out or "forget_verbmem" in out, example


def test_no_progress_silences_bars_and_library_warnings(
    tmp_path: Path, tiny_models: dict, retain_file: Path, qa_file: Path
) -> None:
    """A user's shell (progress bars on, default verbosity): with --no-progress, stderr stays
    empty through loading, unlearning, saving and evaluating."""
    import os
    import subprocess
    import sys

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY", "TQDM_DISABLE")
    }
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src")
    env["HF_HUB_OFFLINE"] = "1"
    argv = [sys.executable, "-m", "obliviate", "unlearn", "--model", tiny_models["target"]]
    argv += ["--method", "graddiff", "--forget", str(qa_file), "--retain", str(retain_file)]
    argv += ["--out", str(tmp_path / "o"), "--set", "train.max_steps=2", "--eval"]
    loud = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert loud.returncode == 0, loud.stderr
    assert loud.stderr.strip(), "without --no-progress the bars show (the test can fail)"
    quiet = subprocess.run(
        argv[:-3]
        + ["--out", str(tmp_path / "q"), "--set", "train.max_steps=2", "--eval"]
        + ["--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "", quiet.stderr
    assert "saved" in quiet.stdout and "forget_prob" in quiet.stdout
