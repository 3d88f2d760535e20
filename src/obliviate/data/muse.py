"""Load MUSE (Shi+ 2024, arXiv 2407.06460; docs/muse-wmdp.md) and chunk documents into windows.

Three sources give the same rows and go through the same validation:

- ``"builtin"``: the generated corpus of :mod:`obliviate.data.builtin_muse` (keyword arguments
  such as ``n_people=60`` go to :func:`~obliviate.data.builtin_muse.generate_builtin_muse`);
- ``"news"`` / ``"books"`` or any hub name such as ``"muse-bench/MUSE-News"``, read with
  ``datasets.load_dataset(name, config, split=split, revision=revision)``;
- a local folder in the hub's layout: ``<folder>/<config>/<split>.jsonl`` (or ``.json``, or
  ``<split>.parquet``, or the hub's own ``<split>-00000-of-00001.parquet`` files), e.g.
  ``news/knowmem/forget_qa.jsonl``. A snapshot of the hub repository therefore loads as is.

Configs, splits and fields (:data:`MUSE_LAYOUT`, :data:`FIELDS`): ``raw`` (forget, retain1,
retain2, holdout: ``text``), ``verbmem`` (forget: ``prompt``, ``gt``), ``knowmem`` (forget_qa,
retain_qa, forget_qa_icl, retain_qa_icl: ``question``, ``answer``; older revisions name the
retain sets ``retain2_qa``/``retain2_qa_icl``), ``privleak`` (forget, holdout, retain:
``text``), ``scal`` and ``sust`` (forget_1..forget_4: ``text``; MUSE-Books has neither).

Documents become ``QAItem(question="", answer=text)``; verbmem rows ``QAItem(question=prompt,
answer=gt)``. :func:`encode_documents` cuts documents into model-sized token windows without a
decode/re-encode round trip (docs/metrics.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obliviate.data.files import Record, read_records
from obliviate.data.types import DataError, QAItem, UnlearningRequest

MUSE_LAYOUT: dict[str, tuple[str, ...]] = {
    "raw": ("forget", "retain1", "retain2", "holdout"),
    "verbmem": ("forget",),
    "knowmem": ("forget_qa", "retain_qa", "forget_qa_icl", "retain_qa_icl"),
    "privleak": ("forget", "holdout", "retain"),
    "scal": ("forget_1", "forget_2", "forget_3", "forget_4"),
    "sust": ("forget_1", "forget_2", "forget_3", "forget_4"),
}
FIELDS: dict[str, tuple[str, ...]] = {
    "raw": ("text",),
    "verbmem": ("prompt", "gt"),
    "knowmem": ("question", "answer"),
    "privleak": ("text",),
    "scal": ("text",),
    "sust": ("text",),
}
# Splits that evaluation does not need; the rest of a requested config must be there.
OPTIONAL_SPLITS = {("raw", "retain2"), ("raw", "holdout"), ("privleak", "retain")}
# Configs a source may lack entirely (MUSE-Books has no scalability/sustainability folds).
OPTIONAL_CONFIGS = ("scal", "sust")
# Older hub revisions call the retain QA sets after retain2.
SPLIT_ALIASES = {
    ("knowmem", "retain_qa"): "retain2_qa",
    ("knowmem", "retain_qa_icl"): "retain2_qa_icl",
    ("privleak", "retain"): "retain2",
}
HUB_NAMES = {"news": "muse-bench/MUSE-News", "books": "muse-bench/MUSE-Books"}

_HUB_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class MuseData:
    """A MUSE benchmark in memory. Missing optional parts are empty (see ``missing``)."""

    name: str  # "builtin-muse", "muse-news", "muse-books" or "muse"
    source: str
    raw: dict[str, list[QAItem]] = field(default_factory=dict)  # documents per raw split
    verbmem: list[QAItem] = field(default_factory=list)  # question = prompt, answer = gt
    knowmem: dict[str, list[QAItem]] = field(default_factory=dict)
    privleak: dict[str, list[QAItem]] = field(default_factory=dict)
    scal: list[list[QAItem]] = field(default_factory=list)  # forget_1..4, growing
    sust: list[list[QAItem]] = field(default_factory=list)  # forget_1..4, sequential
    missing: list[str] = field(default_factory=list)  # "config" or "config/split" not found
    revision: str | None = None

    @property
    def forget(self) -> list[QAItem]:
        return self.raw.get("forget", [])

    @property
    def retain(self) -> list[QAItem]:
        """D_r for unlearning: ``raw/retain1`` (OU and MUSE use retain1)."""
        return self.raw.get("retain1", [])

    def request(self, forget: Sequence[QAItem] | None = None) -> UnlearningRequest:
        """An :class:`UnlearningRequest` for the methods: forget documents (``raw/forget`` or
        the given fold), retain = ``raw/retain1``, holdout = ``privleak/holdout``."""
        items = list(forget if forget is not None else self.forget)
        return UnlearningRequest(
            forget=items,
            retain=list(self.retain),
            holdout=list(self.privleak.get("holdout", [])),
            eval={"forget": items},
            full=[*self.forget, *self.retain, *self.raw.get("retain2", [])],
            name=self.name,
            split="forget",
        )


# ----------------------------------------------------------------------------- sources


def source_kind(source: str) -> str:
    """``"builtin"``, ``"folder"`` or ``"hub"``; a missing path is a clear error."""
    if source == "builtin":
        return "builtin"
    path = Path(source).expanduser()
    if path.is_dir():
        return "folder"
    if path.exists():
        raise DataError(
            f"{source}: is a file; give a folder in the hub layout "
            "(<folder>/<config>/<split>.jsonl), 'builtin', or a hub dataset name"
        )
    looks_like_path = source.startswith((".", "/", "~")) or "\\" in source or source.count("/") > 1
    if looks_like_path or not _HUB_PATTERN.match(source):
        raise DataError(
            f"{source}: no such folder; give a folder in the hub layout "
            "(<folder>/<config>/<split>.jsonl), 'builtin', or a hub dataset name"
        )
    return "hub"


def _parquet_records(files: list[Path]) -> list[Record]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow comes with datasets
        raise DataError(
            f"{files[0]}: reading parquet files needs pyarrow: pip install pyarrow"
        ) from exc
    records: list[Record] = []
    for file in files:
        try:
            rows = pq.read_table(file).to_pylist()
        except Exception as exc:  # corrupt or not parquet at all
            raise DataError(
                f"{file}: not a readable parquet file ({type(exc).__name__}: {exc})"
            ) from exc
        records.extend((f"{file}: row {i}", row) for i, row in enumerate(rows, start=1))
    if not records:
        raise DataError(f"{files[0]}: the file has no rows")
    return records


def split_files(folder: Path, config: str, split: str) -> list[Path]:
    """The file(s) of one split in the hub layout, or [] when there are none."""
    base = folder / config
    for ext in (".jsonl", ".json"):
        if (base / f"{split}{ext}").is_file():
            return [base / f"{split}{ext}"]
    if (base / f"{split}.parquet").is_file():
        return [base / f"{split}.parquet"]
    shards = sorted(base.glob(f"{split}-*.parquet"))
    if shards:
        return shards
    if (
        base / split
    ).is_dir():  # the hub's refs/convert/parquet layout: <config>/<split>/0000.parquet
        return sorted((base / split).glob("*.parquet"))
    return []


def folder_records(folder: Path, config: str, split: str) -> list[Record] | None:
    """Rows of one split of a local folder (None when the split has no file)."""
    files = split_files(folder, config, split)
    if not files:
        return None
    if files[0].suffix == ".parquet":
        return _parquet_records(files)
    return [(f"{files[0]}: {where}", row) for where, row in read_records(files[0])]


def hub_records(
    name: str, config: str, split: str, revision: str | None = None
) -> list[Record] | None:
    """Rows of one hub split; None when the dataset has no such config/split."""
    try:
        from datasets import load_dataset
    except ImportError as exc:  # pragma: no cover - datasets is a core dependency
        raise DataError(
            "loading a hub dataset needs the 'datasets' package: pip install datasets"
        ) from exc
    try:
        dataset = load_dataset(name, config, split=split, revision=revision)
    except ValueError as exc:  # datasets raises ValueError for an unknown config or split
        if "split" in str(exc).lower() or "config" in str(exc).lower():
            return None
        raise DataError(f"hub dataset {name!r}, config {config!r}, split {split!r}: {exc}") from exc
    except Exception as exc:  # network, unknown name, gated dataset: reported the same way
        raise DataError(
            f"hub dataset {name!r}, config {config!r}, split {split!r}: could not load it "
            f"({type(exc).__name__}: {exc}); check the name and the network, or pass a local "
            "folder in the hub layout (<folder>/<config>/<split>.jsonl)"
        ) from exc
    return [
        (f"hub dataset {name!r} {config}/{split}: row {i}", dict(row))
        for i, row in enumerate(dataset, start=1)
    ]


# ----------------------------------------------------------------------------- rows


def _string(row: dict[str, Any], key: str, where: str, expected: tuple[str, ...]) -> str:
    value = row.get(key)
    if value is None:
        state = "is null" if key in row else "is missing"
        have = ", ".join(repr(k) for k in row) or "none"
        raise DataError(
            f"{where}: field {key!r} {state} (fields present: {have}); every row "
            f"needs {', '.join(repr(f) for f in expected)}"
        )
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    text = str(value)
    if not text.strip():
        raise DataError(f"{where}: field {key!r} is empty")
    return text


def parse_muse_row(row: Any, config: str, where: str, meta: dict[str, Any] | None = None) -> QAItem:
    """One validated row of ``config`` as a :class:`QAItem` (see the module docstring)."""
    expected = FIELDS[config]
    if not isinstance(row, dict):
        raise DataError(
            f"{where}: expected an object with {', '.join(repr(f) for f in expected)}, "
            f"got {type(row).__name__}"
        )
    values = [_string(row, key, where, expected) for key in expected]
    meta = dict(meta or {})
    if expected == ("text",):
        return QAItem(question="", answer=values[0], meta=meta)
    return QAItem(question=values[0], answer=values[1], meta=meta)


def _records(
    kind: str,
    source: str,
    config: str,
    split: str,
    revision: str | None,
    builtin: dict[str, Any] | None,
) -> list[Record] | None:
    if kind == "builtin":
        rows = builtin.get(config, {}).get(split) if builtin is not None else None
        if rows is None:
            return None
        return [(f"builtin {config}/{split}: row {i}", r) for i, r in enumerate(rows, start=1)]
    if kind == "folder":
        return folder_records(Path(source).expanduser(), config, split)
    return hub_records(source, config, split, revision)


def _missing_message(kind: str, source: str, config: str, split: str) -> str:
    if kind == "folder":
        base = Path(source).expanduser() / config
        found = sorted(p.name for p in base.iterdir())[:20] if base.is_dir() else []
        return (
            f"{base}: missing {split}.jsonl (or {split}.json, {split}.parquet, "
            f"{split}-*.parquet); found: {', '.join(found) or 'nothing'}"
        )
    return f"{source}: config {config!r} has no split {split!r}"


def load_muse(
    source: str | os.PathLike[str] = "builtin",
    configs: Sequence[str] = tuple(MUSE_LAYOUT),
    *,
    revision: str | None = None,
    **builtin_kwargs: Any,
) -> MuseData:
    """Load the named MUSE configs of a source (see the module docstring).

    ``source``: ``"builtin"``, ``"news"``, ``"books"``, a hub name or a folder. A missing
    required split is a :class:`DataError` naming the file or hub split; ``scal``/``sust`` may be
    absent as a whole (listed in ``MuseData.missing``). ``revision`` pins the hub revision
    (recorded with the results).
    """
    source = os.fspath(source)
    if source.lower() in HUB_NAMES and not Path(source).is_dir():
        source = HUB_NAMES[source.lower()]
    unknown = [c for c in configs if c not in MUSE_LAYOUT]
    if unknown:
        raise ValueError(f"unknown MUSE config(s) {unknown}; known: {', '.join(MUSE_LAYOUT)}")
    kind = source_kind(source)
    if builtin_kwargs and kind != "builtin":
        raise ValueError(
            f"options {sorted(builtin_kwargs)} apply only to source='builtin', not {source!r}"
        )
    builtin = None
    if kind == "builtin":
        from obliviate.data.builtin_muse import generate_builtin_muse

        builtin = generate_builtin_muse(**builtin_kwargs)
    name = {
        "builtin": "builtin-muse",
        HUB_NAMES["news"]: "muse-news",
        HUB_NAMES["books"]: "muse-books",
    }.get(source, "muse")
    data = MuseData(name=name, source=source, revision=revision)
    for config in configs:
        loaded: dict[str, list[QAItem]] = {}
        for split in MUSE_LAYOUT[config]:
            records = _records(kind, source, config, split, revision, builtin)
            alias = SPLIT_ALIASES.get((config, split))
            if records is None and alias:
                records = _records(kind, source, config, alias, revision, builtin)
            if records is None:
                if (config, split) in OPTIONAL_SPLITS:
                    data.missing.append(f"{config}/{split}")
                    continue
                loaded.clear()
                if config in OPTIONAL_CONFIGS and split == MUSE_LAYOUT[config][0]:
                    data.missing.append(config)
                    break
                raise DataError(_missing_message(kind, source, config, split))
            loaded[split] = [
                parse_muse_row(row, config, where, {"config": config, "split": split})
                for where, row in records
            ]
            if not loaded[split]:
                raise DataError(f"{source}: {config}/{split} has no rows")
        _assign(data, config, loaded)
    return data


def _assign(data: MuseData, config: str, loaded: dict[str, list[QAItem]]) -> None:
    if not loaded:
        return
    if config == "raw":
        data.raw = loaded
    elif config == "verbmem":
        data.verbmem = loaded["forget"]
    elif config == "knowmem":
        data.knowmem = loaded
    elif config == "privleak":
        data.privleak = loaded
    else:
        setattr(data, config, [loaded[s] for s in MUSE_LAYOUT[config]])


# ----------------------------------------------------------------------------- chunking


def chunk_ids(ids: Sequence[int], window: int) -> list[list[int]]:
    """Cut one document's token ids into consecutive, non-overlapping windows of ``window``
    tokens; the last window holds the remainder (shorter, never empty). An empty document gives
    no window. Pure list slicing: no decode/re-encode round trip (docs/metrics.md)."""
    if window < 1:
        raise ValueError(f"window must be >= 1 token, got {window}")
    ids = list(ids)
    return [ids[i : i + window] for i in range(0, len(ids), window)]


def windows(
    ids: Sequence[int], window: int, stride: int | None = None
) -> list[tuple[list[int], int]]:
    """Overlapping windows of one document's ids: ``(piece, n_context)`` pairs, a window
    starting every ``stride`` tokens (``None``: ``window``, no overlap). The first ``n_context``
    tokens of a piece were already covered by the previous window (context only), so every
    token is covered exactly once; the last window ends at the document's end."""
    if window < 1:
        raise ValueError(f"window must be >= 1 token, got {window}")
    stride = window if stride is None else stride
    if not 1 <= stride <= window:
        raise ValueError(f"stride must be between 1 and the window ({window} tokens), got {stride}")
    ids = list(ids)
    out: list[tuple[list[int], int]] = []
    covered = 0
    for start in range(0, len(ids), stride):
        piece = ids[start : start + window]
        out.append((piece, covered - start))
        covered = start + len(piece)
        if covered >= len(ids):
            break
    return out


