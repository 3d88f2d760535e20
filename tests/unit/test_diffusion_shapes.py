"""The built-in shapes data, its captions, requests and the judge's augmentation."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("diffusers")

from obliviate.data.types import DataError
from obliviate.diffusion import shapes
from obliviate.diffusion.builtin import builtin_request
from obliviate.diffusion.shapes import ShapesSpec, caption, make_dataset


def test_captions():
    assert caption("red", "circle") == "a red circle"
    assert caption(None, "circle") == "a circle"
    assert caption("red", None) == "a red shape"
    assert caption(None, None) == ""


def test_dataset_is_deterministic_balanced_and_in_range():
    a, b = make_dataset(90, seed=3), make_dataset(90, seed=3)
    assert np.array_equal(a.images, b.images)
    assert a.images.shape == (90, 3, 16, 16) and a.images.dtype == np.float32
    assert a.images.min() >= 0.0 and a.images.max() <= 1.0
    counts = np.bincount(a.shape_labels * 3 + a.colour_labels, minlength=9)
    assert counts.tolist() == [10] * 9
    assert not np.array_equal(a.images, make_dataset(90, seed=4).images)


def test_drawn_colour_dominates_its_channel():
    data = make_dataset(60, seed=0)
    for img, c in zip(data.images, data.colour_labels):
        brightest = img.reshape(3, -1).max(axis=1)  # per channel, on the shape
        assert int(np.argmax(brightest)) == int(c), "red/green/blue must be channel 0/1/2"


def test_shapes_differ_in_filled_area():
    """Same colour, same random stream: circle, square and triangle cover different areas."""
    rng = [np.random.default_rng(0) for _ in range(3)]
    areas = [
        float((shapes.draw(s, "red", r, 16)[..., 0] > 128).sum())
        for s, r in zip(("circle", "square", "triangle"), rng)
    ]
    assert len(set(areas)) == 3
    assert areas[2] < areas[1] < areas[0]  # triangle < square < circle of the same radius


def test_spec_validation_and_kinds():
    spec = ShapesSpec()
    assert spec.kind_of("red") == "colour" and spec.kind_of("circle") == "shape"
    with pytest.raises(DataError, match=r"choose a shape .* or a colour"):
        spec.kind_of("dog")
    with pytest.raises(ValueError, match="unknown shape"):
        ShapesSpec(shapes=("circle", "blob"))
    with pytest.raises(ValueError, match="at least two"):
        ShapesSpec(colours=("red",))
    assert ShapesSpec.from_dict(spec.to_dict()) == spec
    assert spec.prompts()[0] == ("a red circle", 0, 0)
    assert len(spec.prompts()) == 9


def test_training_captions_mix():
    data = make_dataset(900, seed=0)
    caps = shapes.training_captions(data, np.random.default_rng(0), p_uncond=0.1, p_partial=0.2)
    empty = sum(c == "" for c in caps) / len(caps)
    partial = sum(len(c.split()) == 2 or c.endswith(" shape") for c in caps if c) / len(caps)
    assert 0.06 < empty < 0.14 and 0.15 < partial < 0.25
    first = caps[0]
    s, c = data.spec.shapes[data.shape_labels[0]], data.spec.colours[data.colour_labels[0]]
    assert first in ("", f"a {c} {s}", f"a {s}", f"a {c} shape")


def test_builtin_request_for_a_colour_and_a_shape():
    spec = ShapesSpec()
    r = builtin_request(spec, "red")
    assert r.prompts == ["a red circle", "a red square", "a red triangle", "a red shape"]
    assert "a green circle" in r.preserve and "a circle" in r.preserve and "" in r.preserve
    assert not any("red" in p for p in r.preserve)
    assert r.anchor == r.mismatched_concept() == "green"  # default anchor: (k + 1) mod K
    assert builtin_request(spec, "blue").anchor == "red"
    assert builtin_request(spec, "triangle").mapped("circle")[0] == "a red circle"
    generic = builtin_request(spec, "circle", anchor="shape")
    assert generic.anchor_or_superclass() == "shape"
    assert generic.mapped(generic.anchor)[0] == "a red shape"
    assert builtin_request(spec, "red", anchor="").mapped("")[0] == "a circle"
    for bad in ("red", "square", "shape", "dog"):  # itself, another kind, another kind's word
        with pytest.raises(DataError, match="choose another colour"):
            builtin_request(spec, "red", anchor=bad)
    s = builtin_request(spec, "circle", anchor="square")
    assert s.prompts == ["a red circle", "a green circle", "a blue circle", "a circle"]
    assert s.mapped(s.anchor) == ["a red square", "a green square", "a blue square", "a square"]
    assert "a red shape" in s.preserve
    with pytest.raises(DataError):
        builtin_request(spec, "dog")


def test_judge_augmentation_keeps_range_and_shape():
    import torch

    from obliviate.diffusion.judge import augment

    x = torch.from_numpy(make_dataset(16, seed=0).images)
    y = augment(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= 0.0 and y.max() <= 1.0
    assert not torch.equal(x, y)
