"""Checkpoints of the diffusion erasers' own optimisation loop (docs/run-format.md).

:meth:`obliviate.diffusion.eraser_base.Eraser.erase` with a ``checkpoint_dir`` activates
:func:`checkpointing`; every :func:`obliviate.diffusion.eraser_base.train_loop` call inside it is
one stage with its own folder ``<dir>/loop<k>``, saved every ``every`` steps and when it ends
through :mod:`obliviate.checkpoints` (atomic, validated; the trained parameters, the Adam state
and every random stream including the eraser's generator), so an interrupted erasure resumes
bit for bit and a finished loop is not run again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obliviate import checkpoints


@dataclass
class _Active:
    folder: Path
    key: str
    gen: Any
    every: int
    loops: int = 0


_ACTIVE: ContextVar[_Active | None] = ContextVar("obliviate_erase_checkpoint", default=None)


class _Solo:
    """The single-process stand-in for an accelerator that :mod:`obliviate.checkpoints` needs."""

    process_index, is_main_process, num_processes = 0, True, 1

    def wait_for_everyone(self) -> None:
        pass

    def unwrap_model(self, model: Any) -> Any:
        return model


class _Params:
    """The trained parameters as a state dict (all an eraser changes)."""

    def __init__(self, params: list[tuple[str, Any]]) -> None:
        self.params = dict(params)

    def state_dict(self) -> dict[str, Any]:
        return {n: p.detach() for n, p in self.params.items()}

    def load_state_dict(self, state: dict[str, Any], strict: bool = False) -> None:
        import torch

        with torch.no_grad():
            for n, v in state.items():
                self.params[n].copy_(v)


class _NoSchedule:
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@contextmanager
def checkpointing(folder: Path | None, settings: Any, gen: Any, every: int = 100) -> Iterator[None]:
    """Within the block, eraser loops checkpoint under ``folder`` (nothing when ``None``);
    ``settings`` (JSON-able: eraser, configuration, request, seed) keys the checkpoints."""
    if folder is None:
        yield
        return
    key = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
    token = _ACTIVE.set(_Active(Path(folder), key[:16], gen, max(1, every)))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


class LoopCheckpoint:
    """One eraser loop's checkpoints: resume, then save after steps and at the end."""

    def __init__(self, active: _Active, params: list[tuple[str, Any]], steps: int, lr: float):
        active.loops += 1
        self.folder = active.folder / f"loop{active.loops}"
        names = [n for n, _ in params]
        self.key = hashlib.sha256(
            json.dumps([active.key, active.loops, steps, lr, names]).encode()
        ).hexdigest()[:16]
        self.every, self.gens = active.every, {"erase": active.gen}
        self.model, self.acc, self.sched = _Params(params), _Solo(), _NoSchedule()

    def resume(self, opt: Any, desc: str) -> checkpoints.LoopState:
        """The state to continue from (step 0 when there is no valid checkpoint)."""
        got = checkpoints.load_latest(
            self.folder, self.acc, self.model, opt, self.sched, self.gens, self.key, desc
        )
        return got or checkpoints.LoopState()

    def after_step(self, opt: Any, step: int, log: list[dict[str, float]], total: int) -> None:
        """Save after every ``every`` steps and, marked finished, after the last one."""
        if step % self.every and step < total:
            return
        state = checkpoints.LoopState(step=step, log=log, finished=step >= total)
        keep = 1 if state.finished else checkpoints.KEEP
        checkpoints.save(
            self.folder, self.acc, self.model, opt, self.sched, self.gens, state, self.key, keep
        )


def current(params: list[tuple[str, Any]], steps: int, lr: float) -> LoopCheckpoint | None:
    """The checkpoint of a loop starting now, when :func:`checkpointing` is active."""
    active = _ACTIVE.get()
    return LoopCheckpoint(active, params, steps, lr) if active is not None else None
