"""``obliviate audit`` argument handling: errors come before any model is loaded."""

from __future__ import annotations

from obliviate.cli import build_parser, main


def test_audit_is_a_subcommand_with_target_and_retain_aliases():
    args = build_parser().parse_args(
        ["audit", "--model", "m", "--target-model", "t", "--retain", "r"]
    )
    assert (args.model, args.target_model, args.retain_model) == ("m", "t", "r")
    args = build_parser().parse_args(
        ["audit", "--model", "m", "--target", "t", "--retain-model", "r"]
    )
    assert (args.target_model, args.retain_model) == ("t", "r")


def test_audit_needs_out_unless_model_is_a_run_folder(tmp_path, capsys):
    code = main(["audit", "--model", str(tmp_path), "--target", "t", "--retain", "r"])
    assert code == 2
    assert "--out is required" in capsys.readouterr().err


def test_audit_rejects_unknown_attacks_and_settings(tmp_path, capsys):
    base = [
        "audit",
        "--model",
        str(tmp_path),
        "--target",
        "t",
        "--retain",
        "r",
        "--out",
        str(tmp_path),
    ]
    assert main(base + ["--attacks", "relearn,telepathy"]) == 2
    assert "unknown audit attack" in capsys.readouterr().err
    assert main(base + ["--set", "relearn_step=3"]) == 2
    assert "relearn_steps" in capsys.readouterr().err  # did-you-mean hint
