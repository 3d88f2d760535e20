"""Evaluation of an erased model: generate, classify with the judge, score, draw grids.

On the built-in shapes model (docs/diffusion.md, adapted to shape x colour):

- ``unlearning_accuracy`` (UA): images of the erased concept's prompts that the judge's head
  for that kind (colour for "red") does not assign to the concept;
- ``in_domain_retain_accuracy`` (IRA): the same head's accuracy on the prompts of the other
  concepts of that kind ("a green ...", "a blue ...");
- ``cross_domain_retain_accuracy`` (CRA): the other head's accuracy (shape for "red") on the
  images of every prompt, the erased ones included ("a red circle" should still be a circle);
- ``fid`` / ``kid``: FID/KID-style distances between the judge's features of the retained
  prompts' images and of real drawings of the same classes.

Every prompt gets the same initial noise before and after erasure (a fixed seed), so grids and
per-sample rows compare like with like.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from obliviate.diffusion import metrics as M
from obliviate.diffusion.shapes import ShapesSpec, make_dataset

BENCHMARK = "builtin-shapes"


@dataclass(frozen=True)
class EvalConfig:
    images_per_prompt: int = 32
    steps: int = 25
    guidance: float = 3.0
    seed: int = 1234
    real_images: int = 900  # real drawings for the FID/KID reference
    grid_columns: int = 8


@dataclass
class EvalResult:
    metrics: dict[str, dict[str, Any]]
    samples: list[dict[str, Any]]
    images: torch.Tensor  # (prompts, n, 3, H, W) in [0, 1]
    prompts: list[str]
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def values(self) -> dict[str, float | None]:
        return {k: v["value"] for k, v in self.metrics.items()}


@torch.no_grad()
def generate(model: Any, prompts: list[str], config: EvalConfig) -> torch.Tensor:
    """``(len(prompts), n, 3, H, W)`` images in [0, 1]; the noise depends only on the seed."""
    n = config.images_per_prompt
    gen = torch.Generator().manual_seed(config.seed)
    noise = model.initial_noise(len(prompts) * n, gen)
    reps = [p for p in prompts for _ in range(n)]
    x = model.sample(reps, noise, steps=config.steps, guidance=config.guidance)
    images = model.decode(x)
    return images.view(len(prompts), n, *images.shape[1:])


def _metric(name: str, value: float | None) -> dict[str, Any]:
    """The ``metrics.json`` entry of ``name``: direction and version from the metric catalogue
    (:mod:`obliviate.metrics.catalogue`)."""
    from obliviate.metrics import metric_result

    return metric_result(name, value).to_dict()


_REAL_FEATURES: dict[tuple, dict[str, np.ndarray]] = {}


def real_features(judge: Any, spec: ShapesSpec, n: int, seed: int = 7) -> dict[str, np.ndarray]:
    """Judge features and labels of ``n`` real drawings (cached per judge/spec/n/seed)."""
    key = (judge.fingerprint, spec, n, seed)
    if key not in _REAL_FEATURES:
        data = make_dataset(n, spec, seed=seed)
        feats = judge.predict(torch.from_numpy(data.images))["features"].numpy()
        _REAL_FEATURES[key] = {
            "features": feats,
            "shape": data.shape_labels,
            "colour": data.colour_labels,
        }
    return _REAL_FEATURES[key]


def evaluate_builtin(
    model: Any,
    judge: Any,
    concept: str,
    config: EvalConfig = EvalConfig(),
    images: torch.Tensor | None = None,
) -> EvalResult:
    """Generate every shape x colour prompt and score the erasure of ``concept``."""
    start = time.time()
    spec = judge.spec
    kind = spec.kind_of(concept)
    other = "colour" if kind == "shape" else "shape"
    target = spec.values_of(kind).index(concept)
    table = spec.prompts()
    prompts = [p for p, _, _ in table]
    if images is None:
        images = generate(model, prompts, config)
    n = images.shape[1]
    pred = judge.predict(images.flatten(0, 1))
    p_kind, p_other = pred[kind].numpy(), pred[other].numpy()
    feats = pred["features"].numpy()
    labels = {
        "shape": np.repeat([s for _, s, _ in table], n),
        "colour": np.repeat([c for _, _, c in table], n),
    }
    forget = labels[kind] == target
    retain = ~forget
    if not retain.any():
        raise ValueError(f"no retained prompts: every prompt contains {concept!r}")
    real = real_features(judge, spec, config.real_images)
    real_keep = real[kind] != target
    ua = M.unlearning_accuracy(p_kind[forget].argmax(1), target)
    ira = M.retain_accuracy(p_kind[retain].argmax(1), labels[kind][retain])
    cra = M.retain_accuracy(p_other.argmax(1), labels[other])
    values = {
        "unlearning_accuracy": ua,
        "in_domain_retain_accuracy": ira,
        "cross_domain_retain_accuracy": cra,
        "fid": M.fid_from_features(feats[retain], real["features"][real_keep]),
        "kid": M.kid_from_features(feats[retain], real["features"][real_keep]),
        "cross_domain_accuracy_forget_prompts": M.retain_accuracy(
            p_other[forget].argmax(1), labels[other][forget]
        ),
        "cross_domain_accuracy_retain_prompts": M.retain_accuracy(
            p_other[retain].argmax(1), labels[other][retain]
        ),
    }
    metrics = {k: _metric(k, v) for k, v in values.items()}
    samples = []
    counters = {"forget": 0, "retain": 0}
    for i in range(len(prompts) * n):
        split = "forget" if forget[i] else "retain"
        samples.append(
            {
                "split": split,
                "index": counters[split],
                "prompt": prompts[i // n],
                "seed": config.seed,
                "image": i % n,
                "shape_label": spec.shapes[labels["shape"][i]],
                "colour_label": spec.colours[labels["colour"][i]],
                "shape_pred": spec.shapes[int(pred["shape"][i].argmax())],
                "colour_pred": spec.colours[int(pred["colour"][i].argmax())],
                "p_concept": round(float(p_kind[i, target]), 4),
            }
        )
        counters[split] += 1
    return EvalResult(
        metrics,
        samples,
        images,
        prompts,
        round(time.time() - start, 2),
        info={"kind": kind, "concept": concept},
    )


def evaluate_prompts(
    model: Any, prompts: list[str], config: EvalConfig = EvalConfig()
) -> EvalResult:
    """For pipelines without a judge: generate the prompts for grids; no metrics."""
    start = time.time()
    images = generate(model, prompts, config)
    return EvalResult({}, [], images, prompts, round(time.time() - start, 2))


# ----------------------------------------------------------------------------- grids


def _to_pil(img: torch.Tensor, scale: int) -> Any:
    from PIL import Image

    arr = (img.permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    pil = Image.fromarray(arr)
    if scale != 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    return pil


def _cell_scale(h: int) -> int:
    return max(1, 64 // h)


def make_grid(
    images: torch.Tensor, prompts: list[str], columns: int = 8, title: str | None = None
) -> Any:
    """A PIL grid: one row per prompt (label on the left), ``columns`` samples per row."""
    from PIL import Image, ImageDraw

    n_rows, n = images.shape[:2]
    cols = min(columns, n)
    h, w = images.shape[-2:]
    s = _cell_scale(h)
    ch, cw = h * s, w * s
    label_w, pad, top = 130, 2, 20 if title else 0
    grid = Image.new("RGB", (label_w + cols * (cw + pad), top + n_rows * (ch + pad)), (255,) * 3)
    draw = ImageDraw.Draw(grid)
    if title:
        draw.text((4, 4), title, fill=(0, 0, 0))
    for r in range(n_rows):
        y = top + r * (ch + pad)
        draw.text((4, y + ch // 2 - 6), prompts[r] or "(empty prompt)", fill=(0, 0, 0))
        for c in range(cols):
            grid.paste(_to_pil(images[r, c], s), (label_w + c * (cw + pad), y))
    return grid


def comparison_grid(columns: dict[str, torch.Tensor], prompts: list[str], per_cell: int = 4) -> Any:
    """One row per prompt, one column block per model (e.g. original and each method)."""
    from PIL import Image, ImageDraw

    first = next(iter(columns.values()))
    h, w = first.shape[-2:]
    s = _cell_scale(h)
    ch, cw = h * s, w * s
    label_w, pad, gap, top = 130, 2, 12, 22
    block = per_cell * (cw + pad) + gap
    grid = Image.new(
        "RGB", (label_w + len(columns) * block, top + len(prompts) * (ch + pad)), (255,) * 3
    )
    draw = ImageDraw.Draw(grid)
    for b, (name, imgs) in enumerate(columns.items()):
        draw.text((label_w + b * block + 2, 4), name, fill=(0, 0, 0))
        for r in range(len(prompts)):
            y = top + r * (ch + pad)
            for c in range(min(per_cell, imgs.shape[1])):
                grid.paste(_to_pil(imgs[r, c], s), (label_w + b * block + c * (cw + pad), y))
    for r, p in enumerate(prompts):
        draw.text((4, top + r * (ch + pad) + ch // 2 - 6), p or "(empty prompt)", fill=(0, 0, 0))
    return grid


def png_bytes(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
