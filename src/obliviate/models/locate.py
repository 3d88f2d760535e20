"""Where a ``--model`` argument points, checked before anything is loaded or downloaded.

A model is a local folder written by ``save_pretrained`` (with ``config.json``, or
``adapter_config.json`` for a PEFT adapter) or a hub name ``owner/name``. A mistyped local path
must fail at once with a did-you-mean, not after minutes of hub retries: anything that is
neither an existing folder nor a valid hub name is an error, and so is a name whose first part
is a local folder (``runs/targt``) or a near miss of one, or a hub name missing from the local cache while
``HF_HUB_OFFLINE=1``. Weights are read only from safetensors: a folder holding only pickle
checkpoints (``pytorch_model.bin``) is refused with the command that converts it, and a model
that needs its own Python code is refused unless ``trust_remote_code`` is given
(docs/methods.md, "Models").
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path

from obliviate.inference.wrapper_file import WRAPPER_FILE

MARKERS = ("config.json", "adapter_config.json", WRAPPER_FILE)
HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
HINT = "give a folder written by save_pretrained (with config.json) or a hub name 'owner/name'"


class ModelNotFoundError(FileNotFoundError):
    """The model argument is neither an existing model folder nor a usable hub name."""


def did_you_mean(path: str) -> str:
    """`` (did you mean 'runs/target'?)`` for the nearest existing path, or ``""``: the first
    missing part of ``path`` is matched against the entries of its deepest existing folder."""
    parts = Path(path).parts
    base = Path(parts[0]) if parts and parts[0] in (os.sep, "~") else Path(".")
    start = 1 if base != Path(".") else 0
    base = base.expanduser()
    for i in range(start, len(parts)):
        nxt = base / parts[i]
        if nxt.exists():
            base = nxt
            continue
        if not base.is_dir():
            return ""
        names = sorted(p.name for p in base.iterdir() if not p.name.startswith("."))
        close = difflib.get_close_matches(parts[i], names, n=1, cutoff=0.6)
        if not close:
            return ""
        guess = Path(*parts[:i], close[0], *parts[i + 1 :])
        return f" (did you mean {str(guess)!r}?)"
    return ""


def _in_hub_cache(name: str) -> bool:
    """Whether the hub model ``name`` has a ``config.json`` in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return False
    found = try_to_load_from_cache(name, "config.json")
    return isinstance(found, str)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def check_model_path(path: str, trust_remote_code: bool = True) -> None:
    """Raise :class:`ModelNotFoundError` (one sentence saying what to do) unless ``path`` is a
    model folder or a usable hub name; ``ValueError`` for a pickle-only folder, or a folder that
    needs remote code when ``trust_remote_code`` is false."""
    p = Path(path).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ModelNotFoundError(f"model path {path!r} is a file, not a folder; {HINT}")
        check_model_folder(p, path, trust_remote_code)
        return
    first = Path(path).parts[0] if Path(path).parts else ""
    looks_local = (
        path.startswith((".", "/", "~"))
        or not HUB_NAME.match(path)
        or (first not in ("", path) and Path(first).is_dir())
    )
    guess = did_you_mean(path)
    if looks_local or (guess and not _in_hub_cache(path)):
        # a near miss of a local folder is a typo, not a hub name
        raise ModelNotFoundError(f"model path {path!r} does not exist{guess}; {HINT}")
    if _offline() and not _in_hub_cache(path):
        raise ModelNotFoundError(
            f"hub model {path!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 "
            "forbids downloading it; unset HF_HUB_OFFLINE or give a local folder"
        )


def check_model_folder(folder: Path, shown: str, trust_remote_code: bool = True) -> None:
    """The checks of :func:`check_model_path` on an existing folder."""
    if not any((folder / m).exists() for m in MARKERS):
        raise ModelNotFoundError(
            f"{shown!r} holds no config.json or adapter_config.json: is it a save_pretrained "
            "folder (or a run folder with model/ inside)?"
        )
    if (folder / WRAPPER_FILE).exists():
        return
    files = [f.name for f in folder.iterdir() if f.is_file()]
    if not any(n.endswith(".safetensors") for n in files):
        pickles = sorted(n for n in files if n.endswith(PICKLE_SUFFIXES))
        if pickles:
            raise ValueError(
                f"{shown!r} holds only pickle weights ({', '.join(pickles)}), which obliviate "
                "never loads (unpickling can run code); if you trust the file, convert it once "
                'with `python -c "from transformers import AutoModelForCausalLM as M; '
                f"M.from_pretrained('{shown}', use_safetensors=False)"
                f".save_pretrained('{shown}-safetensors')\"` and pass the new folder"
            )
    if not trust_remote_code and _needs_remote_code(folder):
        raise ValueError(
            f"model {shown!r} needs its own Python code (auto_map in its config); pass "
            "--trust-remote-code (trust_remote_code=True) only if you trust its author"
        )


def _needs_remote_code(folder: Path) -> bool:
    for name in ("config.json", "tokenizer_config.json"):
        f = folder / name
        if f.is_file():
            try:
                doc = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict) and doc.get("auto_map"):
                return True
    return False


REMOTE_CODE_HINT = (
    "model {name!r} needs its own Python code; pass --trust-remote-code "
    "(trust_remote_code=True) only if you trust its author"
)


def explain_remote_code(exc: Exception, name: str) -> Exception:
    """The one-sentence error for transformers' refusal to run a hub model's code, or ``exc``."""
    if "trust_remote_code" in str(exc):
        return ValueError(REMOTE_CODE_HINT.format(name=name))
    return exc
