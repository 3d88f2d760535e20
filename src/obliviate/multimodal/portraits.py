"""Procedural synthetic portraits: one look per person, several views of it.

A look is a combination of background, skin, hair (colour and style), eye and shirt colours,
drawn without repetition so that every person's portrait differs. A view is the same portrait
shifted by a few pixels, slightly rotated and with its brightness changed: the training set uses
some views and the test set others, never trained on (MLLMU-Bench's test images show the same
people transformed; Liu+ 2024, arXiv 2410.22108).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

_BACKGROUNDS = ((230, 80, 80), (80, 200, 90), (70, 110, 230), (230, 210, 70), (170, 80, 210))
_SKINS = ((250, 215, 180), (205, 150, 110), (140, 95, 60), (90, 60, 40))
_HAIRS = ((20, 20, 20), (150, 90, 30), (240, 220, 120), (200, 60, 30), (200, 200, 200))
_STYLES = ("short", "long", "bun", "bald")
_SHIRTS = ((20, 60, 140), (30, 130, 60), (160, 30, 40), (240, 240, 240), (60, 60, 60))

# views 0..N_TRAIN_VIEWS-1 are trained on; later ones are the unseen test views
N_TRAIN_VIEWS = 3
# (dx, dy, degrees, brightness) per view
_VIEWS = (
    (0, 0, 0.0, 1.0),
    (1, 0, -4.0, 0.95),
    (-1, 1, 4.0, 1.05),
    (1, -1, 6.0, 0.9),
    (-1, -1, -6.0, 1.1),
    (0, 1, 8.0, 1.0),
)
N_VIEWS = len(_VIEWS)


@dataclass(frozen=True)
class Look:
    """The colours and hair style that make one person's portrait."""

    background: tuple[int, int, int]
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    style: str
    shirt: tuple[int, int, int]


def distinct_looks(n: int, seed: int = 0) -> list[Look]:
    """``n`` different looks, drawn from every combination without repetition."""
    combos = list(itertools.product(_BACKGROUNDS, _SKINS, _HAIRS, _STYLES, _SHIRTS))
    if n > len(combos):
        raise ValueError(f"at most {len(combos)} distinct portraits; ask for fewer people")
    rng = random.Random(seed)
    return [Look(*c) for c in rng.sample(combos, n)]


def draw_portrait(look: Look, view: int = 0, size: int = 32) -> Any:
    """The portrait of ``look`` as a ``size`` x ``size`` RGB PIL image, seen in view ``view``."""
    from PIL import Image, ImageDraw, ImageEnhance

    if not 0 <= view < N_VIEWS:
        raise ValueError(f"view {view} does not exist; use 0..{N_VIEWS - 1}")
    big = size * 4
    img = Image.new("RGB", (big, big), look.background)
    d = ImageDraw.Draw(img)

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
        return (round(x0 * big), round(y0 * big), round(x1 * big), round(y1 * big))

    d.ellipse(box(0.15, 0.72, 0.85, 1.25), fill=look.shirt)  # shoulders
    if look.style == "long":
        d.rectangle(box(0.25, 0.25, 0.75, 0.78), fill=look.hair)
    d.ellipse(box(0.3, 0.22, 0.7, 0.72), fill=look.skin)  # face
    if look.style in ("short", "long", "bun"):
        d.chord(box(0.28, 0.16, 0.72, 0.56), 180, 360, fill=look.hair)
    if look.style == "bun":
        d.ellipse(box(0.42, 0.04, 0.58, 0.22), fill=look.hair)
    for x in (0.4, 0.6):
        d.ellipse(box(x - 0.035, 0.42, x + 0.035, 0.49), fill=(30, 30, 30))  # eyes
    d.line(box(0.43, 0.61, 0.57, 0.61), fill=(120, 40, 40), width=max(1, big // 40))  # mouth
    dx, dy, degrees, brightness = _VIEWS[view]
    img = img.rotate(degrees, resample=Image.Resampling.BILINEAR, fillcolor=look.background)
    img = img.resize((size, size), Image.Resampling.LANCZOS)
    if dx or dy:
        shifted = Image.new("RGB", (size, size), look.background)
        shifted.paste(img, (dx, dy))
        img = shifted
    return ImageEnhance.Brightness(img).enhance(brightness)
