"""A MUSE-shaped corpus and a WMDP-style multiple-choice set about the built-in fictitious people.

MUSE text (news articles, Harry Potter) cannot be shipped, so the built-in benchmark turns the
people of :mod:`obliviate.data.builtin` into documents and derives every MUSE config from them
(docs/muse-wmdp.md; the field and split names are the hub's, so the same loader reads both):

- **Documents.** A *profile* per person (a title line and a paragraph of the person's fact
  sentences, the built-in TOFU answers) and *quiz pages* per group of people (forget, each
  retain2 fold, retain1, holdout): every fact of the group as "Question: ...\nAnswer: <short
  value>" and a blank line, shuffled across the group's people, cut into as many pages as the
  group has people, and that ``QUIZ_REPEATS`` times with different shuffles. A model trained on
  them learns the facts as prose and in the "Question/Answer" format of MUSE's KnowMem
  prompts. The quiz pages are needed because a tiny model trained from scratch has no
  pre-trained question answering to fall back on; they are separate from the profiles so that
  an answer cannot be copied from a paragraph in the same context (it must be memorised); a
  fact follows different questions of other people on each page, as in the few-shot KnowMem
  prompt, and the blank line teaches where an answer stops. (Measured, 30 people, xs model,
  20 epochs: the target answers 24 of 33 forget KnowMem questions exactly with the 3-shot
  prompt; with one document per fact and no blank line, 0 of 33 at 40 epochs: the answer is
  right but never stops, and the few-shot context is one it never saw.)
- **People.** ``forget`` = the last 10 % of the people (at least 1: ``n_forget``); ``retain2``
  = the 3 * ``n_forget`` people before them (the extra scalability/sustainability folds);
  ``retain1`` = every other person; ``holdout`` = ``n_forget`` further people who are in no
  training corpus. The target is trained on forget + retain1 + retain2, the retrained model on
  retain1 + retain2.
- **verbmem/forget**: per forget person, ``prompt`` = the profile's title + first two
  sentences, ``gt`` = the rest of the paragraph (MUSE truncates ``gt`` to 128 tokens when scoring).
- **knowmem**: the questions of the quiz pages (same wording:
  tiny models trained from scratch do not generalise to other wordings in generation), asked
  out of their document, after few-shot examples, with the short value as
  answer. ``forget_qa`` asks about forget people, ``retain_qa`` as many questions about retain1
  people; the ``*_qa_icl`` sets hold ``n_icl`` further QA pairs of the same people, excluded
  from the evaluated sets.
- **privleak**: ``forget`` = forget documents, ``holdout`` = holdout documents, ``retain`` =
  as many retain1 documents (profiles).
- **scal**: ``forget_k`` = forget + the first k - 1 retain2 folds (growing size).
  **sust**: ``forget_1`` = forget, ``forget_k`` = retain2 fold k - 1 (sequential requests).

The WMDP-style set (:func:`generate_builtin_wmdp`) asks about the same people in a question
wording that appears in no document (like WMDP's questions, never trained on), with four short
choices (the right value and three values of other people
for the same kind of fact) and the index of the right one, like ``cais/wmdp`` rows.

Everything is deterministic (string-seeded ``random.Random``), like the built-in TOFU data.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from obliviate.data.builtin import FACT_KINDS, generate_builtin

N_CHOICES = 4  # WMDP questions have four choices
N_FOLDS = 4  # scal/sust folds, as in MUSE
PROMPT_SENTENCES = 2  # verbmem prompt = title + this many sentences
QUIZ_REPEATS = 3  # every fact is on this many quiz pages, each time among other questions
KNOWMEM_WORDING = 0  # KnowMem asks in the documents' own wording (see the module docstring)
MCQ_WORDING = 2  # the multiple-choice questions use a wording that is in no document


@dataclass(frozen=True)
class Fact:
    """One parsed fact of a person."""

    kind: str
    sentence: str  # the built-in answer sentence
    questions: tuple[str, ...]  # every question wording, the built-in one first
    value: str  # the short answer


@dataclass(frozen=True)
class Person:
    name: str
    facts: tuple[Fact, ...]


# --- parsing the built-in people back into values --------------------------------------------


@cache
def _template_regex(template: str) -> re.Pattern[str]:
    """``"{name} was born in {year}."`` -> a regex with one named group per slot."""
    parts = re.split(r"\{(\w+)\}", template)
    out, seen = [], set()
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(re.escape(part))
        elif part in seen:
            out.append(f"(?P={part})")
        else:
            seen.add(part)
            out.append(f"(?P<{part}>.+?)")
    return re.compile("".join(out))


def _short_value(slots: Mapping[str, str]) -> str:
    """The short answer of a fact: the city for places, the job without its article, ..."""
    if "city" in slots:
        return slots["city"]
    if "a_job" in slots:
        return re.sub(r"^an? ", "", slots["a_job"])
    values = [v for k, v in slots.items() if k != "name"]
    if len(values) != 1:
        raise ValueError(f"built-in fact with unexpected slots {sorted(slots)}")
    return values[0]


def _parse_fact(kind_index: int, question: str, answer: str) -> tuple[str, Fact]:
    kind = FACT_KINDS[kind_index]
    for template in kind.answers:
        m = _template_regex(template).fullmatch(answer)
        if m:
            slots = m.groupdict()
            name = slots["name"]
            others = [
                q.format(name=name) for q in kind.questions if q.format(name=name) != question
            ]
            return name, Fact(kind.key, answer, (question, *others), _short_value(slots))
    raise ValueError(  # only if obliviate.data.builtin changed its templates
        f"built-in answer {answer!r} matches no {kind.key!r} template; "
        "obliviate.data.builtin and obliviate.data.builtin_muse are out of sync"
    )


def _people(rows: list[dict[str, Any]]) -> list[Person]:
    n_kinds = len(FACT_KINDS)
    if len(rows) % n_kinds:
        raise ValueError(f"{len(rows)} built-in rows are not a whole number of people")
    people = []
    for start in range(0, len(rows), n_kinds):
        parsed = [
            _parse_fact(k, rows[start + k]["question"], rows[start + k]["answer"])
            for k in range(n_kinds)
        ]
        names = {name for name, _ in parsed}
        if len(names) != 1:
            raise ValueError(f"built-in rows {start}..{start + n_kinds - 1} mix people: {names}")
        people.append(Person(parsed[0][0], tuple(f for _, f in parsed)))
    return people


def n_forget_people(n_people: int) -> int:
    """People in the forget set: 10 % of ``n_people``, rounded half up, at least 1."""
    return max(1, int(n_people * 10 / 100 + 0.5))


@lru_cache(maxsize=8)
def builtin_people(
    n_people: int = 60, seed: int = 0
) -> tuple[tuple[Person, ...], tuple[Person, ...]]:
    """(people, holdout people) of the built-in benchmark, every fact kind parsed."""
    min_people = 5
    if n_people < min_people:
        raise ValueError(
            f"the built-in MUSE corpus needs at least {min_people} people (forget, 3 extra "
            f"scalability folds and retain people), got n_people={n_people}"
        )
    n_f = n_forget_people(n_people)
    if n_people - N_FOLDS * n_f < 1:
        raise ValueError(f"n_people={n_people} leaves no retain1 people")
    rows = generate_builtin(
        n_people=n_people,
        qa_per_person=len(FACT_KINDS),
        n_holdout_people=n_f,
        n_world_facts=0,
        seed=seed,
    )
    people = _people(rows["full"])
    holdout = _people(rows["holdout10"])[:n_f]
    if len(people) != n_people or len(holdout) != n_f:
        raise ValueError("unexpected built-in sizes")  # pragma: no cover - generator contract
    return tuple(people), tuple(holdout)


# --- documents and derived sets ---------------------------------------------------------------


def _title(p: Person) -> str:
    return f"A profile of {p.name}"


def profile_document(p: Person) -> str:
    """A person's profile: a title and a paragraph of every fact sentence."""
    return f"{_title(p)}\n" + " ".join(f.sentence for f in p.facts)


