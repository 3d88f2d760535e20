"""Sensitive spans of an answer: which substrings an item names, where they are, which tokens
hold them (SeUL, Wang+ 2024, arXiv 2402.05813; docs/methods.md, "SeUL").

An item's ``sensitive_spans`` field (in :attr:`QAItem.meta`) lists substrings of its answer
(a list, a JSON string holding a list, or one plain string). :func:`given_span_mask` marks the
answer tokens holding a character of one of them, for every tokenizer: the character range of
each token comes from the lengths of the decoded prefixes (:func:`decoded_offsets`). The SeUL
method trains on these tokens and the evaluation's S-MA / S-EL score them
(:mod:`obliviate.span_eval`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from obliviate.data.templates import IGNORE, Encoded

SPANS_FIELD = "sensitive_spans"


def item_spans(meta: dict[str, Any], field: str = SPANS_FIELD) -> tuple[str, ...]:
    """The sensitive substrings an item's ``meta`` gives (``()`` when none)."""
    value = meta.get(field)
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"field {field!r} must be a list of strings (substrings of the answer)")


def given_span_mask(
    tokenizer: Any, enc: Encoded, substrings: tuple[str, ...], missing_ok: bool = False
) -> list[bool]:
    """Mask over ``enc.input_ids``: True where the label is an answer token holding a character
    of one of ``substrings`` (looked up in the decoded answer; one that is not there is an error
    unless ``missing_ok``)."""
    answer_pos = [i for i, y in enumerate(enc.labels) if y != IGNORE]
    text, offsets = decoded_offsets(tokenizer, [enc.input_ids[i] for i in answer_pos])
    hits = char_spans_to_token_mask(offsets, find_char_spans(text, substrings, missing_ok))
    out = [False] * len(enc.input_ids)
    for i, hit in zip(answer_pos, hits):
        out[i] = hit
    return out


def find_char_spans(
    text: str, substrings: Sequence[str], missing_ok: bool = False
) -> list[tuple[int, int]]:
    """Every occurrence of every substring in ``text`` as ``(start, end)`` character ranges,
    sorted. A substring that does not occur raises :class:`ValueError` (the caller adds which
    item) unless ``missing_ok``; empty substrings are ignored."""
    out: list[tuple[int, int]] = []
    for s in substrings:
        if not s:
            continue
        start = text.find(s)
        if start < 0 and not missing_ok:
            raise ValueError(f"the sensitive span {s!r} does not occur in the text")
        while start >= 0:
            out.append((start, start + len(s)))
            start = text.find(s, start + len(s))
    return sorted(out)


def char_spans_to_token_mask(
    offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]
) -> list[bool]:
    """Which tokens hold a character of a span: token ``(a, b)`` is sensitive when ``a < e`` and
    ``b > s`` for a span ``(s, e)``. Zero-width tokens (special tokens) never are."""
    return [b > a and any(a < e and b > s for s, e in spans) for a, b in offsets]


def decoded_offsets(tokenizer: Any, ids: Sequence[int]) -> tuple[str, list[tuple[int, int]]]:
    """The text of ``ids`` (special tokens skipped) and each token's character range in it, from
    the lengths of the decoded prefixes (works for every tokenizer, with or without offsets)."""
    offsets: list[tuple[int, int]] = []
    prev = 0
    for k in range(1, len(ids) + 1):
        n = len(tokenizer.decode(list(ids[:k]), skip_special_tokens=True))
        offsets.append((min(prev, n), n))
        prev = max(prev, n)
    return tokenizer.decode(list(ids), skip_special_tokens=True), offsets
