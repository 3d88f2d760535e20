"""What every unlearning method receives and returns: :class:`UnlearnJob` (the model, its
tokenizer, the request, where to write) and :class:`UnlearnOutput` (docs/methods.md)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obliviate.data.templates import Encoded, PromptTemplate, encode
from obliviate.data.types import QAItem, UnlearningRequest
from obliviate.models.protocol import CausalLM


@dataclass
class UnlearnJob:
    """Everything a method needs: the model to change, its tokenizer, the request and where to
    write. ``model`` is changed in place by gradient methods."""

    model: CausalLM
    tokenizer: Any
    request: UnlearningRequest
    template: PromptTemplate = field(default_factory=PromptTemplate)
    run_dir: Path | None = None
    accelerator: Any = None
    progress: bool = True
    model_path: str | None = None  # where the target came from, when loaded from disk
    stride: int | None = None  # long documents: a token window every `stride` tokens

    _ref_model: Any = None

    def encode_items(self, items: list[QAItem], max_length: int = 512) -> list[Encoded]:
        """QA items with the template; plain documents cut into windows of ``max_length``
        tokens (a new one every ``stride`` tokens), never truncated
        (:func:`obliviate.data.muse.encode_documents`)."""
        if any(it.is_document for it in items):
            from obliviate.data.muse import encode_documents

            return encode_documents(self.tokenizer, items, max_length, self.template, self.stride)
        return [
            encode(self.tokenizer, it.question, it.answer, self.template, max_length)
            for it in items
        ]

    def checkpoint_dir(self, stage: str, enabled: bool = True) -> Path | None:
        """Where the training stage ``stage`` keeps its checkpoints: ``<run>/checkpoint/<stage>``
        (``None`` without a run folder or when ``enabled`` is false; docs/run-format.md)."""
        if self.run_dir is None or not enabled:
            return None
        return self.run_dir / "checkpoint" / stage

    def reference_model(self) -> Any:
        """A frozen copy of the model as it was before unlearning (built once, on demand; a
        term that needs it sets ``needs_reference``, so it is built before training starts)."""
        if self._ref_model is None:
            from obliviate.sharding import is_sharded

            if is_sharded(self.model):
                raise ValueError(
                    "the frozen reference model is built before sharded training starts: the "
                    "term that uses it must set needs_reference = True"
                )
            ref = copy.deepcopy(_unwrap(self.model))
            ref.eval()
            for p in ref.parameters():
                p.requires_grad_(False)
            self._ref_model = ref
        return self._ref_model


@dataclass
class UnlearnOutput:
    """What a method returns: a model-like object ``evaluate()`` accepts, plus bookkeeping."""

    model: Any
    train_log: list[dict[str, float]] = field(default_factory=list)
    trainable_params: int = 0
    stopped: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def write_info(self, run_dir: Path, method: str) -> None:
        """``<run>/method.json``: the method's name and its ``info`` (e.g. the layers and
        subjects an editing method changed; docs/run-format.md)."""
        import json

        from obliviate.io import write_json

        write_json(
            run_dir / "method.json",
            {"method": method, "info": json.loads(json.dumps(self.info, default=str))},
        )


def _unwrap(model: Any) -> Any:
    return getattr(model, "module", model)


def forward(model: CausalLM, batch: dict[str, Any], **kwargs: Any) -> Any:
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs)
