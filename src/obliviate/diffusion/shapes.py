"""The built-in image data: coloured shapes with captions ("a red circle").

Two attributes that combine (shape x colour) make "erase one concept, keep the other kind"
measurable: erasing ``red`` must stop red images for every red prompt (unlearning accuracy),
keep green and blue (in-domain retain accuracy) and keep the shapes (cross-domain retain
accuracy). Images are drawn with PIL at 4x resolution and downsampled (anti-aliased), with a
random size, position, rotation (triangles) and a little colour jitter.

Captions used in training:

- ``"a {colour} {shape}"`` (full caption),
- ``"a {shape}"`` and ``"a {colour} shape"`` (one attribute dropped, so that each attribute
  word works on its own and "a circle" is a natural superclass anchor for "a red circle"),
- ``""`` (unconditional, for classifier-free guidance).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from obliviate.data.types import DataError

SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue")
_RGB = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 80, 230),
    "yellow": (230, 210, 40),
    "purple": (150, 60, 200),
    "cyan": (40, 200, 210),
    "white": (235, 235, 235),
    "orange": (240, 140, 30),
}
DRAWABLE_SHAPES = ("circle", "square", "triangle", "diamond", "cross")
GENERIC_SHAPE_WORD = "shape"


@dataclass(frozen=True)
class ShapesSpec:
    """Which shapes and colours exist, and the image size in pixels."""

    shapes: tuple[str, ...] = SHAPES
    colours: tuple[str, ...] = COLOURS
    size: int = 16

    def __post_init__(self) -> None:
        for s in self.shapes:
            if s not in DRAWABLE_SHAPES:
                raise ValueError(
                    f"unknown shape {s!r}; drawable shapes: {', '.join(DRAWABLE_SHAPES)}"
                )
        for c in self.colours:
            if c not in _RGB:
                raise ValueError(f"unknown colour {c!r}; known colours: {', '.join(_RGB)}")
        if len(set(self.shapes)) < 2 or len(set(self.colours)) < 2:
            raise ValueError("need at least two distinct shapes and two distinct colours")
        if self.size < 8:
            raise ValueError(f"image size {self.size} is too small; use at least 8 pixels")

    def to_dict(self) -> dict:
        return {"shapes": list(self.shapes), "colours": list(self.colours), "size": self.size}

    @classmethod
    def from_dict(cls, d: dict) -> ShapesSpec:
        return cls(tuple(d["shapes"]), tuple(d["colours"]), int(d["size"]))

    def vocabulary(self) -> list[str]:
        """Every word a caption can contain (the word-level tokenizer's vocabulary)."""
        return ["a", GENERIC_SHAPE_WORD, *self.shapes, *self.colours]

    def kind_of(self, concept: str) -> str:
        """``"shape"`` or ``"colour"``; a :class:`DataError` for any other word."""
        if concept in self.shapes:
            return "shape"
        if concept in self.colours:
            return "colour"
        raise DataError(
            f"concept {concept!r} is not in the built-in shapes model; choose a shape "
            f"({', '.join(self.shapes)}) or a colour ({', '.join(self.colours)})"
        )

    def values_of(self, kind: str) -> tuple[str, ...]:
        return self.shapes if kind == "shape" else self.colours

    def prompts(self) -> list[tuple[str, int, int]]:
        """The evaluation prompts: every full caption with its (shape, colour) labels."""
        return [
            (caption(c, s), si, ci)
            for si, s in enumerate(self.shapes)
            for ci, c in enumerate(self.colours)
        ]


def caption(colour: str | None, shape: str | None) -> str:
    """The caption of a (colour, shape) pair; ``None`` drops that attribute."""
    if colour and shape:
        return f"a {colour} {shape}"
    if shape:
        return f"a {shape}"
    if colour:
        return f"a {colour} {GENERIC_SHAPE_WORD}"
    return ""


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "square":
        k, offset = 4, math.pi / 4
    elif shape == "triangle":
        k, offset = 3, -math.pi / 2
    elif shape == "diamond":
        k, offset = 4, 0.0
    else:
        raise ValueError(shape)
    return [
        (
            cx + r * math.cos(offset + angle + 2 * math.pi * i / k),
            cy + r * math.sin(offset + angle + 2 * math.pi * i / k),
        )
        for i in range(k)
    ]


def draw(shape: str, colour: str, rng: np.random.Generator, size: int = 16) -> np.ndarray:
    """One image, ``(size, size, 3)`` uint8: a shape of that colour on a dark background."""
    from PIL import Image, ImageDraw

    scale = 4
    big = size * scale
    bg = tuple(int(v) for v in rng.integers(0, 40, size=3))
    img = Image.new("RGB", (big, big), bg)
    d = ImageDraw.Draw(img)
    base = np.array(_RGB[colour], dtype=float)
    rgb = tuple(int(v) for v in np.clip(base + rng.normal(0, 12, size=3), 0, 255))
    r = rng.uniform(0.26, 0.40) * big
    cx = rng.uniform(r + 1, big - r - 1)
    cy = rng.uniform(r + 1, big - r - 1)
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=rgb)
    elif shape == "cross":
        w = r * 0.35
        d.rectangle([cx - r, cy - w, cx + r, cy + w], fill=rgb)
        d.rectangle([cx - w, cy - r, cx + w, cy + r], fill=rgb)
    else:
        angle = rng.uniform(-0.25, 0.25) if shape == "triangle" else rng.uniform(-0.15, 0.15)
        rr = r * (1.2 if shape == "triangle" else 1.0)
        d.polygon(_polygon(shape, cx, cy, rr, angle), fill=rgb)
    img = img.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8)


