"""Stale results: an evaluation (or the retain model's cached one) is reused only when every
weight byte, the tokenizer, the data, the settings and the metric versions are unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from trust_helpers import copy_run, edit_middle_weight, own_fingerprint_cache  # noqa: F401 (autouse)

from obliviate import api
from obliviate.cli import main
from obliviate.models.loading import model_fingerprint

FAST = {"generate": False, "batch_size": 64}


def _eval(model: str | Path, out: Path, tiny: dict, **kw: object) -> object:
    return api.evaluate(
        str(model),
        data="builtin",
        split=tiny["split"],
        builtin=tiny["builtin"],
        settings=FAST,
        out=out,
        progress=False,
        **kw,  # type: ignore[arg-type]
    )


def test_eval_recomputes_after_one_middle_weight_changes(
    tiny_models: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(tiny_models["target"], tmp_path / "run")
    args = ["eval", "--model", str(run), "--out", str(run), "--people", "20"]
    args += ["--set", "generate=false", "--no-progress"]
    assert main(args) == 0
    first = json.loads((run / "metrics.json").read_text())
    edit_middle_weight(run / "model")
    assert main(args) == 0
    second = json.loads((run / "metrics.json").read_text())
    assert second["eval_key"]["model"] != first["eval_key"]["model"]
    assert second["model"]["fingerprint"] != first["model"]["fingerprint"]
    assert second["metrics"]["forget_prob"]["value"] != first["metrics"]["forget_prob"]["value"]


def test_unchanged_model_reuses_without_loading(
    tiny_models: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = copy_run(tiny_models["target"], tmp_path / "run")
    first = _eval(run, run, tiny_models)

    def no_load(*_a: object, **_k: object) -> None:
        raise AssertionError("the model was loaded although its evaluation is cached")

    monkeypatch.setattr("obliviate.models.loading.load_model", no_load)
    again = _eval(run, run, tiny_models)
    assert again.key == first.key  # type: ignore[attr-defined]
    edit_middle_weight(run / "model")
    with pytest.raises(AssertionError, match="was loaded"):
        _eval(run, run, tiny_models)


def test_retain_evaluation_recomputed_after_retain_model_changes(
    tiny_models: dict, tmp_path: Path
) -> None:
    from obliviate.retain_eval import retain_reference

    retain = copy_run(tiny_models["retain"], tmp_path / "retain")
    target = copy_run(tiny_models["target"], tmp_path / "target")
    res = _eval(target, target, tiny_models, retain_model=retain)
    assert "forget_quality" in res.metrics  # type: ignore[attr-defined]
    suite = api.load_suite(
        None, "builtin", tiny_models["split"], builtin=tiny_models["builtin"], settings=FAST
    )
    before = retain_reference(str(retain), suite, False, True)
    edit_middle_weight(retain / "model")
    after = retain_reference(str(retain), suite, False, True)
    assert after.key["model"] != before.key["model"]
    assert after.column("forget", "truth_ratio") != before.column("forget", "truth_ratio")
    caches = sorted((retain / "evals").iterdir())
    assert len(caches) == 2  # both inside the retain run, one per fingerprint
    # the target's own evaluation is reused, its forget quality recomputed against the new one
    res2 = _eval(target, target, tiny_models, retain_model=retain)
    assert res2.key == res.key  # type: ignore[attr-defined]
    assert "forget_quality" in res2.metrics  # type: ignore[attr-defined]


def test_in_memory_edit_of_one_element_changes_fingerprint(tiny_models: dict) -> None:
    import torch

    from obliviate.models.loading import load_model

    net = load_model(tiny_models["target"])
    before = model_fingerprint(net)
    name, p = max(net.named_parameters(), key=lambda kv: kv[1].numel())
    mid = [(n, q) for n, q in net.named_parameters() if ".layers.0." in n and q.numel() > 4096]
    name, p = mid[0]
    with torch.no_grad():
        p.view(-1)[1] += 1e-3  # not on the old strided sample's grid
    assert model_fingerprint(net) != before, name


def test_buffers_count_in_the_fingerprint(tiny_models: dict) -> None:
    import torch

    from obliviate.models.loading import load_model

    net = load_model(tiny_models["target"])
    before = model_fingerprint(net)
    net.register_buffer("extra_state", torch.zeros(3))
    assert model_fingerprint(net) != before


def test_tokenizer_change_changes_fingerprint(tiny_models: dict, tmp_path: Path) -> None:
    from obliviate.models.loading import load_model, load_tokenizer

    net = load_model(tiny_models["target"])
    tok = load_tokenizer(tiny_models["target"])
    tok2 = load_tokenizer(tiny_models["target"])
    tok2.add_tokens(["<new-token>"])
    assert model_fingerprint(net, tok) != model_fingerprint(net, tok2)
    # a folder: every tokenizer file counts, e.g. a SentencePiece model or a chat template
    run = copy_run(tiny_models["target"], tmp_path / "run")
    folder = run / "model"
    fp = model_fingerprint(folder)
    (folder / "chat_template.jinja").write_text("{{ messages }}")
    fp2 = model_fingerprint(folder)
    (folder / "tokenizer.model").write_bytes(b"\x00sentencepiece")
    assert len({fp, fp2, model_fingerprint(folder)}) == 3


def test_metric_versions_and_settings_are_in_the_key(tiny_models: dict) -> None:
    from obliviate.metrics.lookups import metric_versions

    suite = api.load_suite(
        None, "builtin", tiny_models["split"], builtin=tiny_models["builtin"], settings=FAST
    )
    key = suite.key("sha256:x")
    assert key["metric_versions"] == metric_versions()
    assert key["metric_versions"]["forget_quality"] >= 1
    assert key["settings"]["generate"] is False


def test_fingerprint_cache_is_used_and_invalidated(tiny_models: dict, tmp_path: Path) -> None:
    import os
    import time

    from obliviate.models import fingerprint as fpm

    run = copy_run(tiny_models["target"], tmp_path / "run")
    weights = run / "model" / "model.safetensors"
    old = time.time() - 60
    for f in (run / "model").iterdir():
        os.utime(f, (old, old))
    first = model_fingerprint(run / "model")
    assert fpm.cache_file().is_file()
    cached = json.loads(fpm.cache_file().read_text())
    assert any(k.startswith(str(weights.resolve())) for k in cached)
    fpm.clear_memory_cache()  # a new process: the on-disk cache answers
    assert model_fingerprint(run / "model") == first
    edit_middle_weight(run / "model")
    assert model_fingerprint(run / "model") != first
