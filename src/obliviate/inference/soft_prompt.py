"""A learned soft prompt in front of every input of a frozen causal LM (prompt tuning, Lester+
2021, arXiv 2104.08691; used for unlearning by SPUL, Bhaila, Van & Wu 2024, arXiv 2406.12038;
docs/methods.md, ``soft_prompt``).

The wrapper holds ``p`` virtual token embeddings φ ``(p, d)`` and runs the base model on
``[φ; E(x)]`` (the embeddings of the input ids after the prompt), with attention mask 1 on the
prompt and position ids ``0..p-1`` for the prompt, ``p + position`` for the real tokens (left
padding does not shift them). The logits of the prompt positions are dropped: ``forward``
returns ``(B, T, V)`` aligned with ``input_ids`` like any model, so every scoring path sees the
prompted model. ``generate`` runs the prompt once into the KV cache, then one token per step.
No weight of the base model changes.

Saved folder: the base model (``base/`` or its path), ``soft_prompt.safetensors`` (``prompt``:
φ) and ``obliviate_wrapper.json`` (``"wrapper": "soft_prompt"``); ``prompt_adapter/`` holds the
same φ as a PEFT prompt-tuning adapter (``adapter_config.json`` + ``adapter_model.safetensors``)
for use with ``peft.PeftModel.from_pretrained(base, folder / "prompt_adapter")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from obliviate.data.templates import PromptTemplate
from obliviate.decoding import cache_argument
from obliviate.inference.base import (
    InferenceWrapper,
    WrapperOutput,
    check_generate_args,
    eos_ids,
    greedy_generate,
    positions,
)

PROMPT_FILE = "soft_prompt.safetensors"
PEFT_FOLDER = "prompt_adapter"


def prompted_inputs(
    prompt: torch.Tensor, embeds: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``[φ; E(x)]`` for a batch: the embeddings ``(B, p + T, d)``, the attention mask
    ``(B, p + T)`` (1 on the prompt) and the position ids ``(B, p + T)``: ``0..p-1`` on the
    prompt, then ``p +`` the positions of the real tokens (:func:`positions`)."""
    b, p = embeds.shape[0], prompt.shape[0]
    phi = prompt.to(embeds.dtype)[None].expand(b, -1, -1)
    ones = mask.new_ones(b, p)
    pos_p = torch.arange(p, device=mask.device)[None].expand(b, -1)
    pos = torch.cat([pos_p, p + positions(mask)], 1)
    return torch.cat([phi, embeds], 1), torch.cat([ones, mask], 1), pos


