"""A diverging or collapsing run is not saved as a result: one clear line naming the step and
the settings to change, no traceback, no model, the checkpoints kept
(docs/run-format.md, "Checkpoints and resuming")."""

from __future__ import annotations

import pytest
import torch

from obliviate.collapse import TrainingDiverged, constant_prediction


def test_huge_learning_rate_stops_with_one_line_and_saves_nothing(tiny_models, tmp_path, capsys):
    from obliviate.cli import main

    out = tmp_path / "run"
    rc = main(
        [
            "unlearn", "--model", tiny_models["target"], "--method", "graddiff",
            "--data", "builtin", "--people", "20", "--out", str(out), "--no-progress",
            "--set", "train.lr=1e6", "--set", "train.max_steps=6", "--set", "train.batch_size=8",
            "--set", "train.checkpoint_every=1",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "step" in err and "train.lr=1e+06" in err and "train.max_grad_norm=1" in err
    assert not (out / "model").exists() and not (out / "config.yaml").exists()
    kept = list((out / "checkpoint" / "unlearn").glob("step-*"))
    assert kept, "the last good checkpoint is kept"


def test_a_model_predicting_one_token_everywhere_is_a_collapse(tiny_models) -> None:
    from obliviate.collapse import check_collapse
    from obliviate.data.templates import PromptTemplate, encode
    from obliviate.models.loading import load_model, load_tokenizer

    tok = load_tokenizer(tiny_models["target"])
    model = load_model(tiny_models["target"])
    items = [encode(tok, f"Who is {n}?", f"{n} is a writer.", PromptTemplate()) for n in "ABC"]
    assert constant_prediction(model, items, tok.pad_token_id, "cpu") is None
    with torch.no_grad():  # all logits 0: every position predicts token 0
        model.lm_head.weight.zero_()
    assert constant_prediction(model, items, tok.pad_token_id, "cpu") == 0
    with pytest.raises(TrainingDiverged, match=r"collapsed.*allow_collapse=true"):
        check_collapse(model, items, tok.pad_token_id, "cpu", "unlearning", 1.0, 1.0)
