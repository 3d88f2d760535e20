"""The UnlearnDiff attack's plumbing on a random built-in-format pipeline and judge (seconds;
the scores mean nothing here: tests/integration/test_unlearndiff.py attacks a trained model)."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("diffusers")
import torch

from obliviate.cli import main
from obliviate.data.types import DataError
from obliviate.diffusion.judge import load_judge
from obliviate.diffusion.pipeline import load_model
from obliviate.diffusion.testing import tiny_builtin_folders
from obliviate.diffusion.unlearndiff import (
    UnlearnDiffConfig,
    adversarial_layout,
    search_prompt,
    unlearndiff_attack,
)

SMALL = UnlearnDiffConfig(tokens=2, steps=2, timesteps=2, images_per_prompt=2, sample_steps=2)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    torch.set_num_threads(1)
    return tiny_builtin_folders(tmp_path_factory.mktemp("builtin"))


def test_adversarial_layout_inserts_k_slots_after_the_start_token(folders):
    model = load_model(folders[0])
    plain = model.tokenize(["a red circle"])[0].tolist()
    assert adversarial_layout(model.tokenizer, "a red circle", 0) == plain
    two = adversarial_layout(model.tokenizer, "a red circle", 2)
    assert len(two) == len(plain) and two[3:6] == plain[1:4]  # the prompt shifted by 2
    with pytest.raises(DataError, match="leaving room for 3 adversarial tokens; set tokens<=3"):
        adversarial_layout(model.tokenizer, "a red circle", 4)


def test_search_prompt_returns_non_special_tokens_and_its_objective(folders):
    model = load_model(folders[0])
    gen = torch.Generator().manual_seed(0)
    x = model.initial_noise(1, gen)
    ids, loss = search_prompt(model, model.unet, "a red circle", x, SMALL, gen)
    assert len(ids) == 2 and not set(ids) & set(model.tokenizer.all_special_ids)
    assert loss > 0 and math.isfinite(loss)


def test_attack_reports_the_erased_model_beside_the_original(folders):
    model, judge = load_model(folders[0]), load_judge(folders[1])
    original = model.frozen_unet()
    with torch.no_grad():
        for p in model.unet.parameters():
            p.mul_(0.9)
    prompts = ["a red circle", "a red shape"]
    report = unlearndiff_attack(model, judge, "red", prompts, original_unet=original, config=SMALL)
    assert set(report["models"]) == {"erased", "original"}
    assert report["skipped_targets"] + len(report["rows"]) == 4  # 2 prompts x 2 images
    for rates in report["models"].values():
        assert rates["attacks"] == len(report["rows"])
        for k in ("plain_success_rate", "attack_success_rate"):
            assert rates[k] is None or 0.0 <= rates[k] <= 1.0
    for row in report["rows"]:
        assert len(row["erased"]["adversarial_tokens"]) == 2
    with pytest.raises(DataError, match="needs the concept judge"):
        unlearndiff_attack(model, None, "red", prompts, original_unet=original, config=SMALL)


def test_attack_settings_are_checked():
    assert UnlearnDiffConfig.build({"tokens": "3"}).tokens == 3
    with pytest.raises(ValueError, match="unknown attack 'unlearndiff' setting 'nope'"):
        UnlearnDiffConfig.build({"nope": 1})
    with pytest.raises(ValueError, match="steps=0; give at least 1"):
        UnlearnDiffConfig.build({"steps": 0})


def test_erase_with_attack_writes_attack_json(folders, tmp_path, capsys):
    pipeline, judge = folders
    out = tmp_path / "run"
    args = ["erase", "--model", str(pipeline), "--judge", str(judge), "--concept", "red"]
    args += ["--method", "uce", "--images-per-prompt", "2", "--sampling-steps", "2"]
    args += ["--out", str(out), "--no-save-model", "--attack", "unlearndiff"]
    for kv in ("tokens=2", "steps=1", "timesteps=1", "images_per_prompt=1", "sample_steps=2"):
        args += ["--attack-set", kv]
    assert main(args) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "attack unlearndiff" in printed and "original model" in printed
    report = json.loads((out / "attack.json").read_text())
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["attack"]["file"] == "attack.json"
    assert doc["attack"]["erased"] == report["models"]["erased"]
    assert report["config"]["tokens"] == 2


def test_attack_errors_come_before_erasing(folders, tmp_path, capsys):
    pipeline, _ = folders
    out = tmp_path / "nojudge"
    args = ["erase", "--model", str(pipeline), "--concept", "red", "--prompt", "a red circle"]
    args += ["--method", "uce", "--out", str(out), "--attack", "unlearndiff"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "needs the concept judge" in err and "Traceback" not in err
    assert not out.exists()
    assert main([*args[:-2], "--attack-set", "tokens=2"]) == 2
    assert "attack settings were given without an attack" in capsys.readouterr().err