@dataclass
class ShapesData:
    """``images`` float32 ``(N, 3, H, W)`` in [0, 1]; integer labels per attribute."""

    images: np.ndarray
    shape_labels: np.ndarray
    colour_labels: np.ndarray
    spec: ShapesSpec

    def __len__(self) -> int:
        return len(self.images)


def make_dataset(n: int, spec: ShapesSpec = ShapesSpec(), seed: int = 0) -> ShapesData:
    """``n`` images with balanced classes (round-robin over shape x colour), deterministic."""
    if n < 1:
        raise ValueError(f"dataset size must be positive, got {n}")
    rng = np.random.default_rng(seed)
    k_s, k_c = len(spec.shapes), len(spec.colours)
    classes = np.arange(n) % (k_s * k_c)
    rng.shuffle(classes)
    s_lab, c_lab = classes // k_c, classes % k_c
    imgs = np.stack(
        [draw(spec.shapes[s], spec.colours[c], rng, spec.size) for s, c in zip(s_lab, c_lab)]
    )
    imgs = imgs.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return ShapesData(imgs, s_lab.astype(np.int64), c_lab.astype(np.int64), spec)


def training_captions(
    data: ShapesData, rng: np.random.Generator, p_uncond: float = 0.1, p_partial: float = 0.2
) -> list[str]:
    """One caption per image: full, one attribute dropped (``p_partial``, either attribute with
    equal chance), or empty (``p_uncond``)."""
    out = []
    spec = data.spec
    for s, c in zip(data.shape_labels, data.colour_labels):
        u = rng.random()
        shape, colour = spec.shapes[s], spec.colours[c]
        if u < p_uncond:
            out.append(caption(None, None))
        elif u < p_uncond + p_partial / 2:
            out.append(caption(None, shape))
        elif u < p_uncond + p_partial:
            out.append(caption(colour, None))
        else:
            out.append(caption(colour, shape))
    return out


def iterate_batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless shuffled index batches (reshuffled each epoch)."""
    while True:
        perm = rng.permutation(n)
        for i in range(0, n - batch_size + 1, batch_size):
            yield perm[i : i + batch_size]
