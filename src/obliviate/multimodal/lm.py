"""Run a vision-language model through obliviate's text engine.

Scoring (:func:`obliviate.scoring.score_encoded`), generation
(:func:`obliviate.generation.generate_ids`), the trainer and every gradient method's loss call
a model on token ids only. :class:`VisionLM` makes a Hugging Face vision-language model such a
model: the image positions of a prompt hold *image references*, negative ids ``-(1 + key)``,
one per image token, where ``key`` names an image in an :class:`ImageBank` (its processor
output: ``pixel_values`` and whatever else the processor gives, e.g. ``image_grid_thw``).
:meth:`VisionLM.forward` swaps each reference for the model's image token and passes the
referenced images' tensors, in the order their tokens occur, which is how every
``*ForConditionalGeneration`` model places image features. Text-only rows carry no reference and
run as plain text. Encoded items therefore stay lists of ints, and collation, padding, joint
forward passes, reference models and KV-cached decoding need no change.
"""

from __future__ import annotations

from typing import Any

import torch


class ImageBank:
    """The processor outputs of the images a run uses, each stored once under an integer key.

    Shared, never copied: a deep copy of a :class:`VisionLM` (the frozen reference model of a
    method) uses the same bank."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        tokenizer = processor.tokenizer
        self.image_token: str = processor.image_token
        self.image_token_id = int(tokenizer.convert_tokens_to_ids(self.image_token))
        self._keys: dict[str, int] = {}
        self._tensors: list[dict[str, torch.Tensor]] = []
        self._lengths: list[int] = []

    def __len__(self) -> int:
        return len(self._tensors)

    def __deepcopy__(self, memo: dict[int, Any]) -> ImageBank:
        return self

    def add(self, image_id: str, image: Any) -> tuple[int, int]:
        """The key of ``image`` (processed once per ``image_id``) and its number of image
        tokens."""
        if image_id in self._keys:
            key = self._keys[image_id]
            return key, self._lengths[key]
        out = self.processor(images=[image], text=[self.image_token], return_tensors="pt")
        n = int((out["input_ids"] == self.image_token_id).sum())
        if n == 0:
            raise ValueError(
                f"the processor turned image {image_id!r} into no {self.image_token!r} token; "
                "the model cannot be given images this way"
            )
        tensors = {k: v for k, v in out.items() if k not in ("input_ids", "attention_mask")}
        key = len(self._tensors)
        self._keys[image_id] = key
        self._tensors.append(tensors)
        self._lengths.append(n)
        return key, n

    def length(self, key: int) -> int:
        return self._lengths[key]

    def inputs(self, keys: list[int], device: Any, dtype: Any) -> dict[str, torch.Tensor]:
        """The images ``keys`` as one batch of model inputs (concatenated along dim 0;
        floating tensors cast to ``dtype``)."""
        out: dict[str, torch.Tensor] = {}
        for name in self._tensors[keys[0]]:
            t = torch.cat([self._tensors[k][name] for k in keys]).to(device)
            out[name] = t.to(dtype) if t.is_floating_point() else t
        return out


def reference_ids(key: int, n: int) -> list[int]:
    """The ``n`` token ids that stand for image ``key`` in a prompt."""
    return [-(1 + key)] * n


class VisionLM(torch.nn.Module):
    """A Hugging Face vision-language model called like a causal LM on ids with image
    references (module docstring). ``save_pretrained`` saves the underlying model with its
    processor; ``vlm.config`` is its full config."""

    def __init__(self, vlm: Any, bank: ImageBank) -> None:
        super().__init__()
        self.vlm = vlm
        self.bank = bank
        # the language model's config (vocab_size, max_position_embeddings): what the text
        # engine reads from a causal LM's config
        self.config = vlm.config.get_text_config()

    @property
    def device(self) -> Any:
        return self.vlm.device

    @property
    def generation_config(self) -> Any:
        return self.vlm.generation_config

    def resolve(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``input_ids`` with the model's image token at every reference, and the referenced
        images' inputs in token order."""
        refs = input_ids < 0
        if not bool(refs.any()):
            return input_ids, {}
        flat = (-input_ids[refs] - 1).tolist()
        keys, i = [], 0
        while i < len(flat):
            key = int(flat[i])
            n = self.bank.length(key)
            if flat[i : i + n] != [key] * n:
                raise ValueError(
                    f"image {key} needs {n} consecutive image tokens in a prompt; encode image "
                    "items with obliviate.multimodal.encoding"
                )
            keys.append(key)
            i += n
        dtype = next(self.vlm.parameters()).dtype
        ids = input_ids.masked_fill(refs, self.bank.image_token_id)
        return ids, self.bank.inputs(keys, input_ids.device, dtype)

    def forward(self, input_ids: torch.Tensor, attention_mask: Any = None, **kwargs: Any) -> Any:
        ids, images = self.resolve(input_ids)
        return self.vlm(input_ids=ids, attention_mask=attention_mask, **images, **kwargs)

    def generate(self, input_ids: torch.Tensor, attention_mask: Any = None, **kwargs: Any) -> Any:
        ids, images = self.resolve(input_ids)
        return self.vlm.generate(input_ids=ids, attention_mask=attention_mask, **images, **kwargs)

    def save_pretrained(self, path: Any, **kwargs: Any) -> None:
        """The underlying model's ``save_pretrained`` and its processor's (image processor,
        tokenizer): the folder loads back with :func:`obliviate.multimodal.loading.load_vlm`."""
        self.vlm.save_pretrained(path, **kwargs)
        self.bank.processor.save_pretrained(path)
