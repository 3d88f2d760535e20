"""SPM, the concept semi-permeable membrane (Lyu+ CVPR 2024, arXiv 2312.16145).

A one-dimensional (rank-1) adapter on every linear layer of a parameter set (cross-attention
by default) is trained, with the UNet frozen, to erase the concept (an ESD-style target
towards a surrogate) while latent anchoring keeps other prompts' predictions at the frozen
model's. The trained adapter is then merged into the weights (W ← W + s·u dᵀ), so the erased
pipeline saves and loads like any other, and it is kept as its own file
(``adapter.safetensors`` + ``adapter.json`` with its SHA-256) that :func:`load_adapter` checks
and :func:`apply_adapter` plugs into another copy of the model (docs/diffusion.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from obliviate.data.types import DataError
from obliviate.diffusion import functional as F
from obliviate.diffusion.eraser_base import (
    Eraser,
    sample_pool,
    select_parameters,
    train_loop,
)

WEIGHTS = "adapter.safetensors"
CONFIG = "adapter.json"


class OneDimAdapter(torch.nn.Module):
    """Rank-``rank`` adapters ``down`` d ``(r, in)`` and ``up`` u ``(out, r)`` per linear
    layer name (dots replaced: parameter names cannot hold them), scale ``s``; ``up`` starts
    at zero, so a new adapter changes nothing."""

    def __init__(
        self, shapes: dict[str, tuple[int, int]], rank: int = 1, scale: float = 1.0, seed: int = 0
    ) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"adapter rank must be at least 1, got {rank}")
        if not shapes:
            raise ValueError("no linear layers to adapt")
        self.layers = dict(shapes)
        self.rank, self.scale = rank, float(scale)
        gen = torch.Generator().manual_seed(seed)
        self.down = torch.nn.ParameterDict()
        self.up = torch.nn.ParameterDict()
        for name, (out_f, in_f) in shapes.items():
            key = _key(name)
            self.down[key] = torch.nn.Parameter(torch.randn(rank, in_f, generator=gen) / in_f**0.5)
            self.up[key] = torch.nn.Parameter(torch.zeros(out_f, rank))

    def delta(self, name: str) -> torch.Tensor:
        key = _key(name)
        return F.adapter_delta(self.down[key], self.up[key], self.scale)

    @contextmanager
    def attached(self, unet: Any, strength: float = 1.0) -> Iterator[None]:
        """Within the block, every adapted layer computes
        :func:`~obliviate.diffusion.functional.adapter_forward` (forward hooks; the UNet's
        own parameters and names are untouched)."""
        modules = dict(unet.named_modules())
        handles = []
        for name in self.layers:
            mod = modules[name]
            key = _key(name)

            def hook(m: Any, inp: tuple, out: torch.Tensor, key: str = key) -> torch.Tensor:
                x = inp[0]
                down, up = self.down[key].to(x.dtype), self.up[key].to(x.dtype)
                extra = torch.nn.functional.linear(torch.nn.functional.linear(x, down), up)
                return out + strength * self.scale * extra

            handles.append(mod.register_forward_hook(hook))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    @torch.no_grad()
    def merge_into(self, unet: Any, strength: float = 1.0) -> None:
        """W ← W + strength · s · u d for every adapted layer (in place)."""
        modules = dict(unet.named_modules())
        for name in self.layers:
            w = modules[name].weight
            w.add_((strength * self.delta(name)).to(w.dtype))

    def save(self, folder: str | Path) -> Path:
        """``adapter.safetensors`` (tensors only) and ``adapter.json`` (layers, rank, scale,
        SHA-256 of the weights file)."""
        from safetensors.torch import save_file

        from obliviate.io import write_json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {
            f"{kind}.{k}": v.detach().contiguous().cpu()
            for kind in ("down", "up")
            for k, v in getattr(self, kind).items()
        }
        save_file(tensors, str(folder / WEIGHTS))
        write_json(
            folder / CONFIG,
            {
                "schema": 1,
                "method": "spm",
                "rank": self.rank,
                "scale": self.scale,
                "layers": {n: list(s) for n, s in self.layers.items()},
                "fingerprint": _sha256(folder / WEIGHTS),
            },
        )
        return folder


def _key(name: str) -> str:
    return name.replace(".", "__")


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def linear_shapes(unet: Any, parameter_set: str) -> dict[str, tuple[int, int]]:
    """``{layer name: (out, in)}`` of the ``nn.Linear`` layers whose weights are in the
    parameter set."""
    names = {n for n, _ in select_parameters(unet, parameter_set)}
    return {
        m: (mod.out_features, mod.in_features)
        for m, mod in unet.named_modules()
        if isinstance(mod, torch.nn.Linear) and f"{m}.weight" in names
    }


def load_adapter(folder: str | Path) -> OneDimAdapter:
    """Load an adapter folder, checking the weights against the fingerprint and the tensors
    against the declared layers (a :class:`DataError` naming what is wrong otherwise)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
        raise FileNotFoundError(f"{folder}: not an adapter folder (needs {CONFIG} and {WEIGHTS})")
    try:
        cfg = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
        layers = {str(n): (int(s[0]), int(s[1])) for n, s in cfg["layers"].items()}
        rank, scale = int(cfg["rank"]), float(cfg["scale"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise DataError(f"{folder / CONFIG}: not a valid adapter config ({exc})") from exc
    fp = _sha256(folder / WEIGHTS)
    if cfg.get("fingerprint") != fp:
        raise DataError(
            f"{folder / WEIGHTS}: SHA-256 {fp} does not match the fingerprint in "
            f"{folder / CONFIG}; the adapter was changed or damaged"
        )
    try:
        tensors = load_file(str(folder / WEIGHTS))
    except SafetensorError as exc:
        raise DataError(f"{folder / WEIGHTS}: not a readable safetensors file ({exc})") from exc
    adapter = OneDimAdapter(layers, rank, scale)
    expected = {
        f"{kind}.{k}": tuple(p.shape)
        for kind in ("down", "up")
        for k, p in getattr(adapter, kind).items()
    }
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    if got != expected:
        bad = sorted(set(got) ^ set(expected)) or [k for k in got if got[k] != expected[k]]
        raise DataError(
            f"{folder / WEIGHTS}: tensors do not match the layers in {CONFIG} "
            f"(first mismatch: {bad[0]})"
        )
    with torch.no_grad():
        for k, v in tensors.items():
            kind, key = k.split(".", 1)
            getattr(adapter, kind)[key].copy_(v)
    return adapter


def apply_adapter(unet: Any, adapter: OneDimAdapter, strength: float = 1.0) -> None:
    """Merge a loaded adapter into ``unet`` (another copy of the model it was trained on);
    a :class:`DataError` when a layer is missing or has another shape."""
    modules = dict(unet.named_modules())
    for name, (out_f, in_f) in adapter.layers.items():
        mod = modules.get(name)
        if not isinstance(mod, torch.nn.Linear):
            raise DataError(f"the adapter's layer {name!r} is not a linear layer of this UNet")
        if (mod.out_features, mod.in_features) != (out_f, in_f):
            raise DataError(
                f"the adapter's layer {name!r} is ({out_f}, {in_f}) but the UNet's is "
                f"({mod.out_features}, {mod.in_features}); it was trained on another model"
            )
    adapter.merge_into(unet, strength)


# ----------------------------------------------------------------------------- the eraser


@dataclass(frozen=True)
class SPMConfig:
    """SPM defaults (docs/diffusion.md): rank 1, η = 1, anchoring weight 1; learning rate,
    iterations and the image pool are unverified against the paper."""

    iterations: int = 500
    lr: float = 1e-4
    rank: int = 1
    scale: float = 1.0
    negative_guidance: float = 1.0  # η
    anchor_weight: float = 1.0  # λ of latent anchoring
    batch_size: int = 1
    pool_size: int = 16  # frozen-model trajectories of the erase prompts
    sample_steps: int = 50
    sample_guidance: float = 3.0
    parameters: str = "xattn"


class SPM(Eraser):
    """SPM: train a one-dimensional adapter with

    L = ‖ε_θ′(x_t, c_tar) − [ε_0(x_t, c_sur) − η(ε_0(x_t, c_tar) − ε_0(x_t, c_sur))]‖²
        + λ · mean_a ‖ε_θ′(x_t, c_a) − ε_0(x_t, c_a)‖²

    (arXiv 2312.16145, §3.2, erasing loss and latent anchoring; :func:`~obliviate.diffusion.
    functional.spm_erase_target`), θ′ the UNet with the adapter, ε_0 the frozen UNet, x_t
    states of the frozen model's trajectories for the erase prompts, c_sur the request's
    mismatched concept and the anchors c_a the preserve prompts (the paper samples anchors
    from a large prompt vocabulary). Facilitated transport (scaling the adapter per prompt at
    inference) is not implemented: the adapter is merged at strength 1."""

    description = "SPM: one-dimensional adapter, erasing loss + latent anchoring, merged"
    paper = "Lyu+ CVPR 2024, arXiv 2312.16145"
    name = "spm"
    Config = SPMConfig

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.adapter: OneDimAdapter | None = None

    def _erase(self, model, request, gen, progress):
        cfg = self.config
        shapes = linear_shapes(model.unet, cfg.parameters)
        adapter = OneDimAdapter(shapes, cfg.rank, cfg.scale, seed=int(gen.initial_seed()))
        adapter.to(model.device)
        params = [(f"adapter.{k}", p) for k, p in adapter.named_parameters()]
        surrogate = request.mapped(request.mismatched_concept())
        anchors = request.preserve
        unet0 = model.frozen_unet()
        pool = sample_pool(
            model,
            unet0,
            request.prompts,
            max(1, cfg.pool_size),
            cfg.sample_steps,
            cfg.sample_guidance,
            gen,
            trajectory=True,
        )
        emb_t, emb_s = model.encode(request.prompts), model.encode(surrogate)
        emb_a = model.encode(anchors) if anchors else None
        n = len(request.prompts)

        def loss_fn(step: int) -> torch.Tensor:
            j = torch.randint(0, pool["xt"].shape[1], (cfg.batch_size,), generator=gen)
            i = torch.randint(0, pool["xt"].shape[0], (cfg.batch_size,), generator=gen)
            x, t, k = pool["xt"][i, j], pool["t"][i].to(model.device), j % n
            with torch.no_grad():
                target = F.spm_erase_target(
                    model.eps(unet0, x, t, emb_t[k]),
                    model.eps(unet0, x, t, emb_s[k]),
                    cfg.negative_guidance,
                )
            with adapter.attached(model.unet):
                loss = F.mse(model.eps(model.unet, x, t, emb_t[k]), target)
                if emb_a is not None and cfg.anchor_weight:
                    a = torch.randint(0, len(emb_a), (cfg.batch_size,), generator=gen)
                    with torch.no_grad():
                        keep = model.eps(unet0, x, t, emb_a[a])
                    loss = loss + cfg.anchor_weight * F.mse(
                        model.eps(model.unet, x, t, emb_a[a]), keep
                    )
            return loss

        log = train_loop(model, params, cfg.iterations, cfg.lr, loss_fn, progress=progress)
        adapter.requires_grad_(False)
        adapter.merge_into(model.unet)
        self.adapter = adapter
        return self._result(
            train_log=log,
            trainable_params=sum(p.numel() for _, p in params),
            info={"adapted_layers": len(shapes), "surrogate_prompts": surrogate},
            adapter=adapter,
        )
