"""Contract of every registered diffusion eraser (obliviate.registry.ERASERS).

Each eraser, on a random tiny pipeline and on a random Stable-Diffusion-format folder:
registers a description and a paper; rejects unknown hyper-parameters; changes the UNet, only
inside its declared parameter set, never the text encoder; is deterministic under a seed; and
leaves a model that still samples finite images.
"""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("diffusers")
import torch

from obliviate.data.types import DataError
from obliviate.diffusion.builtin import builtin_request
from obliviate.diffusion.methods import EraseResult, ErasureRequest, make_eraser, select_parameters
from obliviate.diffusion.shapes import ShapesSpec
from obliviate.diffusion.testing import fast_overrides, random_tiny_model, tiny_sd_pipeline
from obliviate.registry import ERASERS

NAMES = ERASERS.names()


def test_the_issue_methods_are_registered():
    assert {"esd-x", "esd-u", "ca", "uce", "salun", "fmn"} <= set(NAMES)


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    model = random_tiny_model(seed=0)
    return model, model.state_snapshot()


@pytest.fixture(scope="module")
def request_red():
    return builtin_request(ShapesSpec(), "red")


def _changed(before: dict, model) -> set[str]:
    after = model.unet.state_dict()
    return {k for k, v in before.items() if not torch.equal(v, after[k])}


@pytest.mark.parametrize("name", NAMES)
def test_registry_entry_has_metadata(name):
    entry = ERASERS.entry(name)
    assert entry.description and entry.paper
    cls = entry.load()
    assert cls.kind in ("trainer", "closed-form")
    assert cls.name == name and dataclasses.is_dataclass(cls.Config)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_hyperparameter_is_an_error(name):
    with pytest.raises(
        ValueError, match=f"unknown eraser '{name}' setting 'no_such_setting'.*Known:"
    ):
        make_eraser(name, {"no_such_setting": 1})
    with pytest.raises(ValueError, match="unknown preset"):
        make_eraser(name, preset="nope")


@pytest.mark.parametrize("name", NAMES)
def test_erase_changes_only_declared_parameters_deterministically(name, tiny, request_red):
    model, snapshot = tiny
    text_before = {k: v.clone() for k, v in model.text_encoder.state_dict().items()}
    eraser = make_eraser(name, fast_overrides(ERASERS.get(name)), preset="builtin")
    runs = []
    for _ in range(2):
        model.restore(snapshot)
        result = eraser.erase(model, request_red, seed=3)
        runs.append(model.state_snapshot())
    assert isinstance(result, EraseResult) and result.method == name
    assert result.config == eraser.config_dict()
    assert result.trainable_params > 0
    for row in result.train_log:
        assert set(row) >= {"step", "loss"} and torch.isfinite(torch.tensor(row["loss"]))
    changed = _changed(snapshot, model)
    assert changed, f"{name} did not change the UNet"
    allowed = {n for n, _ in select_parameters(model.unet, eraser.parameter_set)}
    assert changed <= allowed, f"{name} changed parameters outside {eraser.parameter_set}"
    assert all(torch.equal(v, model.text_encoder.state_dict()[k]) for k, v in text_before.items())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0]), "not deterministic"
    x = model.sample(["a red circle", "a green square"], model.initial_noise(2), steps=3)
    assert torch.isfinite(x).all()
    model.restore(snapshot)


def test_esd_without_a_pool_samples_fresh_trajectories(tiny, request_red):
    """pool_size=0 is the paper's procedure: a new x_t from the frozen model every iteration."""
    model, snapshot = tiny
    model.restore(snapshot)
    eraser = make_eraser(
        "esd-x", {"iterations": 2, "batch_size": 1, "pool_size": 0, "sample_steps": 3}
    )
    eraser.erase(model, request_red, seed=0)
    assert _changed(snapshot, model)
    model.restore(snapshot)


def test_salun_leaves_non_salient_weights_exactly_unchanged(tiny, request_red):
    model, snapshot = tiny
    model.restore(snapshot)
    over = {**fast_overrides(ERASERS.get("salun")), "mask_ratio": 0.1}
    result = make_eraser("salun", over, preset="builtin").erase(model, request_red, seed=0)
    total = sum(p.numel() for p in model.unet.parameters())
    after = model.unet.state_dict()
    moved = sum(int((snapshot[k] != after[k]).sum()) for k in snapshot)
    assert 0 < moved <= result.trainable_params <= 0.11 * total
    model.restore(snapshot)


def test_request_validation():
    with pytest.raises(DataError, match="empty"):
        ErasureRequest(concept=" ")
    with pytest.raises(DataError, match="erase prompt 1 'a dog' does not contain"):
        ErasureRequest(concept="cat", prompts=["a cat", "a dog"])
    with pytest.raises(DataError, match="preserve prompt 0 'a cat' contains"):
        ErasureRequest(concept="cat", preserve=["a cat"])
    assert ErasureRequest(concept="cat").prompts == ["cat"]


