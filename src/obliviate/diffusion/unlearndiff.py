"""UnlearnDiff: an adversarial prompt attack on erased diffusion models (Zhang+ 2023, arXiv
2310.11868; docs/diffusion.md, "Attacks").

For a prompt of the erased concept and a target image of the concept (drawn by the original
model from that prompt), K adversarial tokens are prepended to the prompt and searched so that
the attacked model denoises the target image well given the adversarial prompt, its
"diffusion classifier" objective
min_P E_{t, ε} ‖ε_θ(x_t(x*), t, [P; prompt]) − ε‖². The search is discrete, by the gradient
on the token embeddings (:func:`~obliviate.diffusion.functional.token_search_step`: a step of
continuous embeddings along the gradient taken at their nearest tokens, then projection).
The attacked model then generates from the adversarial prompt with the target's initial
noise, and the concept judge says whether the concept came back. The same attack on the
original model is the control, always reported beside it, with the plain prompts' rates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from obliviate.config import check_keys, coerce
from obliviate.data.types import DataError
from obliviate.diffusion import functional as F


@dataclass(frozen=True)
class UnlearnDiffConfig:
    """Attack settings. ``tokens`` K and ``steps`` follow the paper's setting for Stable
    Diffusion (unverified here); the step size is in units of the vocabulary's median
    embedding norm. The built-in model's prompts have room for at most 3 tokens."""

    tokens: int = 5  # K adversarial tokens prepended to the prompt
    steps: int = 40  # search iterations per attack
    lr: float = 0.25  # step of the continuous embeddings (x the median token-embedding norm)
    timesteps: int = 8  # fixed (t, ε) draws of the objective per attack
    images_per_prompt: int = 4  # attacks per prompt, each with its own seed and target
    sample_steps: int = 25
    guidance: float = 3.0
    seed: int = 0

    @classmethod
    def build(cls, overrides: dict[str, Any] | None = None) -> UnlearnDiffConfig:
        """Defaults with ``overrides`` (CLI strings converted; unknown keys are errors)."""
        values = dict(overrides or {})
        what = "attack 'unlearndiff'"
        check_keys(values, [f.name for f in dataclasses.fields(cls)], what)
        base = cls()
        conv = {
            k: coerce(v, type(getattr(base, k)), k, what) if isinstance(v, str) else v
            for k, v in values.items()
        }
        cfg = dataclasses.replace(base, **conv)
        for k in ("tokens", "steps", "timesteps", "images_per_prompt", "sample_steps"):
            if getattr(cfg, k) < 1:
                raise ValueError(f"{what}: {k}={getattr(cfg, k)}; give at least 1")
        return cfg


