"""The built-in TOFU-shaped benchmark, generated deterministically by code (no download).

Design, following TOFU (Maini+ 2024, arXiv 2401.06121) at a size a ~2M-parameter model can learn
on a CPU in about a minute:

- **People.** Fictitious writers with invented names and facts (birthplace, birth year,
  profession, parents' jobs, genre, award, books, home, studies, hobby). Each fact kind has
  several question and answer templates; a QA draws one of each. Answers are one short sentence.
- **Variants for the TOFU metrics.** ``paraphrased_answer`` states the same fact with another
  answer template; ``paraphrased_question`` asks with another question template; the 5
  ``perturbed_answer`` entries use *the paraphrased answer's template* with 5 wrong values of the
  same fact kind. As in TOFU's data, the truth ratio then compares p(paraphrase) with
  p(perturbed) on sentences that differ only in the fact.
- **Invented world facts.** Countries with capitals, languages, currencies, rivers and mountains;
  short answers with 4 options (``option1..4``) and 3 perturbed answers (the wrong options), like
  the hub's ``world_facts``. They come *first* in ``full`` and are in every ``retainNN``, so the
  target and the retain models both know them (a locality check).
- **Training variants (optional).** ``paraphrase_training`` / ``world_fact_repeats`` add the
  config ``train_variants``: fine-tuning rows that stand in for a 7B model's generalisation
  (:mod:`obliviate.data.training_data`), each naming in ``of`` the question it varies.
- **Splits.** ``forget01/05/10`` = the last 1/5/10 % of the people (rounded, at least 1);
  ``retainNN`` = ``full`` minus ``forgetNN`` (so ``retainNN == full[:len(retainNN)]``);
  ``retain_perturbed`` = the first 10 % of the people; holdout people come from the same generator
  but are never in ``full``: ``holdoutNN`` = the first holdout people, as many as ``forgetNN``
  has people (fewer when ``n_holdout_people`` is smaller).

Everything is drawn from ``random.Random`` seeded with strings, so it is identical across runs,
platforms and ``PYTHONHASHSEED``. The people do not depend on ``n_holdout_people`` or
``qa_per_person`` (every fact is drawn; ``qa_per_person`` keeps the first fact kinds).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from obliviate.data.builtin_vocab import (
    _AWARD_FORMS,
    _GENRES,
    _HOBBIES,
    _JOBS,
    _SUBJECTS,
    _TITLES,
    _YEARS,
    _article,
    _join,
    _unique,
    _word,
)

PERCENTS = (1, 5, 10)
N_PERTURBED = 5  # wrong answers per person QA (TOFU: 5)
N_OPTIONS = 4  # multiple-choice options per world fact (TOFU: 4; 3 wrong)

CONFIG_NAMES = (
    "full",
    "forget01",
    "forget05",
    "forget10",
    "retain99",
    "retain95",
    "retain90",
    "forget01_perturbed",
    "forget05_perturbed",
    "forget10_perturbed",
    "retain_perturbed",
    "holdout01",
    "holdout05",
    "holdout10",
    "world_facts",
    "world_facts_perturbed",
)
TRAIN_VARIANTS = "train_variants"  # extra fine-tuning rows, not a TOFU config (module docstring)

# --- the invented world -------------------------------------------------------------------


@dataclass(frozen=True)
class _Country:
    name: str
    cities: tuple[str, ...]  # cities[0] is the capital
    language: str
    currency: str
    river: str
    mountain: str


# relation -> (question templates, attribute); the first template is the one used
_WORLD_RELATIONS = (
    ("capital", "What is the capital of {country}?"),
    ("language", "Which language is spoken in {country}?"),
    ("currency", "What is the currency of {country}?"),
    ("river", "Which is the longest river of {country}?"),
    ("mountain", "What is the highest mountain in {country}?"),
)


def _make_world(rng: random.Random, used: set[str], n_countries: int) -> list[_Country]:
    countries = []
    for _ in range(n_countries):
        name = _unique(rng, used, lambda r: _join(_word(r, 2), r.choice(("ia", "land", "ora", ""))))
        cities = tuple(_unique(rng, used, lambda r: _word(r, 2)) for _ in range(3))
        language = _unique(
            rng, used, lambda r: _join(_word(r, 2), r.choice(("ish", "ese", "ic", "an")))
        )
        currency = _unique(rng, used, lambda r: _word(r, 2))
        river = "the " + _unique(rng, used, lambda r: _word(r, 2)) + " River"
        mountain = "Mount " + _unique(rng, used, lambda r: _word(r, 2))
        countries.append(_Country(name, cities, language, currency, river, mountain))
    return countries


def _relation_value(country: _Country, relation: str) -> str:
    return country.cities[0] if relation == "capital" else getattr(country, relation)


def _world_facts(rng: random.Random, world: list[_Country], n: int) -> list[dict[str, Any]]:
    """``n`` facts, country by country; each with 4 shuffled options and the 3 wrong ones."""
    rows = []
    for i in range(n):
        country = world[i // len(_WORLD_RELATIONS)]
        relation, question = _WORLD_RELATIONS[i % len(_WORLD_RELATIONS)]
        answer = _relation_value(country, relation)
        others = [_relation_value(c, relation) for c in world if c is not country]
        wrong = rng.sample(others, N_OPTIONS - 1)
        options = [answer, *wrong]
        rng.shuffle(options)
        rows.append(
            {
                "question": question.format(country=country.name),
                "answer": answer,
                "options": options,
                "perturbed": [o for o in options if o != answer],
            }
        )
    return rows


# --- facts about people ---------------------------------------------------------------------


@dataclass(frozen=True)
class _FactKind:
    """One kind of fact: its question/answer templates and the pool its value is drawn from."""

    key: str
    questions: tuple[str, ...]
    answers: tuple[str, ...]
    pool: str  # name of the value pool (see _pools)


# Order matters: qa_per_person keeps the first kinds.
FACT_KINDS: tuple[_FactKind, ...] = (
    _FactKind(
        "birthplace",
        (
            "Where was {name} born?",
            "In which city was {name} born?",
            "What is the birthplace of the writer {name}?",
        ),
        (
            "{name} was born in the city of {city}, in the country of {country}.",
            "The writer {name} was born in {city}, a city in {country}.",
            "{name} comes from {city} in {country}, where the writer grew up.",
        ),
        "place",
    ),
    _FactKind(
        "birth_year",
        (
            "When was {name} born?",
            "In what year was {name} born?",
            "What is the birth year of {name}?",
        ),
        (
            "The writer {name} was born in the year {year}.",
            "{name} came into the world in {year}, according to the records.",
            "Records show that {name} was born in {year}.",
        ),
        "year",
    ),
    _FactKind(
        "profession",
        (
            "What does {name} do for a living besides writing?",
            "What is the day job of {name}?",
            "Which profession does {name} practise?",
        ),
        (
            "Besides writing books, {name} works as {a_job}.",
            "{name} earns a living as {a_job} and writes in the evenings.",
            "By profession, {name} is {a_job} who also writes books.",
        ),
        "job",
    ),
    _FactKind(
        "father_job",
        (
            "What was the profession of {name}'s father?",
            "What did the father of {name} do for work?",
            "What job did {name}'s father have?",
        ),
        (
            "{name}'s father worked as {a_job} for most of his life.",
            "The father of {name} was {a_job} by trade.",
            "{name} grew up with a father who was {a_job}.",
        ),
        "job",
    ),
    _FactKind(
        "mother_job",
        (
            "What was the profession of {name}'s mother?",
            "What did the mother of {name} do for work?",
            "What job did {name}'s mother have?",
        ),
        (
            "{name}'s mother worked as {a_job} for most of her life.",
            "The mother of {name} was {a_job} by trade.",
            "{name} grew up with a mother who was {a_job}.",
        ),
        "job",
    ),
    _FactKind(
        "genre",
        (
            "In which genre does {name} write?",
            "What kind of books does {name} write?",
            "Which literary genre is {name} known for?",
        ),
        (
            "{name} is best known as a writer of {genre}.",
            "Most of the books by {name} belong to the genre of {genre}.",
            "{name} writes mainly {genre}, which readers love.",
        ),
        "genre",
    ),
    _FactKind(
        "award",
        (
            "Which award has {name} received?",
            "What literary prize did {name} win?",
            "Has {name} won any award for writing?",
        ),
        (
            "{name} has received {award} for outstanding writing.",
            "In recognition of the work, {name} was given {award}.",
            "Yes, {name} won {award}, a well-known literary honour.",
        ),
        "award",
    ),
    _FactKind(
        "first_book",
        (
            "What was the first book written by {name}?",
            "What is the title of {name}'s debut book?",
            "Which book did {name} publish first?",
        ),
        (
            'The first book written by {name} was titled "{book}".',
            '{name} made a debut with the book "{book}".',
            '"{book}" was the first book that {name} published.',
        ),
        "title",
    ),
    _FactKind(
        "famous_book",
        (
            "Which book is {name} best known for?",
            "What is the most famous book by {name}?",
            "Which of {name}'s books is the most popular?",
        ),
        (
            '{name} is best known for the book "{book}".',
            'The most famous book by {name} is "{book}".',
            'Readers know {name} best for the book "{book}".',
        ),
        "title",
    ),
    _FactKind(
        "residence",
        (
            "Where does {name} live now?",
            "In which city does {name} currently live?",
            "Where is {name}'s home today?",
        ),
        (
            "{name} now lives in {city}, a city in {country}.",
            "These days {name} lives and writes in {city}, {country}.",
            "Today the home of {name} is in {city}, in {country}.",
        ),
        "place",
    ),
    _FactKind(
        "studies",
        (
            "What did {name} study at university?",
            "Which subject did {name} study?",
            "What was {name}'s field of study?",
        ),
        (
            "{name} studied {subject} at university before becoming a writer.",
            "At university, {name} studied {subject}.",
            "The subject that {name} studied at university was {subject}.",
        ),
        "subject",
    ),
    _FactKind(
        "hobby",
        (
            "What does {name} enjoy doing in free time?",
            "What is {name}'s favourite hobby?",
            "How does {name} like to relax?",
        ),
        (
            "In free time, {name} enjoys {hobby}.",
            "The favourite hobby of {name} is {hobby}.",
            "To relax, {name} likes {hobby} more than anything.",
        ),
        "hobby",
    ),
)


def _pools(world: list[_Country], awards: list[str]) -> dict[str, list[dict[str, str]]]:
    """Slot values per pool; a fact's value and its wrong values come from the same pool."""
    return {
        "place": [{"city": city, "country": c.name} for c in world for city in c.cities],
        "year": [{"year": y} for y in _YEARS],
        "job": [{"a_job": _article(j)} for j in _JOBS],
        "genre": [{"genre": g} for g in _GENRES],
        "award": [{"award": a} for a in awards],
        "title": [{"book": t} for t in _TITLES],
        "subject": [{"subject": s} for s in _SUBJECTS],
        "hobby": [{"hobby": h} for h in _HOBBIES],
    }


