"""Fine-tune a vision-language model on QA items (with and without images) through the one
trainer (:func:`obliviate.training.train_loop`, token-mean NLL of the answers), and build the
built-in target and retain models from scratch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obliviate.config import TrainConfig
from obliviate.data.collate import pad_id_of
from obliviate.data.templates import PromptTemplate
from obliviate.data.types import QAItem
from obliviate.multimodal.encoding import encode_items
from obliviate.multimodal.lm import ImageBank, VisionLM
from obliviate.multimodal.people import People, corpus_text, training_items

# Training defaults of the built-in target and retain models, measured (docs/multimodal.md): the
# "xs" model on 8 + 2 people (190 items) reaches MCQ, ROUGE-L and cloze 1.0 on every trained set
# in 30 epochs (180 steps, 2 minutes on one busy core).
TINY_VLM_TRAIN = {
    "lr": 3e-3,
    "epochs": 30,
    "batch_size": 32,
    "warmup_epochs": 1,
    "scheduler": "cosine",
    "checkpoint": False,
}


def finetune_vlm(
    model: VisionLM,
    tokenizer: Any,
    items: Sequence[QAItem],
    cfg: TrainConfig,
    template: PromptTemplate | None = None,
    progress: bool = False,
) -> list[dict[str, float]]:
    """Train ``model`` in place on ``items``; returns the training log."""
    from obliviate.methods import functional as F
    from obliviate.training import train_loop

    encoded = encode_items(
        model.bank, tokenizer, items, template or PromptTemplate(), cfg.max_length
    )

    def loss(m: Any, batch: dict, _retain: Any, _step: int) -> tuple[Any, dict]:
        logits = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return F.nll_loss(logits, batch["labels"]), {}

    result = train_loop(
        model, loss, encoded, cfg, pad_id_of(tokenizer), desc="fine-tuning", progress=progress
    )
    return result.log


@dataclass
class BuiltinModels:
    target: VisionLM
    retain: VisionLM
    tokenizer: Any
    processor: Any


def train_builtin_models(
    people: People,
    size: str = "xs",
    train: dict[str, Any] | None = None,
    out: str | Path | None = None,
    progress: bool = False,
    seed: int = 0,
) -> BuiltinModels:
    """Train the built-in tokenizer, then a target (every person) and a retain model (every
    person but the forget people) from the same initialisation; saved under ``out/target`` and
    ``out/retain`` (safetensors ``save_pretrained`` folders with the processor) when given."""
    from obliviate.config import from_dict
    from obliviate.multimodal.loading import save_vision_lm
    from obliviate.multimodal.tiny import build_processor, build_tiny_llava, build_tokenizer

    cfg = from_dict(TrainConfig, {**TINY_VLM_TRAIN, "seed": seed, **(train or {})}, "train")
    tok = build_tokenizer(corpus_text(people))
    processor = build_processor(tok, people.image_size)
    bank = ImageBank(processor)
    keep = people.retain_people + people.real_people
    models = []
    for persons in (people.people, keep):
        model = VisionLM(build_tiny_llava(tok, size, people.image_size, seed=seed), bank)
        finetune_vlm(model, tok, training_items(people, persons), cfg, progress=progress)
        models.append(model)
    if out is not None:
        for name, model in zip(("target", "retain"), models):
            save_vision_lm(model, Path(out) / name)
    return BuiltinModels(models[0], models[1], tok, processor)
