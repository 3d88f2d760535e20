"""Small random models and settings for tests of the diffusion code (imported by tests only).

- :func:`random_tiny_model`: an untrained tiny shapes pipeline (seconds to build);
- :func:`tiny_sd_pipeline`: a random Stable-Diffusion-format folder (VAE, CLIPTokenizer,
  ``StableDiffusionPipeline``), to test the real-pipeline path without downloads;
- :func:`fast_overrides`: hyper-parameters that make any eraser run in about a second.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from obliviate.diffusion.shapes import ShapesSpec

# Any eraser Config field with one of these names is shrunk for tests.
FAST = {
    "iterations": 2,
    "steps": 2,
    "batch_size": 2,
    "pool_size": 2,
    "anchor_images": 2,
    "forget_images": 2,
    "retain_images": 2,
    "images": 2,
    "sample_steps": 3,
    "fisher_samples": 2,
    "surrogate_images": 2,
    "replay_images": 2,
}


def fast_overrides(eraser_cls: Any) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(eraser_cls.Config)}
    return {k: v for k, v in FAST.items() if k in names}


def tiny_test_config(**changes: Any) -> Any:
    """A TinyConfig with half the widths and 2x2 space-to-depth latents (a quarter of the
    pixels: fast, and it exercises the latent path) for random-model tests."""
    from obliviate.diffusion.tiny import TinyConfig

    base = TinyConfig(channels=(16, 32), text_dim=32, n_images=90, steps=1, patch_size=2)
    return dataclasses.replace(base, **changes)


def random_tiny_model(seed: int = 0, spec: ShapesSpec = ShapesSpec()) -> Any:
    """An untrained :class:`~obliviate.diffusion.pipeline.DiffusionModel` of the tiny kind."""
    from obliviate.diffusion.pipeline import DiffusionModel, TinyTextToImagePipeline
    from obliviate.diffusion.tiny import build_components

    comps = build_components(tiny_test_config(seed=seed, spec=spec))
    pipe = TinyTextToImagePipeline(**comps)
    pipe.set_progress_bar_config(disable=True)
    return DiffusionModel(pipe, source="random-tiny")


def clip_tokenizer(words: list[str], folder: str | Path, max_length: int = 12) -> Any:
    """A real ``CLIPTokenizer`` (BPE, ``</w>`` word ends, pad = ``<|endoftext|>`` as in SD 1.x)
    whose merges spell exactly ``words``."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab: dict[str, int] = {}

    def add(tok: str) -> None:
        vocab.setdefault(tok, len(vocab))

    for ch in sorted(set("".join(words))):
        add(ch)
        add(ch + "</w>")
    merges: list[str] = []
    for w in words:
        toks = list(w[:-1]) + [w[-1] + "</w>"]
        while len(toks) > 1:
            merges.append(f"{toks[0]} {toks[1]}")
            toks = [toks[0] + toks[1]] + toks[2:]
            add(toks[0])
    add("<|startoftext|>")
    add("<|endoftext|>")
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(dict.fromkeys(merges)) + "\n", encoding="utf-8"
    )
    return CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=max_length
    )


SD_WORDS = ["a", "photo", "painting", "of", "dog", "cat", "house", "by", "van", "gogh", "monet"]


def tiny_sd_pipeline(folder: str | Path, words: list[str] = SD_WORDS, seed: int = 0) -> Path:
    """Save a random, tiny ``StableDiffusionPipeline`` (latent space, 4 latent channels, VAE
    downsampling 2, 16 px images) to ``folder`` and return it."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    torch.manual_seed(seed)
    tok = clip_tokenizer(words, folder.parent / f".{folder.name}-tokenizer")
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=tok.model_max_length,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        norm_num_groups=8,
        sample_size=16,
    )
    sched = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tok,
        unet=unet,
        scheduler=sched,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    from obliviate.diffusion.quiet import quiet_loading

    with quiet_loading():
        pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def tiny_builtin_folders(root: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """A built-in-format pipeline folder (random weights, shapes spec file) and a judge
    trained for a few steps: the run-folder and CLI plumbing without minutes of training.
    Returns ``(pipeline_dir, judge_dir)``; the scores it gives mean nothing."""
    from obliviate.diffusion.judge import JudgeConfig, save_judge, train_judge

    root = Path(root)
    model = random_tiny_model(seed)
    spec = ShapesSpec()
    model.shapes_info = {"schema": 1, "spec": spec.to_dict(), "train": None}
    model.save(root / "pipeline")
    jc = JudgeConfig(n_images=90, steps=3, batch_size=16, width=8, n_val=18)
    judge, acc = train_judge(spec, jc)
    save_judge(judge, spec, root / "judge", acc, jc)
    return root / "pipeline", root / "judge"