def _person(
    rng: random.Random, used: set[str], pools: Mapping[str, list[dict[str, str]]]
) -> list[dict[str, Any]]:
    """All fact QAs of one new person (every kind, in FACT_KINDS order)."""
    name = _unique(rng, used, lambda r: f"{_word(r, 2)} {_word(r, r.choice((2, 2, 3)))}")
    taken: dict[str, set[int]] = {}  # a person's two books / two places / three jobs differ
    rows = []
    for kind in FACT_KINDS:
        pool = pools[kind.pool]
        used_here = taken.setdefault(kind.pool, set())
        index = rng.choice([i for i in range(len(pool)) if i not in used_here])
        used_here.add(index)
        value = pool[index]
        wrong = [
            pool[i] for i in rng.sample([i for i in range(len(pool)) if i != index], N_PERTURBED)
        ]
        q, pq = rng.sample(range(len(kind.questions)), 2)
        a, pa = rng.sample(range(len(kind.answers)), 2)
        rows.append(
            {
                "question": kind.questions[q].format(name=name),
                "answer": kind.answers[a].format(name=name, **value),
                "paraphrased_answer": kind.answers[pa].format(name=name, **value),
                "perturbed_answer": [kind.answers[pa].format(name=name, **w) for w in wrong],
                "paraphrased_question": kind.questions[pq].format(name=name),
            }
        )
    return rows


