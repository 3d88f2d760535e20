"""What every diffusion eraser shares (docs/diffusion.md): the :class:`ErasureRequest`, the
:class:`EraseResult`, parameter selection, the frozen model's sample pool, the training loop and
the :class:`Eraser` base class that builds a typed ``Config`` from defaults, a preset and
overrides. The erasers themselves are in :mod:`obliviate.diffusion.methods`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from obliviate.checkpoints import LoopState, kill_point
from obliviate.config import check_keys, coerce
from obliviate.data.types import DataError
from obliviate.diffusion import functional as F
from obliviate.diffusion.eraser_checkpoint import checkpointing, current
from obliviate.diffusion.eraser_presets import PRESETS
from obliviate.seeding import seed_everything

PARAMETER_SETS = ("xattn", "xattn-kv", "noxattn", "all")


# ----------------------------------------------------------------------------- the request


@dataclass
class ErasureRequest:
    """What to erase and what to keep.

    - ``concept``: the word or phrase to erase ("red", "Van Gogh").
    - ``prompts``: prompts that express the concept, the methods' training prompts; each must
      contain ``concept`` as whole words. Default: ``[concept]``.
    - ``preserve``: prompts whose outputs must stay (UCE's preserve set, SalUn's retain set);
      none may contain the concept.
    - ``anchor``: what replaces the concept in a prompt for CA's anchor, UCE's guide and
      SalUn's mismatched concept; ``""`` removes the concept word; ``None`` lets each method
      use its default: ``superclass`` for CA and UCE, the next alternative for SalUn.
    - ``superclass``: the default anchor/guide of CA and UCE: a more general word ("shape"
      for "circle", "painting" for a style) or ``""`` (remove the word: "a red circle" ->
      "a circle", the unconditional guide of UCE for objects).
    - ``alternatives``: concepts of the same kind, in order (SalUn's default mismatched
      concept is the one after ``concept``, as (k + 1) mod K in the paper).
    """

    concept: str
    prompts: list[str] = field(default_factory=list)
    preserve: list[str] = field(default_factory=list)
    anchor: str | None = None
    superclass: str = ""
    alternatives: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.concept = self.concept.strip()
        if not self.concept:
            raise DataError("the concept to erase is empty; give a word or phrase such as 'red'")
        if not self.prompts:
            self.prompts = [self.concept]
        for i, p in enumerate(self.prompts):
            if not F.contains_concept(p, self.concept):
                raise DataError(
                    f"erase prompt {i} {p!r} does not contain the concept "
                    f"{self.concept!r}; every erase prompt must name it"
                )
        for i, p in enumerate(self.preserve):
            if F.contains_concept(p, self.concept):
                raise DataError(
                    f"preserve prompt {i} {p!r} contains the concept "
                    f"{self.concept!r}; remove it from the preserve set"
                )

    def mapped(self, anchor: str) -> list[str]:
        """The erase prompts with the concept replaced by ``anchor``."""
        return [F.anchor_prompt(p, self.concept, anchor) for p in self.prompts]

    def anchor_or_superclass(self) -> str:
        return self.anchor if self.anchor is not None else self.superclass

    def mismatched_concept(self) -> str:
        if self.anchor is not None:
            return self.anchor
        if self.alternatives:
            if self.concept in self.alternatives:
                k = self.alternatives.index(self.concept)
                others = self.alternatives[k + 1 :] + self.alternatives[:k]
            else:
                others = list(self.alternatives)
            if others:
                return others[0]
        return ""


@dataclass
class EraseResult:
    """What an eraser reports: its log and bookkeeping (the model was changed in place)."""

    method: str
    config: dict[str, Any]
    train_log: list[dict[str, float]] = field(default_factory=list)
    trainable_params: int = 0
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    adapter: Any = None  # a trained adapter with ``save(folder)`` (SPM); the run saves it


# ----------------------------------------------------------------------------- helpers


def select_parameters(unet: Any, which: str) -> list[tuple[str, torch.nn.Parameter]]:
    """Named UNet parameters of a parameter set (the ESD code's definitions,
    ``rohitgandikota/erasing, esd_sd.py``):

    - ``xattn``: Linear/Conv2d layers inside cross-attention (``attn2``) — esd-x;
    - ``xattn-kv``: only the cross-attention key and value projections — esd-x-strict, CA, UCE;
    - ``noxattn``: every Linear/Conv2d layer outside cross-attention — esd-u;
    - ``all``: every UNet parameter.
    """
    if which not in PARAMETER_SETS:
        raise ValueError(
            f"unknown parameter set {which!r}; choose one of {', '.join(PARAMETER_SETS)}"
        )
    if which == "all":
        return list(unet.named_parameters())
    out: list[tuple[str, torch.nn.Parameter]] = []
    for mname, module in unet.named_modules():
        if not isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            continue
        in_x = ".attn2." in f".{mname}."
        keep = (
            (which == "xattn" and in_x)
            or (which == "noxattn" and not in_x)
            or (which == "xattn-kv" and (mname.endswith(("attn2.to_k", "attn2.to_v"))))
        )
        if keep:
            out.extend((f"{mname}.{n}", p) for n, p in module.named_parameters(recurse=False))
    if not out:
        raise ValueError(f"the UNet has no parameters in set {which!r}")
    return out


def concept_token_mask(model: Any, prompts: list[str], concept: str) -> torch.Tensor:
    """``(B, L)`` bool mask of the concept's tokens in each padded prompt."""
    ids = model.tokenize(prompts)
    sub = model.tokenizer(concept, add_special_tokens=False).input_ids
    mask = torch.zeros(ids.shape, dtype=torch.bool)
    for i, row in enumerate(ids.tolist()):
        start = F.find_subsequence(row, sub)
        if start < 0:
            raise DataError(
                f"prompt {prompts[i]!r}: the concept {concept!r} (tokens {sub}) is "
                "not a token subsequence of the tokenized prompt; rephrase the "
                "prompt or the concept so that they tokenize alike"
            )
        mask[i, start : start + len(sub)] = True
    return mask