def test_parameter_sets():
    model = random_tiny_model()
    x = {n for n, _ in select_parameters(model.unet, "xattn")}
    kv = {n for n, _ in select_parameters(model.unet, "xattn-kv")}
    u = {n for n, _ in select_parameters(model.unet, "noxattn")}
    assert x and all(".attn2." in n for n in x)
    assert kv < x and all(n.split(".")[-2] in ("to_k", "to_v") for n in kv)
    assert not (x & u) and all(".attn2." not in n for n in u)
    with pytest.raises(ValueError, match="unknown parameter set"):
        select_parameters(model.unet, "everything")
    with pytest.raises(ValueError, match="parameters='bogus'"):
        make_eraser("esd-x", {"parameters": "bogus"})


def test_cli_style_string_overrides_are_converted():
    e = make_eraser("esd-x", {"iterations": "7", "lr": "1e-4"})
    assert e.config.iterations == 7 and e.config.lr == 1e-4
    with pytest.raises(ValueError, match="expected int"):
        make_eraser("esd-x", {"iterations": "many"})


# ----------------------------------------------------------------------------- Stable Diffusion


@pytest.fixture(scope="module")
def sd_model(tmp_path_factory):
    from obliviate.diffusion.pipeline import load_model

    model = load_model(tiny_sd_pipeline(tmp_path_factory.mktemp("sd") / "tiny-sd"))
    return model, model.state_snapshot()


@pytest.mark.parametrize("name", NAMES)
def test_erasers_run_on_a_stable_diffusion_pipeline(name, sd_model):
    """The real-pipeline path: a StableDiffusionPipeline folder with a VAE and CLIPTokenizer,
    a two-word concept, loaded through obliviate's loader."""
    model, before = sd_model
    model.restore(before)
    assert type(model.pipe).__name__ == "StableDiffusionPipeline" and model.is_latent
    req = ErasureRequest(
        concept="van gogh",
        prompts=["a painting by van gogh", "van gogh"],
        preserve=["a painting by monet", "a photo of a dog"],
        anchor="",
    )
    eraser = make_eraser(name, fast_overrides(ERASERS.get(name)), preset="paper")
    eraser.erase(model, req, seed=0)
    changed = _changed(before, model)
    assert changed and changed <= {
        n for n, _ in select_parameters(model.unet, eraser.parameter_set)
    }
    images = model.decode(model.sample(["a painting by van gogh"], model.initial_noise(1), steps=2))
    assert images.shape == (1, 3, 16, 16) and torch.isfinite(images).all()


def test_preservation_loss_is_zero_for_the_frozen_model_and_grows_with_an_edit(tiny):
    from obliviate.diffusion.methods import preservation_loss

    model, snapshot = tiny
    model.restore(snapshot)
    unet0 = model.frozen_unet()
    gen = torch.Generator().manual_seed(0)
    x = model.initial_noise(3, gen)
    t = torch.tensor([10, 500, 900])
    emb = model.encode(["a green square", "a blue circle", ""])
    assert float(preservation_loss(model, unet0, x, t, emb)) == 0.0
    with torch.no_grad():
        for _, p in select_parameters(model.unet, "xattn-kv"):
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    edited = float(preservation_loss(model, unet0, x, t, emb))
    with torch.no_grad():
        expected = torch.nn.functional.mse_loss(
            model.eps(model.unet, x, t, emb), model.eps(unet0, x, t, emb)
        )
    assert edited > 0 and edited == pytest.approx(float(expected), rel=1e-6)
    model.restore(snapshot)


@pytest.mark.parametrize("name", ["esd-x", "fmn"])
def test_preserve_weight_changes_the_edit(name, tiny, request_red):
    """preserve_weight = 0 is the paper's method; > 0 adds the preservation term."""
    model, snapshot = tiny
    over = {**fast_overrides(ERASERS.get(name)), "preserve_weight": 0.0}
    results = []
    for w in (0.0, 10.0):
        model.restore(snapshot)
        make_eraser(name, {**over, "preserve_weight": w}, preset="builtin").erase(
            model, request_red, seed=0
        )
        results.append(model.state_snapshot())
    model.restore(snapshot)
    assert any(not torch.equal(results[0][k], results[1][k]) for k in results[0])


@pytest.mark.parametrize("name", ["esd-x", "fmn"])
def test_preserve_weight_without_preserve_prompts_is_a_clear_error(name, tiny):
    model, snapshot = tiny
    request = ErasureRequest(concept="red", prompts=["a red circle"])
    with pytest.raises(DataError, match=r"preserve_weight=3.0 needs preserve prompts"):
        make_eraser(name, {"preserve_weight": 3.0}).erase(model, request)
    assert not _changed(snapshot, model)