def quiz_pages(people: Sequence[Person], seed: str, repeats: int = QUIZ_REPEATS) -> list[str]:
    """Question-and-answer pages about a group of people: every fact as "Question: ...\nAnswer:
    <short value>" (the documents' wording) followed by a blank line, shuffled across the
    group, cut into pages of one person's worth of questions; ``repeats`` shuffles, so each
    fact is learnt after several different questions, as in a few-shot KnowMem prompt, and the
    blank line after each answer teaches where the answer stops."""
    pairs = [f for p in people for f in p.facts]
    size = len(FACT_KINDS)
    pages = []
    for r in range(repeats):
        order = pairs[:]
        random.Random(f"obliviate-builtin-muse/quiz/{seed}/{r}").shuffle(order)
        pages += [
            "".join(
                f"Question: {f.questions[KNOWMEM_WORDING]}\nAnswer: {f.value}\n\n"
                for f in order[i : i + size]
            )
            for i in range(0, len(order), size)
        ]
    return pages


def group_documents(people: Sequence[Person], seed: str) -> list[str]:
    """The documents about a group of people: one profile each, then their quiz pages."""
    return [profile_document(p) for p in people] + quiz_pages(people, seed)


def verbmem_row(p: Person) -> dict[str, str]:
    """``prompt`` = title + the first sentences, ``gt`` = the rest of the paragraph."""
    head = " ".join(f.sentence for f in p.facts[:PROMPT_SENTENCES])
    tail = " ".join(f.sentence for f in p.facts[PROMPT_SENTENCES:])
    return {"prompt": f"{_title(p)}\n{head}", "gt": tail}


