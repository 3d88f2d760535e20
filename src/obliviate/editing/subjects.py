"""The *subject* of a question and its token positions (ROME keys are read at the subject's last
token, Meng+ 2022, arXiv 2202.05262, §3.1).

A QA item names its subject in ``item.meta["subject"]`` when the data has such a field;
otherwise :func:`guess_subject` takes the longest run of capitalised words (a person, a place),
ignoring a capitalised question word at the start. Items without a subject are keyed at the last
prompt token instead (recorded in the method's info).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_QUESTION_WORDS = frozenset(
    "what which who whom whose when where how why in is are was were did does do can could has "  # noqa: SIM905 (a word list reads better as one string)
    "have had the a an on at for from to of name tell according describe give list".split()
)
_WORD = re.compile(r"\S+")
_STRIP = '.,;:!?"()[]{}'


def guess_subject(question: str) -> str | None:
    """The longest run of consecutive capitalised words of ``question`` (first run on ties),
    without a leading question/function word; ``None`` when there is none.

    >>> guess_subject("In which city was Geamfour Thoufo born?")
    'Geamfour Thoufo'
    """
    words = []
    for m in _WORD.finditer(question):
        w = m.group().strip(_STRIP)
        if w.endswith("'s") or w.endswith("\u2019s"):
            w = w[:-2]
        start = m.start() + m.group().find(w) if w else m.start()
        words.append((w, start))
    runs: list[list[tuple[str, int]]] = []
    cur: list[tuple[str, int]] = []
    for i, (w, s) in enumerate(words):
        cap = bool(w) and w[0].isupper() and not (i == 0 and w.lower() in _QUESTION_WORDS)
        if cap:
            cur.append((w, s))
        else:
            if cur:
                runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    if not runs:
        return None
    best = max(runs, key=len)  # max keeps the first of equally long runs
    first, last = best[0], best[-1]
    return question[first[1] : last[1] + len(last[0])]


def subject_of(item: Any, field: str = "subject") -> str | None:
    meta = getattr(item, "meta", None) or {}
    given = meta.get(field)
    if isinstance(given, str) and given.strip():
        return given.strip()
    return guess_subject(item.question)


def last_token_of(tokenizer: Any, ids: Sequence[int], text: str) -> int | None:
    """Index of the token that completes the first occurrence of ``text`` in ``ids``."""
    from obliviate.inference.base import first_prefix_containing

    k = first_prefix_containing(tokenizer, ids, text, skip_special_tokens=True)
    return None if k is None else k - 1


def first_token_of(tokenizer: Any, ids: Sequence[int], text: str, last: int) -> int:
    """Index of the first token of the occurrence of ``text`` that ends at token ``last``."""
    ids = list(ids)
    for j in range(last, -1, -1):
        if text in tokenizer.decode(ids[j : last + 1], skip_special_tokens=True):
            return j
    return 0


@dataclass(frozen=True)
class SubjectSpan:
    """Token span of the subject inside a prompt (``first`` .. ``last``, inclusive);
    ``found`` is False when the key falls back to the last prompt token."""

    first: int
    last: int
    found: bool


def subject_span(tokenizer: Any, prompt_ids: Sequence[int], subject: str | None) -> SubjectSpan:
    n = len(prompt_ids)
    if subject:
        last = last_token_of(tokenizer, prompt_ids, subject)
        if last is not None:
            return SubjectSpan(first_token_of(tokenizer, prompt_ids, subject, last), last, True)
    return SubjectSpan(n - 1, n - 1, False)
