"""Logit offset at inference time: the WHP logit wrapper (Eldan & Russinovich 2023, arXiv
2310.02238; MUSE's ``whos_harry_potter.py``; docs/methods.md).

A *reinforced* model (the target fine-tuned further on the forget set: an expert, or
anti-expert, on exactly what must go) runs beside the base model, and every next-token
distribution uses the generic logits

    v_generic = v_base − α · ReLU(v_reinforced − v_base)

(:func:`obliviate.methods.functional.whp_generic_logits`): tokens the reinforced model pushes
up are pushed down; the others keep the base logits. Scoring and generation both use
``softmax(v_generic)``, so "probability of an answer" is the probability under that combined
distribution. Generation decodes greedily with one KV cache per model.
"""

from __future__ import annotations

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
    load_saved_model,
    positions,
    save_model,
)


class LogitOffsetWrapper(InferenceWrapper):
    """Combines the base model's logits with a reinforced model's (module docstring)."""

    description = "WHP generic logits: base − α·ReLU(reinforced − base)"
    kind = "logit_offset"

    def __init__(
        self,
        base: Any,
        tokenizer: Any,
        template: PromptTemplate | None = None,
        reinforced: Any = None,
        alpha: float = 1.0,
        reinforced_path: str | None = None,
        base_path: str | None = None,
        save_base: str = "copy",
    ) -> None:
        super().__init__(base, tokenizer, template, base_path, save_base)
        if reinforced is None:
            raise ValueError("the logit-offset wrapper needs a reinforced model")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        vb = base.get_output_embeddings().weight.shape[0]
        vr = reinforced.get_output_embeddings().weight.shape[0]
        if vb != vr:
            raise ValueError(
                f"base and reinforced models have different vocabularies ({vb} vs {vr})"
            )
        self.reinforced = reinforced
        for p in self.reinforced.parameters():
            p.requires_grad_(False)
        self.reinforced.eval()
        self.alpha = float(alpha)
        self.reinforced_path = reinforced_path

    def combine(self, base_logits: torch.Tensor, reinforced_logits: torch.Tensor) -> torch.Tensor:
        from obliviate.methods.functional import whp_generic_logits

        return whp_generic_logits(base_logits.float(), reinforced_logits.float(), self.alpha)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: Any
    ) -> WrapperOutput:
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        pos = positions(mask)
        zb = self.base(input_ids=input_ids, attention_mask=mask, position_ids=pos).logits
        zr = self.reinforced(input_ids=input_ids, attention_mask=mask, position_ids=pos).logits
        return WrapperOutput(logits=self.combine(zb, zr))

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
        sb, sr = hf_step(self.base), hf_step(self.reinforced)

        def step(
            ids: torch.Tensor, m: torch.Tensor, pos: torch.Tensor, past: Any
        ) -> tuple[torch.Tensor, Any]:
            pb, pr = past if past is not None else (None, None)
            zb, pb = sb(ids, m, pos, pb)
            zr, pr = sr(ids, m, pos, pr)
            return self.combine(zb, zr), (pb, pr)

        return greedy_generate(step, input_ids, mask, max_new_tokens, pad, eos)

    # ---- persistence
    def options(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def _save_extra(self, folder: Path) -> dict[str, Any]:
        mode = "path" if (self.save_base == "path" and self.reinforced_path) else "copy"
        return {
            "reinforced": save_model(
                self.reinforced, self.tokenizer, folder, "reinforced", mode, self.reinforced_path
            )
        }

    def _fingerprint_extra(self) -> dict[str, Any]:
        from obliviate.models.loading import model_fingerprint

        return {"reinforced": model_fingerprint(self.reinforced)}

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
    ) -> LogitOffsetWrapper:
        reinforced, rpath = load_saved_model(folder, spec["reinforced"], "reinforced")
        return cls(
            base,
            tokenizer,
            template,
            reinforced,
            reinforced_path=rpath,
            base_path=base_path,
            save_base=save_base,
            **spec.get("options", {}),
        )