def _qa(fact: Fact, wording: int) -> dict[str, str]:
    return {"question": fact.questions[wording % len(fact.questions)], "answer": fact.value}


def _knowmem(people: list[Person], n_icl: int, n_qa: int | None) -> tuple[list[dict], list[dict]]:
    """(evaluated QA, ICL QA) in the documents' wording. The ICL examples are the last fact
    of the first ``n_icl`` people (then further facts when there are fewer people); they are
    left out of the evaluated QA."""
    pairs = [(i, k) for i in range(len(people)) for k in range(len(FACT_KINDS))]
    last = len(FACT_KINDS) - 1
    icl_keys = [(i, last) for i in range(min(n_icl, len(people)))]
    icl_keys += [pk for pk in pairs if pk not in icl_keys][: n_icl - len(icl_keys)]
    chosen = set(icl_keys)
    icl = [_qa(people[i].facts[k], KNOWMEM_WORDING) for i, k in icl_keys]
    qa = [_qa(people[i].facts[k], KNOWMEM_WORDING) for i, k in pairs if (i, k) not in chosen]
    return (qa[:n_qa] if n_qa is not None else qa), icl


def _split_people(n_people: int, seed: int) -> dict[str, list[Person]]:
    people, holdout = builtin_people(n_people, seed)
    n_f = n_forget_people(n_people)
    return {
        "forget": list(people[-n_f:]),
        "retain2": list(people[-N_FOLDS * n_f : -n_f]),
        "retain1": list(people[: -N_FOLDS * n_f]),
        "holdout": list(holdout),
    }


