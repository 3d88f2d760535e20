"""The retain model's results can come from an open-unlearning log (docs/run-format.md): the
tiny retain model's evaluation exported with `obliviate export` and given back with
`--retain-results` yields exactly the forget quality and privleak of `--retain-model`; the
round trip loses nothing; bad input is one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import assert_clear_error, run_cli

from obliviate import api
from obliviate.interop.open_unlearning import read_log
from obliviate.runs import load_eval

FAST = {"generate": False, "batch_size": 64}


def _eval(model: str, tiny: dict, **kw: object) -> object:
    return api.evaluate(
        model,
        data="builtin",
        split=tiny["split"],
        builtin=tiny["builtin"],
        settings=FAST,
        progress=False,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.slow  # about 25 s on 2 cores after the session's tiny models
def test_exported_retain_results_give_the_retain_models_forget_quality_and_privleak(
    tiny_models: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    retain = _eval(tiny_models["retain"], tiny_models, out=tmp_path / "retain")
    code, out, err = run_cli(
        ["export", str(tmp_path / "retain"), "--out", str(tmp_path / "ou")], capsys
    )
    assert code == 0, err
    assert "TOFU_EVAL.json" in out
    log = tmp_path / "ou" / "TOFU_EVAL.json"
    back = read_log(log)
    assert back.values() == load_eval(tmp_path / "retain").values()  # lossless
    assert back.column("forget", "truth_ratio") == retain.column("forget", "truth_ratio")  # type: ignore[attr-defined]
    assert back.column("holdout", "mia_min_k") == retain.column("holdout", "mia_min_k")  # type: ignore[attr-defined]

    direct = _eval(tiny_models["target"], tiny_models, retain_model=retain).values()  # type: ignore[attr-defined]
    via_log = _eval(tiny_models["target"], tiny_models, retain_results=log, out=tmp_path / "target")
    values = via_log.values()  # type: ignore[attr-defined]
    names = ("forget_quality", "privleak", "privleak_loss", "privleak_zlib")
    for name in names:
        assert values[name] == direct[name], name
    assert 0 <= values["forget_quality"] < 1
    assert (tmp_path / "target" / "metrics.json").read_text().count(str(log)) == 1


def test_retain_results_bad_input_is_one_line(
    tiny_models: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["eval", "--model", tiny_models["target"], "--people", "20", "--no-progress"]
    code, _, err = run_cli([*base, "--retain-results", str(tmp_path / "TOFU_EVAL.json")], capsys)
    assert_clear_error(code, err, "TOFU_EVAL.json: file not found")
    both = [*base, "--retain-model", tiny_models["retain"], "--retain-results", "x.json"]
    code, _, err = run_cli(both, capsys)
    assert_clear_error(code, err, "not allowed with argument")
    summary = tmp_path / "TOFU_SUMMARY.json"
    summary.write_text('{"forget_quality": 0.3}')
    code, _, err = run_cli([*base, "--retain-results", str(summary)], capsys)
    assert_clear_error(code, err, "aggregates only", "TOFU_EVAL.json")
    code, _, err = run_cli(["export", str(tmp_path / "none"), "--out", str(tmp_path / "o")], capsys)
    assert_clear_error(code, err, "no such run folder")
    assert not (tmp_path / "o").exists()
