"""Loading, sampling and saving text-to-image diffusion models, tiny or Stable Diffusion.

:class:`DiffusionModel` is the one handle every eraser and the evaluation use. It wraps a
diffusers pipeline and touches it only through public APIs: ``unet`` (a
``UNet2DConditionModel``), ``text_encoder`` + ``tokenizer``, the scheduler's config, and, for
latent models, ``vae``. The same eraser code therefore runs on

- the built-in tiny model, a :class:`TinyTextToImagePipeline` (pixel space, no VAE), and
- Stable Diffusion 1.x/2.x pipelines (latent space, ``StableDiffusionPipeline``) by hub name
  or local folder.

"Latents" below are what the UNet denoises: images in [-1, 1] for the tiny model, VAE latents
for Stable Diffusion.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DiffusionPipeline, ImagePipelineOutput

TINY_PIPELINE_CLASS = "TinyTextToImagePipeline"


def encode_prompts(tokenizer: Any, text_encoder: Any, prompts: list[str]) -> torch.Tensor:
    """Text embeddings ``(B, L, D)`` as Stable Diffusion computes them: pad to the tokenizer's
    ``model_max_length``, truncate, no attention mask, last hidden state."""
    ids = tokenize(tokenizer, prompts).to(text_encoder.device)
    return text_encoder(ids)[0]


def tokenize(tokenizer: Any, prompts: list[str]) -> torch.Tensor:
    """Padded input ids ``(B, model_max_length)``."""
    return tokenizer(
        list(prompts),
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


class TinyTextToImagePipeline(DiffusionPipeline):
    """A text-to-image pipeline without a VAE: UNet2DConditionModel + CLIP text encoder.

    The UNet denoises space-to-depth "latents": an image ``(3, H, W)`` in [-1, 1] is
    ``pixel_unshuffle``-d by ``patch_size`` into ``(3·p², H/p, W/p)`` (a lossless, fixed
    autoencoder); ``patch_size=1`` is plain pixel space. Saved and loaded with the usual
    ``save_pretrained`` / ``from_pretrained`` (of this class, or :func:`load_model`).
    """

    def __init__(
        self, unet: Any, text_encoder: Any, tokenizer: Any, scheduler: Any, patch_size: int = 1
    ) -> None:
        super().__init__()
        self.register_modules(
            unet=unet, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler
        )
        self.register_to_config(patch_size=int(patch_size))

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        num_inference_steps: int = 25,
        guidance_scale: float = 3.0,
        generator: torch.Generator | None = None,
        output_type: str = "pil",
    ) -> ImagePipelineOutput:
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        model = DiffusionModel(self)
        noise = model.initial_noise(len(prompts), generator)
        latents = model.sample(prompts, noise, steps=num_inference_steps, guidance=guidance_scale)
        images = model.decode(latents)
        if output_type == "pt":
            return ImagePipelineOutput(images=images)
        arr = (images.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype("uint8")
        if output_type == "np":
            return ImagePipelineOutput(images=arr)
        from PIL import Image

        return ImagePipelineOutput(images=[Image.fromarray(a) for a in arr])


class DiffusionModel:
    """The handle erasers and evaluation work with (see the module docstring).

    ``unet`` is changed in place by erasers; :meth:`frozen_unet` gives a frozen copy of the
    UNet as it was at that moment (the "original model" ε_0 of ESD and friends).
    """

    def __init__(self, pipe: Any, source: str | None = None) -> None:
        for name in ("unet", "text_encoder", "tokenizer", "scheduler"):
            if getattr(pipe, name, None) is None:
                raise ValueError(
                    f"{source or 'pipeline'}: has no {name!r} component; obliviate "
                    "erases concepts from text-conditioned UNet pipelines "
                    "(Stable Diffusion 1.x/2.x or the built-in tiny model)"
                )
        self.pipe = pipe
        self.source = source
        self.shapes_info: dict[str, Any] | None = None  # the built-in model's spec file, if any
        self.unet = pipe.unet
        self.text_encoder = pipe.text_encoder
        self.tokenizer = pipe.tokenizer
        self.vae = getattr(pipe, "vae", None)
        self.train_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        if (
            getattr(self.unet.config, "prediction_type", None) not in (None, "epsilon")
            or self.train_scheduler.config.prediction_type != "epsilon"
        ):
            raise ValueError(
                f"{source or 'pipeline'}: only epsilon-prediction models are "
                f"supported (got {self.train_scheduler.config.prediction_type!r})"
            )
        self.text_encoder.requires_grad_(False)
        if self.vae is not None:
            self.vae.requires_grad_(False)

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        size = self.unet.config.sample_size
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        return (self.unet.config.in_channels, h, w)

    @property
    def is_latent(self) -> bool:
        return self.vae is not None

    def attention_modules(self) -> dict[str, Any]:
        """The UNet's cross-attention modules (``...attn2``) by name."""
        return {n: m for n, m in self.unet.named_modules() if n.endswith("attn2")}

    # ------------------------------------------------------------------ text
    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        return tokenize(self.tokenizer, prompts)

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> torch.Tensor:
        """Text embeddings ``(B, L, D)`` of the prompts (frozen text encoder)."""
        return encode_prompts(self.tokenizer, self.text_encoder, prompts)

    # ------------------------------------------------------------------ denoising
    def eps(
        self,
        unet: Any,
        latents: torch.Tensor,
        t: torch.Tensor | int,
        emb: torch.Tensor,
        token_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Noise prediction ε(x_t, c, t) of ``unet`` (the model's or a frozen copy);
        ``token_mask`` ``(B, L)`` (1 = visible) hides prompt tokens from cross-attention."""
        if not torch.is_tensor(t) or t.ndim == 0:
            t = torch.full((latents.shape[0],), int(t), device=latents.device, dtype=torch.long)
        if token_mask is None:
            return unet(latents, t, encoder_hidden_states=emb).sample
        return unet(
            latents,
            t,
            encoder_hidden_states=emb,
            encoder_attention_mask=token_mask.to(latents.device, latents.dtype),
        ).sample

    def initial_noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn((n, *self.latent_shape), generator=generator).to(self.device)

    @torch.no_grad()
    def sample(
        self,
        prompts: list[str],
        noise: torch.Tensor,
        *,
        steps: int = 25,
        guidance: float = 3.0,
        unet: Any = None,
        stop_at: int | None = None,
        record: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
        batch_size: int = 256,
        token_mask: torch.Tensor | None = None,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """DDIM sampling (η = 0) with classifier-free guidance from the given initial noise.

        ``stop_at=i`` returns x_t just before denoising step ``i`` (ESD's "run till timestep");
        ``record(i, t, x_t)`` is called before every step. Large batches are split.
        ``token_mask`` ``(B, L)`` hides prompt tokens from the conditional branch's
        cross-attention (see :meth:`eps`). ``cond`` ``(B, L, D)`` replaces the prompts' text
        embeddings (an attack's optimised prompt; ``prompts`` then only count the samples).
        """
        if len(prompts) != len(noise):
            raise ValueError(f"{len(prompts)} prompts but {len(noise)} noise tensors")
        unet = unet if unet is not None else self.unet
        if len(prompts) > batch_size:
            if record is not None:
                raise ValueError("record= needs the whole batch at once; raise batch_size")
            return torch.cat(
                [
                    self.sample(
                        prompts[i : i + batch_size],
                        noise[i : i + batch_size],
                        steps=steps,
                        guidance=guidance,
                        unet=unet,
                        stop_at=stop_at,
                        batch_size=batch_size,
                        token_mask=None if token_mask is None else token_mask[i : i + batch_size],
                        cond=None if cond is None else cond[i : i + batch_size],
                    )
                    for i in range(0, len(prompts), batch_size)
                ]
            )
        sched = DDIMScheduler.from_config(self.pipe.scheduler.config)
        sched.set_timesteps(steps)
        cond = self.encode(prompts) if cond is None else cond.to(self.device)
        uncond = self.encode([""]).expand_as(cond) if guidance != 1.0 else None
        x = noise.to(self.device) * sched.init_noise_sigma
        for i, t in enumerate(sched.timesteps):
            if stop_at is not None and i == stop_at:
                return x
            if record is not None:
                record(i, t, x)
            xin = sched.scale_model_input(x, t)
            if uncond is None:
                e = self.eps(unet, xin, t, cond, token_mask)
            else:
                mask = (
                    None
                    if token_mask is None
                    else torch.cat([torch.ones_like(token_mask), token_mask])
                )
                both = self.eps(unet, torch.cat([xin, xin]), t, torch.cat([uncond, cond]), mask)
                e_u, e_c = both.chunk(2)
                e = e_u + guidance * (e_c - e_u)
            x = sched.step(e, t, x).prev_sample
        return x

    def timesteps(self, steps: int) -> torch.Tensor:
        """The DDIM timesteps of a ``steps``-step sampling run (as :meth:`sample` uses)."""
        sched = DDIMScheduler.from_config(self.pipe.scheduler.config)
        sched.set_timesteps(steps)
        return sched.timesteps

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Forward diffusion q(x_t | x_0) of the training scheduler."""
        return self.train_scheduler.add_noise(x0, noise, t)

    def random_timesteps(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        T = self.train_scheduler.config.num_train_timesteps
        return torch.randint(0, T, (n,), generator=generator).to(self.device)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` in [0, 1]."""
        if self.vae is None:
            p = int(getattr(self.pipe.config, "patch_size", 1) or 1)
            x = torch.nn.functional.pixel_shuffle(latents, p) if p > 1 else latents
            return ((x + 1) / 2).clamp(0, 1).float().cpu()
        out = []
        sf = self.vae.config.scaling_factor
        for i in range(0, len(latents), batch_size):
            img = self.vae.decode(latents[i : i + batch_size] / sf).sample
            out.append(((img + 1) / 2).clamp(0, 1).float().cpu())
        return torch.cat(out)

    # ------------------------------------------------------------------ copies and saving
    def frozen_unet(self) -> Any:
        """A frozen copy of the UNet as it is now (ε_0 of the training-based erasers)."""
        import copy

        ref = copy.deepcopy(self.unet)
        ref.requires_grad_(False)
        ref.eval()
        return ref

    def state_snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.unet.state_dict().items()}

    def restore(self, snapshot: dict[str, torch.Tensor]) -> None:
        self.unet.load_state_dict(snapshot)

    def save(self, path: str | Path) -> Path:
        """``save_pretrained`` (safetensors), plus the built-in model's spec file if any."""
        from obliviate.diffusion.quiet import quiet_loading

        path = Path(path)
        with quiet_loading():
            self.pipe.save_pretrained(path, safe_serialization=True)
        if self.shapes_info is not None:
            from obliviate.diffusion.spec_file import SPEC_FILE
            from obliviate.io import write_json

            write_json(path / SPEC_FILE, self.shapes_info)
        return path


def _pipeline_class_name(path: Path) -> str | None:
    index = path / "model_index.json"
    if not index.is_file():
        return None
    try:
        return json.loads(index.read_text(encoding="utf-8")).get("_class_name")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"{index}: not valid JSON ({exc}); is this a diffusers pipeline folder?"
        ) from exc


def load_model(
    name_or_path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> DiffusionModel:
    """Load a pipeline folder or hub name into a :class:`DiffusionModel`.

    Folders written by the tiny default are loaded with :class:`TinyTextToImagePipeline`;
    anything else goes through ``DiffusionPipeline.from_pretrained`` (safetensors only, no
    custom pipeline code, no safety checker).
    """
    path = Path(name_or_path)
    if path.exists() and not (path / "model_index.json").is_file():
        raise FileNotFoundError(
            f"{path}: no model_index.json; give a diffusers pipeline folder "
            "(written by save_pretrained) or a hub name"
        )
    cls_name = _pipeline_class_name(path) if path.exists() else None
    from obliviate.diffusion.quiet import quiet_loading

    with quiet_loading():
        if cls_name == TINY_PIPELINE_CLASS:
            pipe = TinyTextToImagePipeline.from_pretrained(path, use_safetensors=True)
        else:
            kwargs: dict[str, Any] = {"use_safetensors": True, "dtype": dtype}
            if cls_name is None or "StableDiffusion" in (cls_name or ""):
                kwargs.update(safety_checker=None, requires_safety_checker=False)
            pipe = DiffusionPipeline.from_pretrained(str(name_or_path), **kwargs)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    model = DiffusionModel(pipe, source=str(name_or_path))
    from obliviate.diffusion.spec_file import SPEC_FILE

    if path.exists() and (path / SPEC_FILE).is_file():
        from obliviate.io import read_json

        model.shapes_info = read_json(path / SPEC_FILE)
    return model


def parameters_named(unet: Any, names: Iterable[str]) -> list[torch.nn.Parameter]:
    params = dict(unet.named_parameters())
    return [params[n] for n in names]
