"""PEFT (LoRA) adapter folders whose base model is stored relative to the adapter, so that a
run folder tree still loads after it is moved (docs/run-format.md).

peft writes ``base_model_name_or_path`` in ``adapter_config.json`` as the path the base was
loaded from (absolute, or relative to the working directory of the run). After saving,
:func:`relativise_base` rewrites a local base as a path relative to the adapter folder; on
loading, :func:`adapter_base` resolves it against the adapter folder first (then against the
working directory, for adapters written by other tools), and a missing local base is one
clear error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ADAPTER_CONFIG = "adapter_config.json"


def _config(folder: str | os.PathLike[str]) -> dict[str, Any]:
    from obliviate.io import read_json

    return dict(read_json(Path(folder) / ADAPTER_CONFIG))


def _looks_local(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.path.isabs(name) or name.count("/") > 1


def adapter_base(folder: str | os.PathLike[str]) -> str:
    """The base model of an adapter folder: a local folder (resolved) or a hub name.

    Raises FileNotFoundError naming the adapter and the missing base when the base is a local
    path that exists neither relative to the adapter nor to the working directory.
    """
    folder = Path(folder)
    base = _config(folder).get("base_model_name_or_path")
    if not isinstance(base, str) or not base:
        raise FileNotFoundError(
            f"{folder / ADAPTER_CONFIG} names no base model (base_model_name_or_path); "
            "set it to the base model's folder or hub name"
        )
    expanded = os.path.expanduser(base)
    for candidate in (folder / expanded, Path(expanded)):
        if candidate.is_dir():
            return str(candidate.resolve())
    if _looks_local(base):
        raise FileNotFoundError(
            f"the adapter in {folder} was trained on the base model {base!r}, which does not "
            f"exist (looked relative to {folder} and to the working directory); move the base "
            f"model back or set base_model_name_or_path in {folder / ADAPTER_CONFIG}"
        )
    return base


def relativise_base(folder: str | os.PathLike[str]) -> None:
    """Rewrite a local base model path of ``folder``'s adapter config relative to ``folder``."""
    from obliviate.io import atomic_write_text

    folder = Path(folder)
    if not (folder / ADAPTER_CONFIG).is_file():
        return
    cfg = _config(folder)
    base = cfg.get("base_model_name_or_path")
    if not isinstance(base, str) or not Path(os.path.expanduser(base)).is_dir():
        return  # a hub name, or already relative to the adapter folder
    cfg["base_model_name_or_path"] = os.path.relpath(
        Path(os.path.expanduser(base)).resolve(), folder.resolve()
    )
    atomic_write_text(folder / ADAPTER_CONFIG, json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def load_adapter(path: str, torch_dtype: Any, trust_remote_code: bool = False) -> Any:
    """The base model (resolved by :func:`adapter_base`) with the adapter of ``path`` on top."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(
        adapter_base(path),
        dtype=torch_dtype,
        use_safetensors=True,
        trust_remote_code=trust_remote_code,
    )
    return PeftModel.from_pretrained(base, path)