def _repeat(prompts: list[str], n: int) -> list[str]:
    return [prompts[i % len(prompts)] for i in range(n)]


@torch.no_grad()
def sample_pool(
    model: Any,
    unet: Any,
    prompts: list[str],
    n: int,
    steps: int,
    guidance: float,
    gen: torch.Generator,
    trajectory: bool = False,
) -> dict[str, Any]:
    """``n`` samples of the (frozen) ``unet`` for the prompts, cycled.

    Returns ``{"prompts", "x0"}`` and, with ``trajectory=True``, ``"xt"`` ``(steps, n, ...)``
    and ``"t"`` ``(steps,)``: the DDIM states before each denoising step (ESD's x_t).
    """
    reps = _repeat(prompts, n)
    noise = model.initial_noise(n, gen)
    states: list[torch.Tensor] = []
    ts: list[int] = []

    def rec(i: int, t: torch.Tensor, x: torch.Tensor) -> None:
        states.append(x.clone())
        ts.append(int(t))

    x0 = model.sample(
        reps,
        noise,
        steps=steps,
        guidance=guidance,
        unet=unet,
        record=rec if trajectory else None,
        batch_size=max(n, 1),
    )
    out: dict[str, Any] = {"prompts": reps, "x0": x0}
    if trajectory:
        out["xt"] = torch.stack(states)
        out["t"] = torch.tensor(ts)
    return out