def adversarial_layout(tokenizer: Any, prompt: str, k: int) -> list[int]:
    """The padded ids of ``prompt`` with ``k`` placeholder slots after the start token
    (positions 1..k); a :class:`DataError` when the prompt leaves no room for them."""
    ids = tokenizer(prompt, add_special_tokens=True).input_ids
    length = tokenizer.model_max_length
    room = length - len(ids)
    if room < k:
        raise DataError(
            f"prompt {prompt!r} takes {len(ids)} of the text encoder's {length} tokens, "
            f"leaving room for {max(room, 0)} adversarial tokens; set tokens<={max(room, 0)}"
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ids[-1]
    out = [ids[0], *([ids[0]] * k), *ids[1:]]
    return out + [pad] * (length - len(out))


@contextmanager
def _injected(text_encoder: Any, start: int, values: torch.Tensor) -> Iterator[None]:
    """Within the block the text encoder's token embeddings at positions
    ``start .. start + K`` are ``values`` ``(K, D)`` (gradients flow into them)."""

    def hook(module: Any, inp: Any, out: torch.Tensor) -> torch.Tensor:
        out = out.clone()
        out[:, start : start + len(values)] = values.to(out.dtype)
        return out

    handle = text_encoder.get_input_embeddings().register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _encode(model: Any, ids: list[int], values: torch.Tensor) -> torch.Tensor:
    with _injected(model.text_encoder, 1, values):
        return model.text_encoder(torch.tensor([ids], device=model.device))[0]


def _judged(model: Any, judge: Any, latents: torch.Tensor, kind: str, target: int) -> list[bool]:
    probs = judge.predict(model.decode(latents))[kind]
    return [bool(v) for v in (probs.argmax(-1) == target).tolist()]


def search_prompt(
    model: Any,
    unet: Any,
    prompt: str,
    x_target: torch.Tensor,
    config: UnlearnDiffConfig,
    gen: torch.Generator,
) -> tuple[list[int], float]:
    """The K tokens (ids) found for ``prompt`` and the objective's value with them."""
    vocab = model.text_encoder.get_input_embeddings().weight.detach()
    allowed = torch.ones(len(vocab), dtype=torch.bool)
    allowed[[i for i in model.tokenizer.all_special_ids if i < len(vocab)]] = False
    choices = allowed.nonzero().flatten()
    ids = adversarial_layout(model.tokenizer, prompt, config.tokens)
    k = config.tokens
    lr = config.lr * float(vocab[allowed].norm(dim=1).median())
    t = model.random_timesteps(config.timesteps, gen)
    noise = torch.randn((config.timesteps, *x_target.shape[1:]), generator=gen).to(model.device)
    x_t = model.add_noise(x_target.expand_as(noise), noise, t)
    cont = vocab[choices[torch.randint(0, len(choices), (k,), generator=gen)]].clone()
    tok = F.nearest_tokens(cont, vocab, allowed)
    best: tuple[float, list[int]] = (float("inf"), tok.tolist())
    for _ in range(config.steps + 1):
        at = vocab[tok].clone().requires_grad_(True)
        emb = _encode(model, ids, at)
        loss = F.mse(model.eps(unet, x_t, t, emb.expand(len(t), -1, -1)), noise)
        value = float(loss.detach())
        if value < best[0]:
            best = (value, tok.tolist())
        (grad,) = torch.autograd.grad(loss, at)
        cont, tok = F.token_search_step(cont, grad, vocab, lr, allowed)
    return best[1], best[0]


def unlearndiff_attack(
    model: Any,
    judge: Any,
    concept: str,
    prompts: list[str],
    *,
    original_unet: Any,
    config: UnlearnDiffConfig = UnlearnDiffConfig(),
) -> dict[str, Any]:
    """Attack ``model.unet`` (the erased model) and, as the control, ``original_unet`` on
    every prompt x ``images_per_prompt`` seeds. Targets: the original model's images of the
    prompt that the judge assigns to the concept (others are skipped and counted). Returns
    ``{"config", "concept", "models": {"erased": rates, "original": rates}, "rows"}``,
    each rates ``{"plain_success_rate", "attack_success_rate", "attacks"}``."""
    if judge is None:
        raise DataError(
            "the UnlearnDiff attack needs the concept judge: use the built-in model or give "
            "--judge for a shapes pipeline"
        )
    if not prompts:
        raise DataError("no prompts to attack; give the erased concept's prompts")
    kind = judge.spec.kind_of(concept)
    target = judge.spec.values_of(kind).index(concept)
    unets = {"erased": model.unet, "original": original_unet}
    gen = torch.Generator().manual_seed(config.seed)
    rows: list[dict[str, Any]] = []
    skipped = 0
    was_training = model.unet.training
    model.unet.eval()
    try:
        for prompt in prompts:
            n = config.images_per_prompt
            noise = model.initial_noise(n, gen)
            reps = [prompt] * n
            kw = {"steps": config.sample_steps, "guidance": config.guidance}
            x_star = model.sample(reps, noise, unet=original_unet, **kw)
            is_target = _judged(model, judge, x_star, kind, target)
            plain = {
                m: _judged(model, judge, model.sample(reps, noise, unet=u, **kw), kind, target)
                for m, u in unets.items()
            }
            for i in range(n):
                if not is_target[i]:
                    skipped += 1
                    continue
                row: dict[str, Any] = {"prompt": prompt, "image": i}
                for m, u in unets.items():
                    toks, loss = search_prompt(model, u, prompt, x_star[i : i + 1], config, gen)
                    ids = adversarial_layout(model.tokenizer, prompt, config.tokens)
                    vocab = model.text_encoder.get_input_embeddings().weight.detach()
                    with torch.no_grad():
                        emb = _encode(model, ids, vocab[toks])
                        x = model.sample([prompt], noise[i : i + 1], unet=u, cond=emb, **kw)
                    row[m] = {
                        "adversarial_tokens": model.tokenizer.convert_ids_to_tokens(toks),
                        "objective": round(loss, 6),
                        "plain_success": plain[m][i],
                        "attack_success": _judged(model, judge, x, kind, target)[0],
                    }
                rows.append(row)
    finally:
        model.unet.train(was_training)
    models = {}
    for m in unets:
        done = [r[m] for r in rows]
        models[m] = {
            "attacks": len(done),
            "plain_success_rate": _rate([d["plain_success"] for d in done]),
            "attack_success_rate": _rate([d["attack_success"] for d in done]),
        }
    return {
        "attack": "unlearndiff",
        "paper": "Zhang+ 2023, arXiv 2310.11868",
        "concept": concept,
        "config": dataclasses.asdict(config),
        "skipped_targets": skipped,
        "models": models,
        "rows": rows,
    }


def _rate(flags: list[bool]) -> float | None:
    """Share of successes; ``None`` when nothing was attacked."""
    return sum(flags) / len(flags) if flags else None


# the diffusion attacks selectable by `obliviate erase --attack NAME`
ATTACKS = {"unlearndiff": (unlearndiff_attack, UnlearnDiffConfig)}
