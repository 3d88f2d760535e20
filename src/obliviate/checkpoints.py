"""Atomic, validated training checkpoints (the layout is documented in docs/run-format.md).

A checkpoint folder ``<dir>/step-<N>/`` holds the weights (``model.safetensors``), the
optimiser and schedule (``optim.pt``), one random-state file per process (``rng_<rank>.pt``:
torch CPU and CUDA, numpy, python ``random`` and the trainer's own generators) and, written
last, ``manifest.json`` (step, epoch, position in the epoch, run key, every file with its size
and sha256). Each checkpoint is written into a temporary sibling ``.tmp-step-<N>``, every file
and the folder are fsynced, then the folder is renamed into place; the last ``KEEP`` good
checkpoints are kept. On resume the newest checkpoint whose manifest validates is loaded; one
that does not is skipped with a one-line message saying why. Only safetensors and
``torch.load(weights_only=True)`` are read: nothing is unpickled. A sharded model
(``train.shard=fsdp``) is saved in the same unsharded form, gathered to rank 0, and each rank
takes its shard back on resume (:mod:`obliviate.sharding`).

Test hook: ``OBLIVIATE_KILL_AT=save:K`` SIGKILLs the process in the middle of its K-th
checkpoint save (weights written, manifest not yet), ``OBLIVIATE_KILL_AT=step:K`` right after
optimiser step K; the reliability tests use it to interrupt runs at exact points.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obliviate.io import fsync_dir, fsync_file
from obliviate.sharding import full_states, is_sharded, load_full_states

KEEP = 2  # good checkpoints kept per folder
FORMAT = 1
_saves = 0  # checkpoint saves started by this process (for the kill hook)


@dataclass
class LoopState:
    """Where the training loop stands: everything besides weights, optimiser and RNG."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # loader batches of ``epoch`` already consumed
    micro: int = 0  # micro-batches since the start (gradient accumulation)
    first_retain: float | None = None  # the retain guard's reference value
    log: list[dict[str, float]] = field(default_factory=list)
    retain_indices: list[int] = field(default_factory=list)  # drawn on this rank
    finished: bool = False  # saved after the last step (a stage kept for a later resume)
    stopped: str | None = None  # the early-stop reason of a finished stage


