"""Early stopping on the tiny models through ``api.unlearn`` (docs/sweep.md, "Early
stopping"): the criteria are logged at the checked steps, the run record says why it stopped,
the settings are part of the run's configuration, and the restored state is the best one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml


@pytest.mark.slow
def test_graddiff_with_early_stopping_on_the_tiny_models(tiny_models: dict, tmp_path: Path) -> None:
    from obliviate import api
    from obliviate.early_stop import EarlyStopper

    out = tmp_path / "es"
    es = {"every": 2, "patience": 2, "sample": 8, "min_retain": 0.5}
    res = api.unlearn(
        tiny_models["target"],
        "graddiff",
        builtin=tiny_models["builtin"],
        split=tiny_models["split"],
        out=out,
        overrides={"train": {"lr": 1e-3, "max_steps": 40, "early_stop": es}},
        progress=False,
    )
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["train"]["early_stop"] == {
        "every": 2,
        "criterion": "mia",
        "sample": 8,
        "patience": 2,
        "min_delta": 0.0,
        "min_retain": 0.5,
        "restore": True,
    }
    record = json.loads((out / "method.json").read_text())["info"]["early_stop"]
    history = record["history"]
    assert history[0]["step"] == 0 and all(h["step"] % 2 == 0 for h in history[:-1])
    checked = [r for r in res.train_log if "es_mia_auc" in r]
    assert [r["step"] for r in checked] == [h["step"] for h in history if h["step"]][: len(checked)]
    best = min(history, key=lambda h: (h["criterion"], h["step"]))
    assert record["best_step"] == best["step"]
    assert res.stopped == record["note"]
    if record["stopped"] is not None:  # stopped early: fewer steps than asked
        assert res.train_log[-1]["step"] < 40
    # the saved model is the best state: measuring it again gives the best step's values
    from obliviate.config import EarlyStopConfig
    from obliviate.data.collate import pad_id_of
    from obliviate.data.templates import PromptTemplate, encode
    from obliviate.models.loading import load_model, load_tokenizer

    request = api.load_request(builtin=tiny_models["builtin"], split=tiny_models["split"])
    tok = load_tokenizer(str(out / "model"))
    model = load_model(str(out / "model"))

    def enc(items: list) -> list:
        return [encode(tok, it.question, it.answer, PromptTemplate(), 512) for it in items]

    stopper = EarlyStopper(
        EarlyStopConfig(**es),
        enc(request.forget),
        enc(request.holdout),
        enc(request.retain),
        pad_id_of(tok),
    )
    again = stopper.measure(model)
    assert again["mia_auc"] == pytest.approx(best["mia_auc"], abs=1e-6)
    assert again["retain_prob"] == pytest.approx(best["retain_prob"], rel=1e-4)