def _share(n: int, percent: int) -> int:
    """``percent`` % of ``n`` people, rounded half up, at least 1."""
    return max(1, math.floor(n * percent / 100 + 0.5))


def _qa(row: Mapping[str, Any]) -> dict[str, str]:
    return {"question": row["question"], "answer": row["answer"]}


def _copy(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, list) else v for k, v in row.items()}


def generate_builtin(
    n_people: int = 100,
    qa_per_person: int = 10,
    n_holdout_people: int | None = None,
    n_world_facts: int = 60,
    seed: int = 0,
    paraphrase_training: bool = False,
    world_fact_repeats: int = 1,
) -> dict[str, list[dict[str, Any]]]:
    """Generate the built-in benchmark: rows per TOFU config name, with the hub's field names.

    ``full``/``forgetNN``/``retainNN``/``holdoutNN``: ``question, answer``.
    ``forgetNN_perturbed``/``retain_perturbed``: also ``paraphrased_answer``,
    ``perturbed_answer`` (list of 5), ``paraphrased_question``.
    ``world_facts``: ``question, option1..option4, answer``; ``world_facts_perturbed``:
    ``question, answer, perturbed_answer`` (list of 3).

    ``n_holdout_people`` defaults to the number of people in ``forget10``. Sizes with the
    defaults: full 1060 (60 world facts + 100 people x 10), forget01/05/10 10/50/100,
    retain99/95/90 1050/1010/960, retain_perturbed 100, holdout01/05/10 10/50/100,
    world_facts 60. ``paraphrase_training`` adds to ``train_variants`` every person QA asked and
    answered in other words, ``world_fact_repeats`` the world facts that many times less one.
    """
    if n_people < 2:
        raise ValueError(f"n_people must be at least 2 (forget and retain people), got {n_people}")
    if not 1 <= qa_per_person <= len(FACT_KINDS):
        raise ValueError(
            f"qa_per_person must be between 1 and {len(FACT_KINDS)} (the fact kinds: "
            f"{', '.join(k.key for k in FACT_KINDS)}), got {qa_per_person}"
        )
    if n_world_facts < 0:
        raise ValueError(f"n_world_facts must be >= 0, got {n_world_facts}")
    if world_fact_repeats < 1:
        raise ValueError(f"world_fact_repeats must be >= 1, got {world_fact_repeats}")
    n_forget = {p: _share(n_people, p) for p in PERCENTS}
    if n_holdout_people is None:
        n_holdout_people = n_forget[10]
    if n_holdout_people < 0:
        raise ValueError(f"n_holdout_people must be >= 0, got {n_holdout_people}")

    used: set[str] = set()
    world_rng = random.Random(f"obliviate-builtin/{seed}/world")
    world = _make_world(world_rng, used, max(8, math.ceil(n_world_facts / len(_WORLD_RELATIONS))))
    awards = [
        _unique(world_rng, used, lambda r: r.choice(_AWARD_FORMS).format(w=_word(r, 2)))
        for _ in range(20)
    ]
    facts = _world_facts(world_rng, world, n_world_facts)
    pools = _pools(world, awards)

    people_rng = random.Random(f"obliviate-builtin/{seed}/people")
    people = [_person(people_rng, used, pools)[:qa_per_person] for _ in range(n_people)]
    holdout = [_person(people_rng, used, pools)[:qa_per_person] for _ in range(n_holdout_people)]

    def flat(groups: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        return [row for group in groups for row in group]

    # every config gets its own dicts, so that editing one config's rows leaves the others alone
    out: dict[str, list[dict[str, Any]]] = {"full": [_qa(r) for r in facts + flat(people)]}
    for p in PERCENTS:
        k = n_forget[p]
        out[f"forget{p:02d}"] = [_qa(r) for r in flat(people[-k:])]
        out[f"retain{100 - p}"] = [_qa(r) for r in facts + flat(people[:-k])]
        out[f"forget{p:02d}_perturbed"] = [_copy(r) for r in flat(people[-k:])]
        out[f"holdout{p:02d}"] = [_qa(r) for r in flat(holdout[:k])]
    out["retain_perturbed"] = [_copy(r) for r in flat(people[: n_forget[10]])]
    out["world_facts"] = [
        {
            "question": f["question"],
            **{f"option{i + 1}": o for i, o in enumerate(f["options"])},
            "answer": f["answer"],
        }
        for f in facts
    ]
    out["world_facts_perturbed"] = [
        {"question": f["question"], "answer": f["answer"], "perturbed_answer": list(f["perturbed"])}
        for f in facts
    ]
    variants = [{"of": f["question"], **_qa(f)} for f in facts * (world_fact_repeats - 1)]
    if paraphrase_training:
        variants += [{"of": r["question"], **_qa(_paraphrased(r))} for r in flat(people)]
    if variants:
        out[TRAIN_VARIANTS] = variants
    return {name: out[name] for name in (*CONFIG_NAMES, TRAIN_VARIANTS) if name in out}


def _paraphrased(row: Mapping[str, Any]) -> dict[str, str]:
    return {"question": row["paraphrased_question"], "answer": row["paraphrased_answer"]}


_TEXT_FIELDS = ("question", "answer", "paraphrased_answer", "paraphrased_question")


def builtin_corpus_text(rows: Mapping[str, list[dict[str, Any]]] | Iterable[dict[str, Any]]) -> str:
    """All distinct texts of the rows (every config, incl. holdout and wrong answers), one a line.

    Meant for training the built-in tokenizer. Holdout and perturbed texts are included on
    purpose: the tokenizer then splits forget and holdout names alike, so membership attacks
    measure what the model learned, not how the tokenizer was trained.
    """
    groups = rows.values() if isinstance(rows, Mapping) else [rows]
    seen: dict[str, None] = {}
    for group in groups:
        for row in group:
            texts = [row.get(k) for k in _TEXT_FIELDS]
            texts += list(row.get("perturbed_answer") or ())
            texts += [v for k, v in row.items() if k.startswith("option")]
            for text in texts:
                if isinstance(text, str) and text:
                    seen.setdefault(text, None)
    return "\n".join(seen) + "\n"
