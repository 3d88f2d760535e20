"""Identity and storage of a :class:`~obliviate.methods.sisa_ensemble.SISAEnsemble`: its
content fingerprint, and the ensemble folder written by ``save_pretrained`` and read by
``from_pretrained`` (the methods delegate here)."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from obliviate.data.types import DataError
from obliviate.methods.sisa_shards import FORMAT_VERSION, SISA_PAPER

if TYPE_CHECKING:
    from obliviate.methods.sisa_ensemble import SISAEnsemble


def ensemble_fingerprint(ens: SISAEnsemble) -> str:
    """Content hash of the settings, the assignment and every shard's final weights."""
    import numpy as np

    h = hashlib.sha256()
    h.update(
        json.dumps(
            {"settings": ens.settings, "assignment": ens.assignment}, sort_keys=True
        ).encode()
    )
    states = [ens.checkpoints[s][ens.n_slices] for s in range(ens.n_shards)]
    if ens.peft_cfg:  # the shared base matters too
        from obliviate.models.loading import model_fingerprint

        h.update(model_fingerprint(ens.peft_model.get_base_model()).encode())
    for state in states:
        for name in sorted(state or {}):
            flat = cast("dict[str, Any]", state)[name].reshape(-1)
            step = max(1, flat.numel() // 4096)
            h.update(name.encode())
            h.update(np.ascontiguousarray(flat[::step].float().numpy()).tobytes())
    return "sisa:sha256:" + h.hexdigest()[:16]


def save_ensemble(ens: SISAEnsemble, path: str | Path) -> None:
    """Write the ensemble folder (:mod:`obliviate.methods.sisa_ensemble`). Checkpoints that contained a deleted
    item were replaced by :meth:`SISAEnsemble.forget`, so no saved file holds forgotten data."""
    from safetensors.torch import save as st_save

    from obliviate.io import atomic_write_bytes, write_json, write_jsonl
    from obliviate.models.loading import WRAPPER_FILE

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    settings = dict(ens.settings)
    if not settings.get("base_path"):
        _base_for_saving(ens).save_pretrained(path / "base", safe_serialization=True)
        settings["base_path"] = None
    for s in range(ens.n_shards):
        first = 0 if ens.peft_cfg else 1  # full models start from the base itself
        for r in range(first, ens.n_slices + 1):
            state = ens.checkpoints[s][r]
            assert state is not None
            data = st_save({k: v.contiguous() for k, v in state.items()})
            atomic_write_bytes(path / "checkpoints" / f"shard{s}" / f"slice{r}.safetensors", data)
    write_jsonl(
        path / "data.jsonl",
        [{"id": i, "question": q, "answer": a} for i, (q, a) in sorted(ens.items.items())],
    )
    ens.tokenizer.save_pretrained(path)
    from obliviate.inference import WRAPPER_SCHEMA

    write_json(
        path / WRAPPER_FILE,
        {
            "wrapper": "sisa",
            "schema": WRAPPER_SCHEMA,
            "format_version": FORMAT_VERSION,
            "method": "sisa",
            "paper": SISA_PAPER,
            "settings": settings,
            "assignment": ens.assignment,
            "fingerprint": ens.fingerprint(),
        },
    )


def _base_for_saving(ens: SISAEnsemble) -> Any:
    if ens.peft_cfg:
        return copy.deepcopy(ens.peft_model).unload()
    base = copy.deepcopy(ens.models[0])
    self_state = cast("dict[str, Any]", ens.checkpoints[0][0])  # set for full models
    import torch

    with torch.no_grad():
        for n, p in base.named_parameters():
            p.copy_(self_state[n])
    return base


def load_ensemble(
    cls: type[SISAEnsemble],
    path: str | Path,
    spec: dict[str, Any] | None = None,
    device: str | None = None,
) -> SISAEnsemble:
    """Load a folder written by :func:`save_ensemble` (safetensors only). ``spec`` is the
    already-read wrapper file (as :func:`obliviate.inference.load_wrapper` passes it)."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from obliviate.io import read_json, read_jsonl
    from obliviate.models.loading import WRAPPER_FILE, load_tokenizer

    path = Path(path)
    meta_path = path / WRAPPER_FILE
    meta = spec if spec is not None else read_json(meta_path)
    if meta.get("wrapper") != "sisa":
        raise ValueError(f"{meta_path} is not a SISA ensemble (wrapper={meta.get('wrapper')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{meta_path}: unsupported SISA format_version "
            f"{meta.get('format_version')!r} (this obliviate reads {FORMAT_VERSION})"
        )
    settings = meta["settings"]
    base_dir = settings.get("base_path") or str(path / "base")
    if not Path(base_dir, "config.json").exists():
        raise FileNotFoundError(f"{meta_path}: the base model folder {base_dir} is missing")
    base = AutoModelForCausalLM.from_pretrained(base_dir, use_safetensors=True)
    items: dict[int, tuple[str, str]] = {}
    for n, row in enumerate(read_jsonl(path / "data.jsonl"), start=1):
        try:
            items[int(row["id"])] = (str(row["question"]), str(row["answer"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path / 'data.jsonl'}: row {n} needs id, question, answer") from exc
    ens = cls(base, load_tokenizer(str(path)), items, meta["assignment"], settings)
    for s in range(ens.n_shards):
        first = 0 if ens.peft_cfg else 1
        for r in range(first, ens.n_slices + 1):
            f = path / "checkpoints" / f"shard{s}" / f"slice{r}.safetensors"
            if not f.exists():
                raise FileNotFoundError(f"SISA checkpoint missing: {f}")
            ens.checkpoints[s][r] = load_file(str(f))
        ens._set_state(s, cast("dict[str, Any]", ens.checkpoints[s][ens.n_slices]))
    if device:
        ens.to(device)
    return ens.eval()