def kill_point(kind: str, count: int) -> None:
    """The test hook: SIGKILL this process when ``OBLIVIATE_KILL_AT`` is ``<kind>:<count>``."""
    want = os.environ.get("OBLIVIATE_KILL_AT")
    if want and want == f"{kind}:{count}":
        os.kill(os.getpid(), signal.SIGKILL)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def step_dirs(folder: Path) -> list[Path]:
    """The complete (renamed) checkpoints of ``folder``, newest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith("step-")]
    return sorted(found, key=lambda p: int(p.name.split("-", 1)[1]), reverse=True)


def clean_partial(folder: Path) -> None:
    """Remove unfinished ``.tmp-*`` folders left by a save that was interrupted."""
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith(".tmp-"):
                shutil.rmtree(p, ignore_errors=True)


def rng_state(gens: dict[str, Any]) -> dict[str, Any]:
    """Every random stream of this process as tensors and plain values."""
    import numpy as np
    import torch

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, mt, gauss = random.getstate()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {
            "version": version,
            "state": torch.tensor(mt, dtype=torch.int64),
            "gauss": gauss,
        },
        "gens": {k: g.get_state() for k, g in gens.items()},
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any], gens: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["state"].tolist()), p["gauss"]))
    for k, g in gens.items():
        if k in state["gens"]:
            g.set_state(state["gens"][k])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def dedupe_shared(state: dict[str, Any]) -> dict[str, Any]:
    """safetensors refuses tensors that share memory (tied embeddings): clone them."""
    seen: set[int] = set()
    out = {}
    for k, v in state.items():
        ptr = v.data_ptr()
        out[k] = v.clone() if ptr in seen else v
        seen.add(ptr)
    return out


def save(
    folder: Path,
    acc: Any,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    gens: dict[str, Any],
    state: LoopState,
    run_key: str,
    keep: int = KEEP,
) -> Path:
    """Write ``step-<state.step>`` atomically (see the module docstring); every rank calls it."""
    import torch
    from safetensors.torch import save_file

    global _saves
    _saves += 1
    acc.wait_for_everyone()
    final = folder / f"step-{state.step:08d}"
    tmp = folder / f".tmp-step-{state.step:08d}"
    tmp.mkdir(parents=True, exist_ok=True)  # every rank: each writes its own random streams
    sharded = is_sharded(model)
    if sharded:  # gathered from every rank to rank 0 (train.shard=fsdp)
        weights, optim = full_states(model, optimizer)
    if acc.is_main_process:
        if not sharded:
            weights, optim = acc.unwrap_model(model).state_dict(), optimizer.state_dict()
        weights = {k: v.detach().cpu().contiguous() for k, v in weights.items()}
        save_file(dedupe_shared(weights), str(tmp / "model.safetensors"))
        torch.save({"optimizer": optim, "scheduler": scheduler.state_dict()}, tmp / "optim.pt")
    rank_file = tmp / f"rng_{acc.process_index}.pt"
    torch.save(
        {
            "rng": rng_state(gens),
            "retain_indices": torch.tensor(state.retain_indices, dtype=torch.long),
        },
        rank_file,
    )
    fsync_file(rank_file)
    kill_point("save", _saves)
    acc.wait_for_everyone()
    if acc.is_main_process:
        files = {}
        for p in sorted(tmp.iterdir()):
            fsync_file(p)
            files[p.name] = {"size": p.stat().st_size, "sha256": _sha256(p)}
        manifest = {
            "format": FORMAT,
            "step": state.step,
            "epoch": state.epoch,
            "batch": state.batch,
            "micro": state.micro,
            "first_retain": state.first_retain,
            "finished": state.finished,
            "stopped": state.stopped,
            "run_key": run_key,
            "world_size": acc.num_processes,
            "log": state.log,
            "files": files,
        }
        with open(tmp / "manifest.json", "w", encoding="utf-8") as fh:
            json.dump(manifest, fh)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(folder)
        for old in step_dirs(folder)[keep:]:
            shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()
    return final


def validate(path: Path, run_key: str, world_size: int) -> tuple[dict[str, Any] | None, str]:
    """``(manifest, "")`` when ``path`` is a complete checkpoint of this run, else
    ``(None, reason)``."""
    mf = path / "manifest.json"
    if not mf.is_file():
        return None, "it has no manifest (the save was interrupted)"
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, "its manifest is unreadable"
    if manifest.get("run_key") != run_key:
        return None, "it belongs to other settings or data"
    if manifest.get("world_size") != world_size:
        return None, f"it was written by {manifest.get('world_size')} processes, not {world_size}"
    for name, meta in manifest.get("files", {}).items():
        f = path / name
        if not f.is_file():
            return None, f"{name} is missing"
        if f.stat().st_size != meta["size"]:
            return None, f"{name} has {f.stat().st_size} bytes, the manifest says {meta['size']}"
        if _sha256(f) != meta["sha256"]:
            return None, f"{name} does not match its sha256 in the manifest"
    return manifest, ""


def _say(acc: Any, text: str) -> None:
    if acc.is_main_process:
        print(text, file=sys.stderr, flush=True)


def load_latest(
    folder: Path,
    acc: Any,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    gens: dict[str, Any],
    run_key: str,
    desc: str,
) -> LoopState | None:
    """Restore the newest valid checkpoint of ``folder`` (skipping invalid ones with a message)
    and return the loop state, or ``None`` when there is none to resume from."""
    import torch
    from safetensors.torch import load_file

    if acc.is_main_process:
        clean_partial(folder)
    acc.wait_for_everyone()
    found: LoopState | None = None
    skipped: list[Path] = []
    for path in step_dirs(folder):
        manifest, why = validate(path, run_key, acc.num_processes)
        if manifest is None:
            _say(acc, f"{desc}: skipping checkpoint {path}: {why}; it is removed")
            skipped.append(path)
            continue
        weights = load_file(str(path / "model.safetensors"))
        opt = torch.load(path / "optim.pt", weights_only=True)
        if is_sharded(model):  # every rank reads the full state and keeps its shard
            load_full_states(model, optimizer, weights, opt["optimizer"])
        else:
            acc.unwrap_model(model).load_state_dict(weights, strict=False)
            optimizer.load_state_dict(opt["optimizer"])
        scheduler.load_state_dict(opt["scheduler"])
        ranked = torch.load(path / f"rng_{acc.process_index}.pt", weights_only=True)
        set_rng_state(ranked["rng"], gens)
        _say(acc, f"resuming {desc} from step {manifest['step']} (checkpoint {path})")
        found = LoopState(
            step=int(manifest["step"]),
            epoch=int(manifest["epoch"]),
            batch=int(manifest["batch"]),
            micro=int(manifest["micro"]),
            first_retain=manifest.get("first_retain"),
            log=list(manifest["log"]),
            retain_indices=ranked["retain_indices"].tolist(),
            finished=bool(manifest.get("finished")),
            stopped=manifest.get("stopped"),
        )
        break
    acc.wait_for_everyone()  # every rank has validated before an unusable checkpoint goes
    if acc.is_main_process:
        for path in skipped:
            shutil.rmtree(path, ignore_errors=True)
    return found


def remove(folder: Path, acc: Any) -> None:
    """Delete a finished run's checkpoints (rank 0), then let every rank go on."""
    if acc.is_main_process and folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    acc.wait_for_everyone()