def encode_documents(
    tokenizer: Any,
    items: Sequence[QAItem],
    max_length: int = 512,
    template: Any = None,
    stride: int | None = None,
) -> list[Any]:
    """Encode items for training: documents cut into windows, QA items as usual.

    A document (``question == ""``) is tokenised once without special tokens and cut by
    :func:`windows` into windows of ``max_length - 1`` tokens, each prefixed with BOS (label
    -100) when the tokenizer has one, so that every window is at most ``max_length`` tokens.
    With ``stride`` a window starts every ``stride`` tokens and the tokens the previous window
    already covered are context only (label -100): every token is trained on exactly once,
    nothing is dropped. Document-boundary policy: windows never cross documents, and a
    document's last, shorter window is kept (no EOS is appended: a window is not an end of
    text). QA items go through :func:`obliviate.data.templates.encode` with ``template``
    (default ``qa``).
    """
    from obliviate.data.templates import IGNORE, Encoded, PromptTemplate, encode

    template = template or PromptTemplate("qa")
    bos = tokenizer.bos_token_id
    prefix = [bos] if bos is not None else []
    window = max_length - len(prefix)
    if window < 1:
        raise ValueError(f"max_length={max_length} leaves no room for document tokens")
    out: list[Encoded] = []
    for it in items:
        if not it.is_document:
            out.append(encode(tokenizer, it.question, it.answer, template, max_length))
            continue
        ids = tokenizer(it.answer, add_special_tokens=False, verbose=False)["input_ids"]
        for piece, n_ctx in windows(ids, window, stride):
            labels = [IGNORE] * (len(prefix) + n_ctx) + piece[n_ctx:]
            out.append(Encoded(prefix + piece, labels, len(prefix) + n_ctx, False))
    return out
