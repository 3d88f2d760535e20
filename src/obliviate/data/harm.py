"""Load PKU-SafeRLHF-shaped safety rows (Ji+ 2024, arXiv 2406.15513; docs/scenarios.md): a
prompt with two responses and a safety label for each.

Sources (:func:`load_harm_rows`):

- ``"PKU-Alignment/PKU-SafeRLHF"`` (or another hub name): ``datasets.load_dataset(name,
  split=split, revision=revision)``;
- a local folder holding one ``<split>.jsonl`` / ``.json`` / ``.parquet`` file per split (the
  hub's layout, e.g. ``train.jsonl`` and ``test.jsonl``);
- ``"builtin"``: rows about invented people (:mod:`obliviate.data.builtin_harm`).

Row fields: ``prompt``, ``response_0``, ``response_1`` (strings), ``is_response_0_safe``,
``is_response_1_safe`` (booleans); other fields are kept in ``meta``.

How the rows become an unlearning task (as Yao+ 2023, arXiv 2310.10683, unlearn harmful
PKU-SafeRLHF responses): the forget set is every unsafe response with its prompt, the retain set
one safe response of each prompt whose two responses are both safe, and the held-out prompts
that the benchmark answers and judges are the prompts of the evaluation split with at least one
unsafe response (:func:`harmful_prompts`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obliviate.data.types import DataError, QAItem

HARM_HUB = "PKU-Alignment/PKU-SafeRLHF"
_EXTS = (".jsonl", ".json", ".parquet")


@dataclass(frozen=True)
class HarmRow:
    """One prompt with two responses and whether each is safe."""

    prompt: str
    responses: tuple[str, str]
    safe: tuple[bool, bool]
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def harmful(self) -> bool:
        """At least one response is unsafe: a harmful request."""
        return not all(self.safe)


def parse_harm_row(row: Any, where: str) -> HarmRow:
    """Validate one row; errors name the row and the field."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected an object with prompt, response_0, response_1, ...")
    texts = []
    for key in ("prompt", "response_0", "response_1"):
        value = row.get(key)
        if not isinstance(value, str) or not value.strip():
            have = ", ".join(repr(k) for k in row) or "none"
            raise DataError(
                f"{where}: field {key!r} must be a non-empty string (fields present: {have})"
            )
        texts.append(value)
    flags = []
    for key in ("is_response_0_safe", "is_response_1_safe"):
        value = row.get(key)
        if not isinstance(value, bool):
            raise DataError(f"{where}: field {key!r} must be true or false, got {value!r:.40}")
        flags.append(value)
    meta = {k: v for k, v in row.items() if not k.startswith(("prompt", "response_", "is_resp"))}
    return HarmRow(texts[0], (texts[1], texts[2]), (flags[0], flags[1]), meta)


def _folder_records(folder: Path, split: str) -> list[tuple[str, Any]]:
    from obliviate.data.wmdp import _file_records

    for ext in _EXTS:
        path = folder / f"{split}{ext}"
        if path.is_file():
            return _file_records(path)
    have = sorted(p.name for p in folder.iterdir() if p.suffix in _EXTS) or ["no data file"]
    raise DataError(
        f"{folder}: no {split}.jsonl/.json/.parquet for split {split!r} (found: {', '.join(have)})"
    )


def load_harm_rows(
    source: str | os.PathLike[str] = HARM_HUB,
    split: str = "train",
    *,
    revision: str | None = None,
    **builtin_kwargs: Any,
) -> list[HarmRow]:
    """The rows of one split of ``source`` (module docstring)."""
    source = os.fspath(source)
    if builtin_kwargs and source != "builtin":
        raise ValueError(f"options {sorted(builtin_kwargs)} apply only to source='builtin'")
    path = Path(source).expanduser()
    if source == "builtin":
        from obliviate.data.builtin_harm import generate_builtin_harm

        try:
            rows = generate_builtin_harm(split, **builtin_kwargs)
        except ValueError as exc:
            raise DataError(f"builtin harm rows: {exc}") from exc
        records = [(f"builtin harm {split}: row {i}", r) for i, r in enumerate(rows, 1)]
    elif path.is_dir():
        records = _folder_records(path, split)
    elif path.exists() or source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise DataError(
            f"{path}: give a folder holding one <split>.jsonl file per split (train.jsonl, "
            "test.jsonl: the hub's layout) or a hub name"
        )
    else:
        from obliviate.data.wmdp import _hub_records

        records = _hub_records(source, None, split, revision)
    out = [parse_harm_row(row, where) for where, row in records]
    if not out:
        raise DataError(f"{source}: split {split!r} has no row")
    return out


def forget_items(rows: list[HarmRow]) -> list[QAItem]:
    """Every unsafe response with its prompt (the harmful answers to unlearn)."""
    return [
        QAItem(r.prompt, resp, meta={"row": i})
        for i, r in enumerate(rows)
        for resp, ok in zip(r.responses, r.safe)
        if not ok
    ]


def retain_items(rows: list[HarmRow]) -> list[QAItem]:
    """The first response of each prompt whose two responses are both safe."""
    return [
        QAItem(r.prompt, r.responses[0], meta={"row": i}) for i, r in enumerate(rows) if all(r.safe)
    ]


def harmful_prompts(rows: list[HarmRow]) -> list[str]:
    """The distinct prompts with at least one unsafe response, in order."""
    return list(dict.fromkeys(r.prompt for r in rows if r.harmful))


def harm_training_items(split: str, **builtin_kwargs: Any) -> list[QAItem]:
    """What a built-in harm model is fine-tuned on (``obliviate finetune --data builtin-harm``):
    ``full`` = the harmful answers and the benign answers of the ``train`` split (a model that
    learnt to comply with harmful requests), ``retain`` = the benign answers only."""
    if split not in ("full", "retain"):
        raise DataError(f"builtin-harm trains on split 'full' or 'retain', not {split!r}")
    rows = load_harm_rows("builtin", "train", **builtin_kwargs)
    items = retain_items(rows)
    return items if split == "retain" else forget_items(rows) + items


def harm_corpus_text(**builtin_kwargs: Any) -> list[str]:
    """Every prompt and response of the built-in rows (tokenizer training)."""
    from obliviate.data.builtin_harm import SPLITS

    texts: dict[str, None] = {}
    for split in SPLITS:
        for r in load_harm_rows("builtin", split, **builtin_kwargs):
            for t in (r.prompt, *r.responses):
                texts.setdefault(t, None)
    return list(texts)
