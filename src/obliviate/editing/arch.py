"""Module mapping for editing: where the MLP output projection of each decoder block lives.

Locate-then-edit methods treat the MLP's output projection ``W`` of a block as a linear
associative memory: its input at a token is the *key* k (the MLP's hidden activation) and its
output ``W·k (+ b)`` the *value* v that is added to the residual stream.

| ``config.model_type`` | decoder blocks | edited projection | weight layout |
|---|---|---|---|
| llama, mistral, qwen2, qwen3 | ``model.layers`` | ``mlp.down_proj`` | ``nn.Linear``, (d_out, d_in) |
| gpt2 | ``transformer.h`` | ``mlp.c_proj`` | ``Conv1D``, (d_in, d_out) |
| gpt_neox | ``gpt_neox.layers`` | ``mlp.dense_4h_to_h`` | ``nn.Linear``, (d_out, d_in) |

Another architecture is added with one :data:`ARCHITECTURES` entry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class ArchSpec:
    layers: str  # attribute path from the causal LM to the ModuleList of decoder blocks
    down_proj: str  # attribute path from a block to the MLP output projection
    conv1d: bool = False  # weight stored as (d_in, d_out) (GPT-2 Conv1D)


_LLAMA_LIKE = ArchSpec("model.layers", "mlp.down_proj")
ARCHITECTURES: dict[str, ArchSpec] = {
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "gpt2": ArchSpec("transformer.h", "mlp.c_proj", conv1d=True),
    "gpt_neox": ArchSpec("gpt_neox.layers", "mlp.dense_4h_to_h"),
}


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


class EditableModel:
    """An HF causal LM seen through its :class:`ArchSpec`."""

    def __init__(self, model: Any) -> None:
        if hasattr(model, "peft_config"):
            raise ValueError(
                "model editing needs a plain model: merge the PEFT adapter first "
                "(model.merge_and_unload())"
            )
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        if model_type not in ARCHITECTURES:
            raise ValueError(
                f"model editing has no module mapping for architecture {model_type!r}; supported: "
                f"{', '.join(sorted(ARCHITECTURES))}. Add an entry to "
                "obliviate.editing.arch.ARCHITECTURES (decoder-block list path, MLP output "
                "projection path, weight layout)"
            )
        self.model = model
        self.spec = ARCHITECTURES[model_type]
        self.model_type = model_type
        try:
            self.blocks = _get(model, self.spec.layers)
            self.down(0)
        except AttributeError as exc:
            raise ValueError(
                f"{model_type} model does not have the expected modules ({self.spec.layers}[i]."
                f"{self.spec.down_proj}): {exc}"
            ) from exc

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    def down(self, layer: int) -> Any:
        if not 0 <= layer < len(self.blocks):
            raise ValueError(
                f"layer {layer} is out of range: the model has {len(self.blocks)} layers"
            )
        return _get(self.blocks[layer], self.spec.down_proj)

    def weight(self, layer: int) -> torch.Tensor:
        """The projection's weight as (d_out, d_in), a view of the parameter."""
        w = self.down(layer).weight
        return w.T if self.spec.conv1d else w

    def key_dim(self, layer: int) -> int:
        return int(self.weight(layer).shape[1])

    @torch.no_grad()
    def add_to_weight(self, layer: int, delta: torch.Tensor) -> None:
        """W ← W + Δ with Δ of shape (d_out, d_in)."""
        w = self.down(layer).weight
        d = delta.T if self.spec.conv1d else delta
        if d.shape != w.shape:
            raise ValueError(f"update shape {tuple(delta.shape)} does not fit layer {layer}")
        w.add_(d.to(w.dtype))

    def embeddings(self) -> Any:
        return self.model.get_input_embeddings()


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _replace_first(output: Any, new: torch.Tensor) -> Any:
    if isinstance(output, tuple):
        return (new,) + tuple(output[1:])
    return new


def _rows_pos(positions: Sequence[int], device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.arange(len(positions), device=device), torch.tensor(list(positions), device=device)


@contextlib.contextmanager
def capture_io(
    module: Any, positions: Sequence[int], store: dict[str, torch.Tensor]
) -> Iterator[None]:
    """Record the module's input (``store["key"]``) and output (``store["value"]``) at one
    position per batch row: tensors of shape (batch, d)."""

    def pre(_m: Any, args: tuple) -> None:
        if not args:  # hidden states passed by keyword: no key to record
            return
        x = args[0]
        r, p = _rows_pos(positions, x.device)
        store["key"] = x[r, p].detach()

    def post(_m: Any, _args: tuple, out: Any) -> None:
        y = _first(out)
        r, p = _rows_pos(positions, y.device)
        store["value"] = y[r, p].detach()

    h1 = module.register_forward_pre_hook(pre)
    h2 = module.register_forward_hook(post)
    try:
        yield
    finally:
        h1.remove()
        h2.remove()


@contextlib.contextmanager
def patch_output(
    module: Any,
    positions: Sequence[int],
    delta: torch.Tensor | None = None,
    replace: torch.Tensor | None = None,
) -> Iterator[None]:
    """Add ``delta`` (d,) or (batch, d) to, or ``replace`` (batch, d) the module's output at one
    position per batch row (differentiable in ``delta``)."""

    def post(_m: Any, _args: tuple, out: Any) -> Any:
        y = _first(out)
        r, p = _rows_pos(positions, y.device)
        y = y.clone()
        if replace is not None:
            y[r, p] = replace.to(y.dtype)
        if delta is not None:
            y[r, p] = y[r, p] + delta.to(y.dtype)
        return _replace_first(out, y)

    h = module.register_forward_hook(post)
    try:
        yield
    finally:
        h.remove()


@contextlib.contextmanager
def collect_inputs(
    modules: dict[int, Any], mask: torch.Tensor, store: dict[int, list[torch.Tensor]]
) -> Iterator[None]:
    """Append every real token's input vector of each module (keys) to ``store[layer]``."""
    handles = []
    for layer, module in modules.items():

        def pre(_m: Any, args: tuple, layer: int = layer) -> None:
            store.setdefault(layer, []).append(args[0][mask.bool()].detach().float())

        handles.append(module.register_forward_pre_hook(pre))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
