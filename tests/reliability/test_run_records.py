"""What a run folder records and how it travels: a LoRA run folder still loads after the tree
is moved (base model stored relative to the adapter), the config names the method, the data
by its real name and both models' fingerprints, and the README flow `unlearn` -> `eval --out`
-> `report` works."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from trust_helpers import copy_run, own_fingerprint_cache  # noqa: F401 (autouse)

from obliviate import api
from obliviate.cli import main

LORA = {"peft": {"r": 4}, "train": {"lr": 1e-3, "max_steps": 2}}


def test_lora_run_folder_loads_after_the_tree_is_moved(tiny_models: dict, tmp_path: Path) -> None:
    import torch

    from obliviate.models.loading import load_model, load_tokenizer

    tree = tmp_path / "project"
    target = copy_run(tiny_models["target"], tree / "target")
    res = api.unlearn(
        str(target),
        "graddiff",
        out=tree / "lora",
        builtin=tiny_models["builtin"],
        overrides=LORA,
        progress=False,
    )
    cfg = json.loads((tree / "lora" / "model" / "adapter_config.json").read_text())
    assert not Path(cfg["base_model_name_or_path"]).is_absolute()
    x = torch.tensor([load_tokenizer(str(target / "model"))("Question: Who?")["input_ids"]])
    with torch.no_grad():
        expected = res.model(input_ids=x).logits
    moved = tmp_path / "elsewhere" / "project"
    moved.parent.mkdir()
    shutil.move(str(tree), str(moved))
    back = load_model(str(moved / "lora" / "model"))
    with torch.no_grad():
        assert torch.allclose(back(input_ids=x).logits, expected, atol=1e-5)
    # the base model missing: one sentence naming the adapter and the base
    shutil.rmtree(moved / "target")
    with pytest.raises(FileNotFoundError, match="trained on the base model") as exc:
        load_model(str(moved / "lora" / "model"))
    assert str(moved / "lora" / "model") in str(exc.value)


def test_adapter_fingerprint_follows_its_base(tiny_models: dict, tmp_path: Path) -> None:
    from trust_helpers import edit_middle_weight

    from obliviate.models.fingerprint import model_fingerprint

    target = copy_run(tiny_models["target"], tmp_path / "target")
    res = api.unlearn(
        str(target),
        "graddiff",
        out=tmp_path / "lora",
        builtin=tiny_models["builtin"],
        overrides=LORA,
        progress=False,
    )
    before = model_fingerprint(str(res.path))
    edit_middle_weight(target / "model")
    assert model_fingerprint(str(res.path)) != before


def test_config_records_method_data_name_and_fingerprints(
    tiny_models: dict, tmp_path: Path
) -> None:
    from obliviate.models.fingerprint import model_fingerprint

    forget = tmp_path / "my_secrets.jsonl"
    retain = tmp_path / "keep_these.csv"
    forget.write_text(
        "".join(json.dumps({"question": f"q{i}?", "answer": f"a{i}"}) + "\n" for i in range(4))
    )
    retain.write_text("question,answer\nr1?,b1\nr2?,b2\n")
    out = tmp_path / "run"
    res = api.unlearn(
        tiny_models["target"],
        "ga",
        forget=str(forget),
        retain=str(retain),
        out=out,
        overrides={"train": {"max_steps": 1}},
        progress=False,
    )
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["method"] == "ga"
    assert "my_secrets.jsonl" in cfg["data"] and "keep_these.csv" in cfg["data"]
    assert cfg["data"] != "custom" and cfg["forget"] == str(forget)
    assert cfg["model_fingerprint"] == model_fingerprint(tiny_models["target"])
    assert cfg["output_fingerprint"] == model_fingerprint(str(res.path))
    assert cfg["output_fingerprint"] != cfg["model_fingerprint"]
    api.evaluate(
        str(out),
        forget=str(forget),
        retain=str(retain),
        out=out,
        settings={"generate": False},
        progress=False,
    )
    info = json.loads((out / "metrics.json").read_text())
    assert "my_secrets.jsonl" in info["data"]
    assert "forget10" not in json.dumps({k: v for k, v in info.items() if k != "eval_key"})
    assert info["role"] == "unlearned" and info["method"] == "ga"


def test_unlearn_eval_records_the_model_path(
    tiny_models: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ga"
    args = ["unlearn", "--model", tiny_models["target"], "--method", "ga", "--out", str(out)]
    args += ["--set", "train.max_steps=1", "--people", "20", "--eval", "--no-progress"]
    args += ["--set", "train.batch_size=8"]
    assert main(args) == 0
    info = json.loads((out / "metrics.json").read_text())
    assert info["model"]["path"] == str(out / "model")
    assert info["model"]["fingerprint"].startswith("sha256:")


def test_readme_flow_unlearn_eval_out_report(
    tiny_models: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README "Command line": finetune (the fixture's models as runs/target, runs/retain),
    unlearn --out runs/npo, eval --model runs/npo --retain-model runs/retain --out runs/npo,
    report runs/npo."""
    runs = tmp_path / "runs"
    copy_run(tiny_models["target"], runs / "target")
    copy_run(tiny_models["retain"], runs / "retain")
    (runs / "retain" / "config.yaml").write_text("command: finetune\nsplit: retain90\n")
    common = ["--people", "20", "--no-progress"]
    unlearn = ["unlearn", "--model", str(runs / "target"), "--method", "npo", "--split"]
    unlearn += ["forget10", "--out", str(runs / "npo"), "--set", "train.lr=3e-4"]
    unlearn += ["--set", "alpha=1", "--set", "train.max_steps=2"]
    assert main(unlearn + common) == 0
    ev = ["eval", "--model", str(runs / "npo"), "--retain-model", str(runs / "retain")]
    ev += ["--split", "forget10", "--out", str(runs / "npo"), "--set", "generate=false"]
    assert main(ev + common) == 0
    info = json.loads((runs / "npo" / "metrics.json").read_text())
    assert info["role"] == "unlearned" and info["method"] == "npo"
    capsys.readouterr()
    assert main(["report", str(runs / "npo")]) == 0, capsys.readouterr().err
    assert (runs / "npo" / "report.html").is_file()
    # a model evaluated into a fresh folder: the role comes from its run (retain here)
    ev_r = ["eval", "--model", str(runs / "retain"), "--out", str(tmp_path / "r-eval")]
    assert main([*ev_r, "--set", "generate=false", *common]) == 0
    assert json.loads((tmp_path / "r-eval" / "metrics.json").read_text())["role"] == "retain"
