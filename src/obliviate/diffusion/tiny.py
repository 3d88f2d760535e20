"""The tiny built-in text-to-image model, trained from scratch on CPU.

Components (all standard, saved as a normal diffusers pipeline folder):

- a word-level tokenizer over the caption vocabulary (``tokenizers`` WordLevel wrapped in
  ``PreTrainedTokenizerFast``), padded to 8 tokens like CLIP pads to 77;
- a tiny ``transformers.CLIPTextModel`` (causal, as in Stable Diffusion);
- a ``diffusers.UNet2DConditionModel`` with cross-attention at the lower resolution (down,
  mid and up blocks), epsilon prediction, a cosine noise schedule;
- pixel space by default (``patch_size=1``). ``patch_size=2`` denoises 2x2 space-to-depth
  "latents" (``pixel_unshuffle``, 8x8x12): a third of the cost per step, but measured here it
  learned far slower per CPU-second (eps-MSE about twice as high after the same CPU time), so
  it is not the default;

trained jointly with the usual noise-prediction loss, captions from
:func:`obliviate.diffusion.shapes.training_captions` (10 % empty for classifier-free
guidance), and an exponential moving average of the weights, which is what is saved.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from obliviate.diffusion.shapes import ShapesSpec, iterate_batches, make_dataset, training_captions
from obliviate.diffusion.spec_file import SPEC_FILE

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")


@dataclass(frozen=True)
class TinyConfig:
    """Architecture and training settings of the built-in model (defaults measured on 2 CPU cores: docs/diffusion.md)."""

    spec: ShapesSpec = field(default_factory=ShapesSpec)
    n_images: int = 9000
    steps: int = 2400
    batch_size: int = 32
    lr: float = 2e-3
    warmup: int = 50
    ema_decay: float = 0.995
    p_uncond: float = 0.1
    p_partial: float = 0.2
    channels: tuple[int, int] = (32, 64)
    patch_size: int = 1  # space-to-depth factor of the latent representation (1 = pixels)
    text_dim: int = 64
    text_layers: int = 2
    max_length: int = 8
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["spec"] = self.spec.to_dict()
        d["channels"] = list(self.channels)
        return d


def build_tokenizer(words: list[str], max_length: int = 8) -> Any:
    """A word-level tokenizer: ``<bos> words <eos>``, lower-cased, whitespace split."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>",
        special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=max_length,
    )


def build_components(config: TinyConfig) -> dict[str, Any]:
    """Untrained tokenizer, text encoder, UNet and scheduler (deterministic in ``config.seed``)."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(config.seed)
    tokenizer = build_tokenizer(config.spec.vocabulary(), config.max_length)
    text_config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.text_dim,
        intermediate_size=2 * config.text_dim,
        num_hidden_layers=config.text_layers,
        num_attention_heads=4,
        max_position_embeddings=config.max_length,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        projection_dim=config.text_dim,
    )
    text_encoder = CLIPTextModel(text_config)
    c1, c2 = config.channels
    p = config.patch_size
    if config.spec.size % p:
        raise ValueError(f"image size {config.spec.size} is not divisible by patch_size {p}")
    unet = UNet2DConditionModel(
        sample_size=config.spec.size // p,
        in_channels=3 * p * p,
        out_channels=3 * p * p,
        layers_per_block=1,
        block_out_channels=(c1, c2),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        mid_block_type="UNetMidBlock2DCrossAttn",
        cross_attention_dim=config.text_dim,
        attention_head_dim=16,
        norm_num_groups=8,
    )
    scheduler = DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="epsilon",
        clip_sample=False,
    )
    return {
        "unet": unet,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": scheduler,
        "patch_size": p,
    }


def _lr_at(step: int, config: TinyConfig) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train_tiny_pipeline(
    out_dir: str | Path,
    config: TinyConfig = TinyConfig(),
    log: Callable[[dict[str, Any]], None] | None = None,
    log_every: int = 100,
) -> Path:
    """Train the tiny text-to-image model from scratch and save the pipeline to ``out_dir``.

    Returns ``out_dir``. The saved weights are the EMA weights. ``log`` receives
    ``{"step", "loss", "lr", "elapsed_s"}`` every ``log_every`` steps.
    """
    from obliviate.diffusion.pipeline import TinyTextToImagePipeline, tokenize
    from obliviate.io import write_json

    comps = build_components(config)
    unet, text_encoder, tokenizer, scheduler = (
        comps[k] for k in ("unet", "text_encoder", "tokenizer", "scheduler")
    )
    data = make_dataset(config.n_images, config.spec, seed=config.seed)
    x_all = torch.from_numpy(data.images) * 2 - 1  # pixels; to latents per batch (after flips)
    rng = np.random.default_rng(config.seed + 1)
    gen = torch.Generator().manual_seed(config.seed + 2)
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.01)
    ema_unet, ema_text = copy.deepcopy(unet), copy.deepcopy(text_encoder)
    ema_params = list(ema_unet.parameters()) + list(ema_text.parameters())
    unet.train()
    text_encoder.train()
    start, cpu0, running = time.time(), time.process_time(), []
    batches = iterate_batches(len(data), config.batch_size, rng)
    for step in range(config.steps):
        idx = next(batches)
        sub = type(data)(
            data.images[idx], data.shape_labels[idx], data.colour_labels[idx], data.spec
        )
        captions = training_captions(sub, rng, config.p_uncond, config.p_partial)
        x0 = x_all[idx]
        flip = torch.rand(len(idx), generator=gen) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        x0 = torch.nn.functional.pixel_unshuffle(x0, config.patch_size)
        emb = text_encoder(tokenize(tokenizer, captions))[0]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(idx),), generator=gen)
        pred = unet(scheduler.add_noise(x0, noise, t), t, encoder_hidden_states=emb).sample
        loss = torch.nn.functional.mse_loss(pred, noise)
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, config)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(config.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema_params, params):
                pe.lerp_(p, 1 - decay)
        running.append(loss.item())
        if log is not None and ((step + 1) % log_every == 0 or step + 1 == config.steps):
            log(
                {
                    "step": step + 1,
                    "loss": float(np.mean(running)),
                    "lr": _lr_at(step, config),
                    "elapsed_s": round(time.time() - start, 1),
                    "cpu_s": round(time.process_time() - cpu0, 1),
                }
            )
            running = []
    ema_unet.eval()
    ema_text.eval()
    pipe = TinyTextToImagePipeline(
        unet=ema_unet,
        text_encoder=ema_text,
        tokenizer=tokenizer,
        scheduler=scheduler,
        patch_size=config.patch_size,
    )
    out_dir = Path(out_dir)
    from obliviate.diffusion.quiet import quiet_loading

    with quiet_loading():
        pipe.save_pretrained(out_dir, safe_serialization=True)
    write_json(
        out_dir / SPEC_FILE,
        {
            "schema": 1,
            "spec": config.spec.to_dict(),
            "train": config.to_dict(),
            "train_s": round(time.time() - start, 1),
            "train_cpu_s": round(time.process_time() - cpu0, 1),
        },
    )
    return out_dir


def read_spec(pipeline_dir: str | Path) -> ShapesSpec | None:
    """The shapes spec of a built-in pipeline folder, or ``None`` for any other pipeline."""
    path = Path(pipeline_dir) / SPEC_FILE
    if not path.is_file():
        return None
    from obliviate.io import read_json

    return ShapesSpec.from_dict(read_json(path)["spec"])
