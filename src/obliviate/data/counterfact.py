"""Load fact-editing records: CounterFact (Meng+ 2022, ROME, arXiv 2202.05262) and zsRE in the
MEND/ROME evaluation shape (Levy+ 2017, arXiv 1706.04115; De Cao+ 2021, arXiv 2104.08164);
docs/scenarios.md.

Both become :class:`EditRecord` (a rewrite prompt with its subject, the true and the new
target, paraphrase prompts, neighbourhood prompts with the answer they must keep).

CounterFact rows (``azhx/counterfact`` on the hub, split ``train``, or a local
``.json``/``.jsonl``/``.parquet`` file with the same rows): ``case_id``, ``requested_rewrite``
= ``{"prompt": "The mother tongue of {} is", "subject": ..., "target_true": {"str": ...},
"target_new": {"str": ...}}``, ``paraphrase_prompts`` (list of strings) and
``neighborhood_prompts`` (list of strings: other subjects whose true object is the same
``target_true``). The subject fills the prompt's ``{}``.

zsRE rows (a local ``.json`` list or ``.jsonl``, e.g. ``zsre_mend_eval.json``): ``subject``,
``src`` (the question), ``alt`` (the new answer), ``answers`` (the true answers; the first one
is used), ``rephrase`` (a paraphrased question), ``loc`` and ``loc_ans`` (an unrelated question
and its answer: specificity).

``"builtin"`` generates CounterFact-shaped records about the built-in fictitious people
(:func:`obliviate.data.builtin_scenarios.generate_builtin_counterfact`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from obliviate.data.types import DataError

COUNTERFACT_HUB = "azhx/counterfact"
COUNTERFACT_SPLIT = "train"


@dataclass(frozen=True)
class EditRecord:
    """One fact to rewrite (or forget): ``prompt`` holds the subject (already filled in)."""

    subject: str
    prompt: str
    target_true: str
    target_new: str
    paraphrases: tuple[str, ...] = ()
    neighbours: tuple[tuple[str, str], ...] = ()  # (prompt, answer to keep)
    case_id: Any = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def _text(value: Any, where: str, name: str) -> str:
    if isinstance(value, dict):
        value = value.get("str")
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: {name} must be a non-empty string, got {value!r:.80}")
    return value


def _texts(value: Any, where: str, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, str) and v.strip() for v in value
    ):
        raise DataError(f"{where}: {name} must be a list of non-empty strings")
    return tuple(value)


def fill_subject(prompt: str, subject: str, where: str) -> str:
    """``prompt`` with every ``{}`` replaced by ``subject`` (CounterFact's prompt convention)."""
    if "{}" not in prompt:
        raise DataError(f"{where}: requested_rewrite.prompt needs '{{}}' where the subject goes")
    return prompt.replace("{}", subject)


def parse_counterfact_row(row: Any, where: str) -> EditRecord:
    """Validate one CounterFact row; errors name the row and the field."""
    if not isinstance(row, dict) or not isinstance(row.get("requested_rewrite"), dict):
        have = ", ".join(repr(k) for k in row) if isinstance(row, dict) else type(row).__name__
        raise DataError(
            f"{where}: expected 'requested_rewrite' (an object with prompt, subject, "
            f"target_true, target_new), 'paraphrase_prompts', 'neighborhood_prompts'; got {have}"
        )
    rw = row["requested_rewrite"]
    subject = _text(rw.get("subject"), where, "requested_rewrite.subject")
    prompt = fill_subject(
        _text(rw.get("prompt"), where, "requested_rewrite.prompt"), subject, where
    )
    true = _text(rw.get("target_true"), where, "requested_rewrite.target_true.str")
    new = _text(rw.get("target_new"), where, "requested_rewrite.target_new.str")
    if true.strip() == new.strip():
        raise DataError(f"{where}: target_new equals target_true ({true!r}); nothing to rewrite")
    neighbours = _texts(row.get("neighborhood_prompts"), where, "neighborhood_prompts")
    return EditRecord(
        subject,
        prompt,
        true,
        new,
        _texts(row.get("paraphrase_prompts"), where, "paraphrase_prompts"),
        tuple((n, true) for n in neighbours),
        row.get("case_id"),
    )


def parse_zsre_row(row: Any, where: str) -> EditRecord:
    """Validate one zsRE row (MEND/ROME evaluation shape); errors name the row and the field."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected an object with subject, src, alt, answers, loc, ...")
    subject = _text(row.get("subject"), where, "subject")
    src = _text(row.get("src"), where, "src")
    answers = _texts(row.get("answers"), where, "answers")
    if not answers:
        raise DataError(f"{where}: answers is empty; give the true answer(s)")
    loc = row.get("loc")
    neighbours: tuple[tuple[str, str], ...] = ()
    if loc is not None:
        neighbours = ((_text(loc, where, "loc"), _text(row.get("loc_ans"), where, "loc_ans")),)
    return EditRecord(
        subject,
        src,
        answers[0],
        _text(row.get("alt"), where, "alt"),
        _texts(row.get("rephrase"), where, "rephrase"),
        neighbours,
        row.get("case_id"),
    )


def load_edit_records(
    source: str | os.PathLike[str],
    kind: str = "counterfact",
    split: str = COUNTERFACT_SPLIT,
    *,
    revision: str | None = None,
    **builtin_kwargs: Any,
) -> list[EditRecord]:
    """Records of ``source`` in the ``kind`` ("counterfact" or "zsre") shape (module docstring).
    ``split``: the hub split, or the built-in forget split (forget01/05/10). zsRE has no hub
    copy here: it is read from a local file."""
    from obliviate.data.wmdp import file_or_hub_records

    if kind not in ("counterfact", "zsre"):
        raise ValueError(f"kind must be 'counterfact' or 'zsre', not {kind!r}")
    source = os.fspath(source)
    if builtin_kwargs and source != "builtin":
        raise ValueError(f"options {sorted(builtin_kwargs)} apply only to source='builtin'")
    if source == "builtin":
        if kind != "counterfact":
            raise DataError(
                "the built-in edit records are CounterFact-shaped: use builtin-counterfact"
            )
        from obliviate.data.builtin_scenarios import generate_builtin_counterfact

        rows = generate_builtin_counterfact(split, **builtin_kwargs)
        records = [(f"builtin counterfact: row {i}", r) for i, r in enumerate(rows, 1)]
    elif kind == "zsre" and not os.path.isfile(os.path.expanduser(source)):
        raise DataError(
            f"{source}: zsRE is read from a local file (e.g. zsre_mend_eval.json from the ROME "
            "or MEND data); give its path with --data FILE"
        )
    else:
        what = "CounterFact" if kind == "counterfact" else "zsRE"
        records = file_or_hub_records(source, None, split, revision, what)
    parse = parse_counterfact_row if kind == "counterfact" else parse_zsre_row
    out = [parse(row, where) for where, row in records]
    if not out:
        raise DataError(f"{source}: no {kind} record")
    return out