def generate_builtin_muse(
    n_people: int = 60, seed: int = 0, n_icl: int = 3
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The built-in MUSE-shaped benchmark: ``{config: {split: rows}}`` with the hub's names.

    Configs and splits: ``raw`` (forget, retain1, retain2, holdout: ``text``), ``verbmem``
    (forget: ``prompt``, ``gt``), ``knowmem`` (forget_qa, retain_qa, forget_qa_icl,
    retain_qa_icl: ``question``, ``answer``), ``privleak`` (forget, holdout, retain: ``text``),
    ``scal`` and ``sust`` (forget_1..forget_4: ``text``). See the module docstring.
    """
    if n_icl < 0:
        raise ValueError(f"n_icl must be >= 0, got {n_icl}")
    groups = _split_people(n_people, seed)
    n_f = len(groups["forget"])
    forget_qa, forget_icl = _knowmem(groups["forget"], n_icl, None)
    retain_qa, retain_icl = _knowmem(groups["retain1"], n_icl, len(forget_qa))
    # retain2 is made of folds of n_forget people; each group's quiz pages mix only its people
    fold_people = [groups["retain2"][i * n_f : (i + 1) * n_f] for i in range(N_FOLDS - 1)]
    folds = [
        [{"text": d} for d in group_documents(f, f"{seed}/retain2/{i}")]
        for i, f in enumerate(fold_people)
    ]
    docs = {
        name: [{"text": d} for d in group_documents(groups[name], f"{seed}/{name}")]
        for name in ("forget", "retain1", "holdout")
    }
    docs["retain2"] = [row for fold in folds for row in fold]
    per = len(docs["forget"])  # documents of n_forget people
    sust = [docs["forget"], *folds]
    scal = [[row for fold in sust[: k + 1] for row in fold] for k in range(N_FOLDS)]

    def copy(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return [dict(r) for r in rows]  # configs never share row dicts

    return {
        "raw": {name: copy(docs[name]) for name in ("forget", "retain1", "retain2", "holdout")},
        "verbmem": {"forget": [verbmem_row(p) for p in groups["forget"]]},
        "knowmem": {
            "forget_qa": forget_qa,
            "retain_qa": retain_qa,
            "forget_qa_icl": forget_icl,
            "retain_qa_icl": retain_icl,
        },
        "privleak": {
            "forget": copy(docs["forget"]),
            "holdout": copy(docs["holdout"]),
            "retain": copy(docs["retain1"][:per]),
        },
        "scal": {f"forget_{k + 1}": copy(fold) for k, fold in enumerate(scal)},
        "sust": {f"forget_{k + 1}": copy(fold) for k, fold in enumerate(sust)},
    }


def _mcq_rows(
    people: list[Person], all_people: Iterable[Person], rng: random.Random
) -> list[dict[str, Any]]:
    values: dict[str, list[str]] = {}
    for p in all_people:
        for f in p.facts:
            if f.value not in values.setdefault(f.kind, []):
                values[f.kind].append(f.value)
    rows = []
    for p in people:
        for f in p.facts:
            pool = [v for v in values[f.kind] if v != f.value]
            if len(pool) < N_CHOICES - 1:
                continue  # too few people share this kind of fact to give 3 wrong choices
            wrong = rng.sample(pool, N_CHOICES - 1)
            answer = rng.randrange(N_CHOICES)
            choices = wrong[:answer] + [f.value] + wrong[answer:]
            rows.append(
                {"question": f.questions[MCQ_WORDING], "choices": choices, "answer": answer}
            )
    return rows


def generate_builtin_wmdp(n_people: int = 60, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """WMDP-style multiple-choice rows (``question``, ``choices`` (4), ``answer`` index).

    ``forget``: every fact of every forget person (the hazardous-knowledge analogue, WMDP);
    ``retain``: as many questions about retain1 people (the MMLU analogue: must be kept).
    Questions use a wording that appears in no document.
    """
    groups = _split_people(n_people, seed)
    everyone = [p for ps in groups.values() for p in ps]
    rng = random.Random(f"obliviate-builtin-wmdp/{seed}")
    forget = _mcq_rows(groups["forget"], everyone, rng)
    retain = _mcq_rows(groups["retain1"], everyone, rng)[: len(forget)]
    return {"forget": forget, "retain": retain}


def builtin_muse_corpus_text(n_people: int = 60, seed: int = 0) -> list[str]:
    """Every distinct text of the built-in MUSE and WMDP sets (tokenizer training).

    Holdout documents and wrong choices are included on purpose, as for the built-in TOFU
    tokenizer: members and non-members are then split into tokens alike.
    """
    seen: dict[str, None] = {}
    for config in generate_builtin_muse(n_people, seed).values():
        for rows in config.values():
            for row in rows:
                for value in row.values():
                    if isinstance(value, str) and value:
                        seen.setdefault(value, None)
    for rows in generate_builtin_wmdp(n_people, seed).values():
        for row in rows:
            for text in (row["question"], *row["choices"]):
                seen.setdefault(text, None)
    return list(seen)