class SoftPromptModel(InferenceWrapper):
    """A frozen base model behind ``n_tokens`` trainable prompt embeddings (module docstring)."""

    description = "soft prompt: learned virtual tokens prepended to every input, base frozen"
    paper = "Bhaila, Van & Wu 2024 (SPUL), arXiv 2406.12038"
    kind = "soft_prompt"

    def __init__(
        self,
        base: Any,
        tokenizer: Any,
        template: PromptTemplate | None = None,
        n_tokens: int = 30,
        seed: int = 0,
        base_path: str | None = None,
        save_base: str = "copy",
    ) -> None:
        super().__init__(base, tokenizer, template, base_path, save_base)
        if not isinstance(n_tokens, int) or n_tokens < 1:
            raise ValueError(f"soft_prompt n_tokens must be a positive integer, got {n_tokens!r}")
        emb = base.get_input_embeddings().weight
        # initialised from the embeddings of random vocabulary tokens (PEFT's SAMPLE_VOCAB)
        g = torch.Generator().manual_seed(int(seed))
        ids = torch.randint(0, emb.shape[0], (n_tokens,), generator=g).to(emb.device)
        self.prompt = torch.nn.Parameter(emb.detach()[ids].clone().float())
        self.n_tokens = n_tokens
        self.eval()

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        emb: torch.Tensor = self.base.get_input_embeddings()(ids)
        return emb

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        prompt: bool = True,
        **_: Any,
    ) -> WrapperOutput:
        """Logits ``(B, T, V)`` of the prompted model (``prompt=False``: of the base alone)."""
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        if not prompt:
            out = self.base(input_ids=input_ids, attention_mask=mask, position_ids=positions(mask))
            return WrapperOutput(logits=out.logits)
        embeds, full_mask, pos = prompted_inputs(self.prompt, self._embed(input_ids), mask)
        out = self.base(inputs_embeds=embeds, attention_mask=full_mask, position_ids=pos)
        return WrapperOutput(logits=out.logits[:, self.n_tokens :])

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
        name, p = cache_argument(self.base), self.n_tokens

        def step(
            ids: torch.Tensor, m: torch.Tensor, pos: torch.Tensor, past: Any
        ) -> tuple[torch.Tensor, Any]:
            full = torch.cat([m.new_ones(m.shape[0], p), m], 1)
            if past is None:  # the prompt and the input, once
                embeds, full, pos_all = prompted_inputs(self.prompt, self._embed(ids), m)
                out = self.base(
                    inputs_embeds=embeds,
                    attention_mask=full,
                    position_ids=pos_all,
                    use_cache=True,
                    **{name: None},
                )
            else:
                out = self.base(
                    input_ids=ids,
                    attention_mask=full,
                    position_ids=pos + p,
                    use_cache=True,
                    **{name: past},
                )
            return out.logits[:, -1, :], getattr(out, name)

        return greedy_generate(step, input_ids, mask, max_new_tokens, pad, eos)

    # ---- persistence
    def options(self) -> dict[str, Any]:
        return {"n_tokens": self.n_tokens}

    def _save_extra(self, folder: Path) -> dict[str, Any]:
        from safetensors.torch import save_file

        phi = self.prompt.detach().cpu().contiguous()
        save_file({"prompt": phi}, str(folder / PROMPT_FILE))
        self._save_peft(folder / PEFT_FOLDER, phi)
        return {"prompt": PROMPT_FILE, "peft_adapter": PEFT_FOLDER}

    def _save_peft(self, folder: Path, phi: torch.Tensor) -> None:
        """φ as a PEFT prompt-tuning adapter: ``PeftModel.from_pretrained(base, folder)`` runs
        the same prompted model (its logits include the ``p`` prompt positions first)."""
        from peft import PromptTuningConfig, TaskType
        from safetensors.torch import save_file

        cfg = PromptTuningConfig(
            task_type=TaskType.CAUSAL_LM,
            num_virtual_tokens=self.n_tokens,
            token_dim=int(phi.shape[1]),
            num_transformer_submodules=1,
            num_attention_heads=int(getattr(self.config, "num_attention_heads", 1) or 1),
            num_layers=int(getattr(self.config, "num_hidden_layers", 1) or 1),
        )
        local = self.save_base == "path" and self.base_path
        cfg.base_model_name_or_path = str(self.base_path) if local else "../base"
        folder.mkdir(parents=True, exist_ok=True)
        cfg.save_pretrained(str(folder))
        save_file({"prompt_embeddings": phi}, str(folder / "adapter_model.safetensors"))

    def _fingerprint_extra(self) -> dict[str, Any]:
        import hashlib

        blob = self.prompt.detach().cpu().float().numpy().tobytes()
        return {"prompt": hashlib.sha256(blob).hexdigest()[:16]}

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
    ) -> SoftPromptModel:
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
        path = folder / str(spec.get("prompt", PROMPT_FILE))
        if not path.is_file():
            raise DataError(f"{folder}: the soft prompt file {path.name} is missing")
        phi = load_file(str(path))["prompt"]
        if tuple(phi.shape) != tuple(model.prompt.shape):
            raise DataError(
                f"{path}: prompt of shape {tuple(phi.shape)}, expected {tuple(model.prompt.shape)}"
            )
        with torch.no_grad():
            model.prompt.copy_(phi)
        return model
