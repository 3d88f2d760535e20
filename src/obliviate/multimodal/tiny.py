"""The CPU default vision-language model: a LLaVA-style ``LlavaForConditionalGeneration``
(Liu+ 2023, arXiv 2304.08485: vision tower, a 2-layer MLP projector into the language model's
embedding space, image features in place of the image tokens) built from a tiny CLIP vision
tower and a tiny Llama, trained from scratch, with a ``LlavaProcessor`` (a CLIP image processor
and the built-in byte-level BPE tokenizer with an ``<image>`` token)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from obliviate.models.tiny import train_tokenizer

IMAGE_TOKEN = "<image>"
PATCH = 8

# vision hidden/layers/heads, text hidden/layers/heads/ffn
TINY_VLM_SIZES: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "micro": (32, 1, 2, 64, 2, 2, 128),
    "xs": (64, 2, 2, 128, 2, 4, 512),
    "s": (64, 2, 2, 128, 4, 4, 512),
}


def build_tokenizer(texts: Iterable[str], vocab_size: int = 1000) -> Any:
    """The built-in byte-level BPE tokenizer trained on ``texts``, with the image token."""
    tok = train_tokenizer(texts, vocab_size)
    tok.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    return tok


def build_processor(tokenizer: Any, image_size: int = 32) -> Any:
    """A ``LlavaProcessor``: CLIP image preprocessing at ``image_size`` pixels and ``tokenizer``;
    one image becomes ``(image_size / 8)^2`` image tokens (the patches, CLS dropped)."""
    from transformers import CLIPImageProcessorPil, LlavaProcessor

    images = CLIPImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    )
    return LlavaProcessor(
        image_processor=images,
        tokenizer=tokenizer,
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,
    )


def build_tiny_llava(
    tokenizer: Any, size: str = "xs", image_size: int = 32, max_positions: int = 256, seed: int = 0
) -> Any:
    """A randomly initialised ``LlavaForConditionalGeneration`` of one of
    :data:`TINY_VLM_SIZES` for ``tokenizer`` (which holds :data:`IMAGE_TOKEN`)."""
    import torch
    from transformers import CLIPVisionConfig, LlavaConfig
    from transformers import LlavaForConditionalGeneration as Llava

    from obliviate.models.tiny import llama_config

    if size not in TINY_VLM_SIZES:
        raise ValueError(
            f"unknown tiny vision-language model size {size!r}; choose one of "
            f"{sorted(TINY_VLM_SIZES)}"
        )
    if image_size % PATCH:
        raise ValueError(f"image_size={image_size}: use a multiple of {PATCH}")
    v_hidden, v_layers, v_heads, hidden, layers, heads, ffn = TINY_VLM_SIZES[size]
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    vision = CLIPVisionConfig(
        hidden_size=v_hidden,
        intermediate_size=4 * v_hidden,
        num_hidden_layers=v_layers,
        num_attention_heads=v_heads,
        image_size=image_size,
        patch_size=PATCH,
        projection_dim=v_hidden,
    )
    text = llama_config(tokenizer, (hidden, layers, heads, ffn), max_positions)
    config = LlavaConfig(  # type: ignore[call-arg]  # the stubs name it image_token_index
        vision_config=vision,
        text_config=text,
        image_token_id=image_token_id,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        image_seq_length=(image_size // PATCH) ** 2,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Llava(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model
