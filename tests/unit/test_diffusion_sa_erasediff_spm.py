"""Selective Amnesia, EraseDiff and SPM on a random tiny pipeline (seconds each): each one's
own behaviour beyond the eraser contract (tests/contract/test_erasers.py), and the SPM adapter's
safetensors file."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("diffusers")
import torch

from obliviate.data.types import DataError
from obliviate.diffusion.builtin import builtin_request
from obliviate.diffusion.methods import make_eraser
from obliviate.diffusion.shapes import ShapesSpec
from obliviate.diffusion.spm import OneDimAdapter, apply_adapter, load_adapter
from obliviate.diffusion.testing import fast_overrides, random_tiny_model
from obliviate.registry import ERASERS


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    model = random_tiny_model(seed=0)
    return model, model.state_snapshot()


@pytest.fixture(scope="module")
def request_red():
    return builtin_request(ShapesSpec(), "red")


def _erase(name, model, snapshot, request, **over):
    model.restore(snapshot)
    eraser = make_eraser(name, {**fast_overrides(ERASERS.get(name)), **over}, preset="builtin")
    result = eraser.erase(model, request, seed=0)
    after = model.state_snapshot()
    model.restore(snapshot)
    return result, after


def _distance(a, b):
    return sum(float((a[k] - b[k]).pow(2).sum()) for k in a)


def test_sa_ewc_holds_the_weights_near_the_original(tiny, request_red):
    model, snapshot = tiny
    _, free = _erase("sa", model, snapshot, request_red, ewc_lambda=0.0, lr=1e-2)
    result, held = _erase("sa", model, snapshot, request_red, ewc_lambda=1e9, lr=1e-2)
    assert _distance(held, snapshot) < _distance(free, snapshot)
    assert result.info["surrogate_prompts"][0] == "a green circle"  # red -> green
    assert result.info["fisher_mean"] > 0


def test_sa_and_erasediff_reject_empty_loops(tiny, request_red):
    model, snapshot = tiny
    with pytest.raises(ValueError, match="fisher_samples=0; give at least 1"):
        make_eraser("sa", {"fisher_samples": 0}).erase(model, request_red)
    with pytest.raises(ValueError, match="inner_steps=0; give at least 1"):
        make_eraser("erasediff", {"inner_steps": 0}).erase(model, request_red)
    assert all(torch.equal(v, model.unet.state_dict()[k]) for k, v in snapshot.items())


def test_erasediff_forget_term_changes_the_update(tiny, request_red):
    """λ = 0 leaves only the remain loss; λ > 0 adds ∇f(θ) − ∇f(φ_K)."""
    model, snapshot = tiny
    _, plain = _erase("erasediff", model, snapshot, request_red, lam=0.0)
    result, bilevel = _erase("erasediff", model, snapshot, request_red, lam=1.0)
    assert any(not torch.equal(plain[k], bilevel[k]) for k in plain)
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in result.train_log)


def test_spm_adapter_round_trip_reproduces_the_erased_model(tiny, request_red, tmp_path):
    model, snapshot = tiny
    result, erased = _erase("spm", model, snapshot, request_red)
    adapter = result.adapter
    assert isinstance(adapter, OneDimAdapter) and adapter.rank == 1
    assert result.trainable_params == sum(p.numel() for p in adapter.parameters())
    folder = adapter.save(tmp_path / "adapter")
    meta = json.loads((folder / "adapter.json").read_text())
    assert meta["method"] == "spm" and meta["fingerprint"].startswith("sha256:")
    loaded = load_adapter(folder)
    model.restore(snapshot)
    apply_adapter(model.unet, loaded)
    after = model.state_snapshot()
    model.restore(snapshot)
    assert all(torch.allclose(after[k], erased[k], atol=1e-6) for k in erased)
    # hooks and merge agree: the attached adapter computes what the merged weights compute
    x = model.initial_noise(1, torch.Generator().manual_seed(1))
    emb = model.encode(["a red circle"])
    with torch.no_grad(), loaded.attached(model.unet):
        hooked = model.eps(model.unet, x, 10, emb)
    model.unet.load_state_dict(erased)
    with torch.no_grad():
        merged = model.eps(model.unet, x, 10, emb)
    model.restore(snapshot)
    assert torch.allclose(hooked, merged, atol=1e-5)


def test_spm_adapter_files_are_checked(tiny, request_red, tmp_path):
    model, snapshot = tiny
    result, _ = _erase("spm", model, snapshot, request_red)
    folder = result.adapter.save(tmp_path / "a")
    weights = folder / "adapter.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(DataError, match="does not match the fingerprint"):
        load_adapter(folder)
    with pytest.raises(FileNotFoundError, match="not an adapter folder"):
        load_adapter(tmp_path / "nothing")
    other = random_tiny_model(seed=1).unet
    bad = OneDimAdapter({"down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k": (3, 5)})
    with pytest.raises(DataError, match="trained on another model"):
        apply_adapter(other, bad)
    with pytest.raises(DataError, match="not a linear layer"):
        apply_adapter(other, OneDimAdapter({"no.such.layer": (2, 2)}))


def test_the_three_erasers_are_listed_with_their_papers(capsys):
    from obliviate.cli import main

    assert main(["erase", "--list"]) == 0
    out = "\n" + capsys.readouterr().out
    for name, paper in (("sa", "2305.10120"), ("erasediff", "2401.05779"), ("spm", "2312.16145")):
        line = next(x for x in out.splitlines() if x.startswith(f"{name} "))
        assert f"arXiv {paper}" in line


def test_an_spm_run_folder_holds_the_adapter(tmp_path, capsys):
    from obliviate.cli import main
    from obliviate.diffusion.testing import tiny_builtin_folders

    pipeline, judge = tiny_builtin_folders(tmp_path / "builtin")
    out = tmp_path / "run"
    args = ["erase", "--model", str(pipeline), "--judge", str(judge), "--concept", "red"]
    args += ["--method", "spm", "--images-per-prompt", "1", "--sampling-steps", "2"]
    for kv in ("iterations=2", "pool_size=2", "sample_steps=2", "batch_size=2"):
        args += ["--set", kv]
    assert main([*args, "--out", str(out)]) == 0, capsys.readouterr().err
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["adapter"] == str(out / "adapter")
    adapter = load_adapter(out / "adapter")
    assert adapter.rank == 1 and all(".attn2." in n for n in adapter.layers)
