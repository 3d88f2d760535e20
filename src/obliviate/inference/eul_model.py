"""EUL's unlearning layers around a frozen causal LM (Chen & Yang 2023, arXiv 2310.20150;
docs/methods.md, ``eul``).

An unlearning layer is a bottleneck adapter added after the feed-forward network (the MLP) of
a transformer block: ``h ↦ h + W_up · ReLU(W_down · h + b_down) + b_up`` (paper §3.1), with
``W_up`` and ``b_up`` zero at initialisation, so that a fresh layer is the identity. The layers
act through forward hooks on the base model's MLP modules; every original weight stays frozen
and untouched. The wrapper keeps, per linear map of every layer, the Gram matrix of its
inputs on the forget data (:func:`obliviate.methods.functional.augmented_gram`), which is all
that fusing it with a later request's layer needs (§3.2, :meth:`EULModel.fuse_with`).

Saved folder: the base model (``base/`` or its path), ``eul_layers.safetensors`` (the layer
weights), ``eul_grams.safetensors`` (the Gram matrices) and ``obliviate_wrapper.json``
(``"wrapper": "eul"``); :func:`obliviate.models.loading.load_model` loads it, safetensors
only, no remote code.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from obliviate.data.templates import PromptTemplate
from obliviate.inference.base import (
    InferenceWrapper,
    WrapperOutput,
    check_generate_args,
    eos_ids,
    greedy_generate,
    hf_step,
    positions,
)

LAYERS_FILE = "eul_layers.safetensors"
GRAMS_FILE = "eul_grams.safetensors"
DEFAULT_MODULES = r"\.\d+\.mlp$"


class UnlearningLayer(torch.nn.Module):
    """``h ↦ h + up(ReLU(down(h)))`` with ``up`` zero-initialised (an identity at first).

    While ``record`` holds a boolean mask ``(B, T)``, each call adds the Gram matrices of the
    inputs of ``down`` and ``up`` at the masked positions to ``grams``."""

    def __init__(self, hidden: int, bottleneck: int) -> None:
        super().__init__()
        self.down = torch.nn.Linear(hidden, bottleneck)
        self.up = torch.nn.Linear(bottleneck, hidden)
        torch.nn.init.zeros_(self.up.weight)
        torch.nn.init.zeros_(self.up.bias)
        self.record: torch.Tensor | None = None
        self.grams: dict[str, torch.Tensor] = {}

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = torch.relu(self.down(h.to(self.down.weight.dtype)))
        if self.record is not None:
            from obliviate.methods.functional import augmented_gram

            for key, x in (("down", h), ("up", z)):
                g = augmented_gram(x[self.record].reshape(-1, x.shape[-1]))
                self.grams[key] = self.grams[key] + g if key in self.grams else g
        return h + self.up(z).to(h.dtype)


def find_modules(base: Any, pattern: str) -> list[str]:
    """Names of the modules of ``base`` matching the regex ``pattern`` (the MLP of each block by
    default); one sentence naming examples when none matches."""
    rx = re.compile(pattern)
    names = [n for n, _ in base.named_modules() if n and rx.search(n)]
    if not names:
        examples = ", ".join(n for n, _ in list(base.named_modules())[1:8])
        raise ValueError(
            f"eul modules pattern {pattern!r} matches no module of the model; names look like: "
            f"{examples}"
        )
    return names


class EULModel(InferenceWrapper):
    """A frozen base model with one unlearning layer after each module in ``modules``."""

    description = "EUL: bottleneck unlearning layers after the FFN of each block, base frozen"
    paper = "Chen & Yang 2023 (EUL), arXiv 2310.20150"
    kind = "eul"

    def __init__(
        self,
        base: Any,
        tokenizer: Any,
        template: PromptTemplate | None = None,
        bottleneck: int = 16,
        modules: Sequence[str] | str = DEFAULT_MODULES,
        n_fused: int = 1,
        base_path: str | None = None,
        save_base: str = "copy",
    ) -> None:
        super().__init__(base, tokenizer, template, base_path, save_base)
        if not isinstance(bottleneck, int) or bottleneck < 1:
            raise ValueError(f"eul bottleneck must be a positive integer, got {bottleneck!r}")
        self.module_names = (
            find_modules(base, modules) if isinstance(modules, str) else list(modules)
        )
        hidden = int(base.config.hidden_size)
        self.bottleneck, self.n_fused = bottleneck, int(n_fused)
        param = next(base.parameters())
        self.units: list[UnlearningLayer] = [
            UnlearningLayer(hidden, bottleneck).to(param.device) for _ in self.module_names
        ]
        self.layers = torch.nn.ModuleList(self.units)  # registers them: parameters, state dict
        self.enabled = True
        named = dict(base.named_modules())
        missing = [n for n in self.module_names if n not in named]
        if missing:
            raise ValueError(f"the base model has no module {missing[0]!r} for an EUL layer")
        self._hooks = [
            named[n].register_forward_hook(self._hook(layer))
            for n, layer in zip(self.module_names, self.units)
        ]
        self.eval()

    def _hook(self, layer: UnlearningLayer) -> Any:
        def hook(_module: Any, _args: Any, output: Any) -> Any:
            if not self.enabled or not isinstance(output, torch.Tensor):
                return None
            return layer(output)

        return hook

    def remove_hooks(self) -> None:
        """Detach the layers from the base model (the base then computes the original model)."""
        for h in self._hooks:
            h.remove()
        self._hooks = []

    @contextlib.contextmanager
    def layers_off(self) -> Iterator[None]:
        """Within the block the base model runs without the unlearning layers (the teacher F)."""
        before, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = before

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: Any
    ) -> WrapperOutput:
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        out = self.base(input_ids=input_ids, attention_mask=mask, position_ids=positions(mask))
        return WrapperOutput(logits=out.logits)

    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        max_new_tokens: int = 20,
        do_sample: bool = False,
        use_cache: bool = True,
        pad_token_id: int | None = None,
        eos_token_id: Any = None,
        num_beams: int = 1,
    ) -> torch.Tensor:
        check_generate_args(do_sample, num_beams)
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        pad = pad_token_id if pad_token_id is not None else self.pad_id
        eos = eos_ids(eos_token_id if eos_token_id is not None else self.tokenizer.eos_token_id)
        return greedy_generate(hf_step(self.base), input_ids, mask, max_new_tokens, pad, eos)

    # ---- the statistics and the fusion of §3.2
    @property
    def grams(self) -> dict[str, torch.Tensor]:
        """``{"<layer>.down": G, "<layer>.up": G}`` (empty before :meth:`collect_grams`)."""
        return {f"{i}.{k}": g for i, lay in enumerate(self.units) for k, g in lay.grams.items()}

    def collect_grams(self, batches: Sequence[dict[str, torch.Tensor]]) -> None:
        """Replace the Gram matrices by those of the layers' inputs over the real (attention
        mask 1) tokens of ``batches`` (the request's forget set)."""
        for lay in self.units:
            lay.grams = {}
        try:
            with torch.no_grad():
                for b in batches:
                    mask = b["attention_mask"].bool().to(self.device)
                    for lay in self.units:
                        lay.record = mask
                    self(input_ids=b["input_ids"].to(self.device), attention_mask=mask.long())
        finally:
            for lay in self.units:
                lay.record = None

    def fuse_with(self, others: Sequence[EULModel], ridge: float = 1e-4) -> None:
        """Fuse these layers with those of ``others`` (earlier requests, same base and modules),
        in place: each linear map becomes :func:`~obliviate.methods.functional.fuse_linear` of
        all of them, weighted by their Gram matrices; the Gram matrices are summed, so that
        fusing the result with a later layer equals fusing every layer at once."""
        from obliviate.methods.functional import fuse_linear

        for other in others:
            if other.module_names != self.module_names or other.bottleneck != self.bottleneck:
                raise ValueError(
                    "EUL layers can only be fused with layers on the same modules and of the "
                    f"same bottleneck size ({other.module_names[:2]}..., {other.bottleneck} vs "
                    f"{self.module_names[:2]}..., {self.bottleneck})"
                )
            if not other.grams or not self.grams:
                raise ValueError("EUL fusion needs the Gram matrices of every layer to fuse")
        group = [self, *others]
        with torch.no_grad():
            for i, lay in enumerate(self.units):
                for key in ("down", "up"):
                    lins = [getattr(m.units[i], key) for m in group]
                    gs = [m.units[i].grams[key] for m in group]
                    w, b = fuse_linear([x.weight for x in lins], [x.bias for x in lins], gs, ridge)
                    getattr(lay, key).weight.copy_(w)
                    getattr(lay, key).bias.copy_(b)
                    lay.grams[key] = torch.stack(gs).sum(0)
        self.n_fused = sum(m.n_fused for m in group)

    # ---- persistence
    def options(self) -> dict[str, Any]:
        return {
            "bottleneck": self.bottleneck,
            "modules": self.module_names,
            "n_fused": self.n_fused,
        }

    def _save_extra(self, folder: Path) -> dict[str, Any]:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in self.layers.state_dict().items()}
        save_file(state, str(folder / LAYERS_FILE))
        extra = {"layers": LAYERS_FILE}
        if self.grams:
            save_file(
                {k: v.cpu().contiguous() for k, v in self.grams.items()}, str(folder / GRAMS_FILE)
            )
            extra["grams"] = GRAMS_FILE
        return extra

    def _fingerprint_extra(self) -> dict[str, Any]:
        import hashlib

        h = hashlib.sha256()
        for k, v in sorted(self.layers.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().float().numpy().tobytes())
        return {"layers": h.hexdigest()[:16]}

    @classmethod
    def _build(
        cls,
        base: Any,
        tokenizer: Any,
        template: PromptTemplate,
        spec: dict[str, Any],
        folder: Path,
        base_path: str | None,
        save_base: str,
    ) -> EULModel:
        from safetensors.torch import load_file

        from obliviate.data.types import DataError

        model = cls(
            base,
            tokenizer,
            template,
            base_path=base_path,
            save_base=save_base,
            **spec.get("options", {}),
        )
        path = folder / str(spec.get("layers", LAYERS_FILE))
        if not path.is_file():
            raise DataError(f"{folder}: the EUL layer file {path.name} is missing")
        model.layers.load_state_dict(load_file(str(path)))
        if spec.get("grams"):
            grams = load_file(str(folder / str(spec["grams"])))
            for key, g in grams.items():
                i, part = key.split(".")
                model.units[int(i)].grams[part] = g
        return model