def noised_batch(
    model: Any, x_all: torch.Tensor, batch_size: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``batch_size`` random images of ``x_all`` noised at random timesteps (the diffusion
    training input): returns ``(x_t, noise, t, indices)``."""
    j = torch.randint(0, len(x_all), (batch_size,), generator=gen)
    x0 = x_all[j]
    noise = torch.randn(x0.shape, generator=gen).to(model.device)
    t = model.random_timesteps(len(j), gen)
    return model.add_noise(x0, noise, t), noise, t, j


def train_loop(
    model: Any,
    params: list[tuple[str, torch.nn.Parameter]],
    steps: int,
    lr: float,
    loss_fn: Callable[[int], torch.Tensor],
    grad_mask: dict[str, torch.Tensor] | None = None,
    progress: Callable[[dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Adam (no weight decay) on ``params`` only; ``grad_mask`` zeroes masked gradient entries,
    so masked weights stay exactly unchanged. Returns the per-step log."""
    unet = model.unet
    unet.requires_grad_(False)
    for _, p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam([p for _, p in params], lr=lr)
    unet.train()
    ck = current(params, steps, lr)  # a checkpointed erasure (docs/run-format.md)
    state = ck.resume(opt, "erasing") if ck is not None else LoopState()
    log: list[dict[str, float]] = state.log
    try:
        for step in range(state.step, steps):
            loss = loss_fn(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_mask is not None:
                for n, p in params:
                    if p.grad is not None:
                        p.grad.mul_(grad_mask[n])
            opt.step()
            row = {"step": step + 1, "loss": float(loss.detach())}
            log.append(row)
            if progress is not None:
                progress(row)
            kill_point("step", step + 1)
            if ck is not None:
                ck.after_step(opt, step + 1, log, steps)
    finally:
        unet.eval()
        unet.requires_grad_(False)
    return log


def _count(params: list[tuple[str, torch.nn.Parameter]]) -> int:
    return sum(p.numel() for _, p in params)


# ----------------------------------------------------------------------------- base class


class Eraser:
    """Base class: ``Config`` (a dataclass of hyper-parameters) and :meth:`erase`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""  # one line, shown by `obliviate ls erasers`
    paper: ClassVar[str] = ""
    kind: ClassVar[str] = "trainer"  # or "closed-form"
    Config: ClassVar[type] = object
    edits: ClassVar[str] = "all"  # the parameter set changed, when the config has none

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()

    @property
    def parameter_set(self) -> str:
        """The :data:`PARAMETER_SETS` entry this eraser may change."""
        return getattr(self.config, "parameters", self.edits)

    @classmethod
    def build(cls, overrides: dict[str, Any] | None = None, preset: str | None = None) -> Eraser:
        """An eraser with the paper defaults, then the preset's values, then ``overrides``.
        Unknown keys are errors; string values (from the CLI) are converted to the field type."""
        values: dict[str, Any] = {}
        if preset is not None:
            if preset not in PRESETS:
                raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
            values.update(PRESETS[preset].get(cls.name, {}))
        values.update(overrides or {})
        what = f"eraser {cls.name!r}"
        check_keys(values, [f.name for f in dataclasses.fields(cls.Config)], what)
        defaults = cls.Config()
        conv = {k: _convert(k, v, getattr(defaults, k), what) for k, v in values.items()}
        config = dataclasses.replace(defaults, **conv)
        if getattr(config, "parameters", PARAMETER_SETS[0]) not in PARAMETER_SETS:
            raise ValueError(
                f"{cls.name}: parameters={config.parameters!r}; choose one of "
                f"{', '.join(PARAMETER_SETS)}"
            )
        return cls(config)

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    def erase(
        self,
        model: Any,
        request: ErasureRequest,
        *,
        seed: int = 0,
        progress: Callable[[dict[str, float]], None] | None = None,
        checkpoint_dir: Path | None = None,
        checkpoint_every: int = 100,
    ) -> EraseResult:
        """Erase ``request`` from ``model`` in place. With ``checkpoint_dir`` every optimisation
        loop saves its state there every ``checkpoint_every`` steps and an interrupted erasure
        resumes from it (the caller removes the folder once the result is saved)."""
        start = time.time()
        seed_everything(seed)
        gen = torch.Generator().manual_seed(seed)
        settings = [self.name, self.config_dict(), dataclasses.asdict(request), seed]
        with checkpointing(checkpoint_dir, settings, gen, checkpoint_every):
            result = self._erase(model, request, gen, progress)
        result.seconds = round(time.time() - start, 2)
        return result

    def _erase(
        self,
        model: Any,
        request: ErasureRequest,
        gen: torch.Generator,
        progress: Callable[[dict[str, float]], None] | None,
    ) -> EraseResult:
        raise NotImplementedError

    def _preserving(self, request: ErasureRequest) -> bool:
        """Whether the preservation term is on; a weight without preserve prompts is an error."""
        weight = getattr(self.config, "preserve_weight", 0.0)
        if weight > 0 and not request.preserve:
            raise DataError(
                f"{self.name}: preserve_weight={weight} needs preserve prompts "
                "(--preserve TEXT, repeatable); give some or set preserve_weight=0"
            )
        return weight > 0

    def _result(self, **kw: Any) -> EraseResult:
        return EraseResult(method=self.name, config=self.config_dict(), **kw)


def _convert(key: str, value: Any, default: Any, what: str) -> Any:
    """A CLI string converted to the type of the field's default (strings stay strings)."""
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value
    return coerce(value, type(default), key, what)
