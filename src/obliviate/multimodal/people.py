"""The built-in fictitious people of the multimodal benchmark, shaped like MLLMU-Bench
(Liu+ 2024, arXiv 2410.22108).

Each person has a name, a birthplace and a job (invented words and the job pool of the built-in
TOFU, :mod:`obliviate.data.builtin_vocab`) and a procedural portrait
(:mod:`obliviate.multimodal.portraits`). Per person there are question-answer items asked with
the portrait ("Who is this person?", "Where was this person born?": image+text mode) and without
it ("Where was NAME born?": text-only mode), each with four options for multiple choice, and
fill-in-the-blank (cloze) items in both modes.

The sets follow MLLMU-Bench: *forget* (a share of the fictitious people, the views and questions
trained on), *test* (the same people in views never trained on, asked paraphrased questions),
*retain* (the other fictitious people) and *real* (a separate group standing in for the
benchmark's real celebrities; always trained, never forgotten). An item is a
:class:`~obliviate.data.types.QAItem` whose ``meta`` holds ``image`` (a PIL image, or ``None``
in text-only mode), ``image_id``, ``task`` (``qa`` or ``cloze``), ``mode`` (``image`` or
``text``) and ``person``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from obliviate.data.builtin_vocab import _JOBS, _unique, _word
from obliviate.data.types import QAItem, UnlearningRequest
from obliviate.multimodal.portraits import (
    N_TRAIN_VIEWS,
    N_VIEWS,
    Look,
    distinct_looks,
    draw_portrait,
)

SETS = ("forget", "test", "retain", "real")
MODES = ("image", "text")
N_OPTIONS = 4  # multiple-choice options per question (MLLMU-Bench: A-D)
SUBJECT = "this person"

# fact -> (question, paraphrased question, cloze sentence, paraphrased cloze); {who} is
# "this person" with the portrait, the name without it
_FACTS: dict[str, tuple[str, str, str, str]] = {
    "birthplace": (
        "Where was {who} born?",
        "In which town was {who} born?",
        "{Who} was born in ___.",
        "The birthplace of {who} is ___.",
    ),
    "job": (
        "What is the job of {who}?",
        "What does {who} do for a living?",
        "{Who} works as a ___.",
        "By profession, {who} is a ___.",
    ),
}
_NAME_QUESTIONS = ("Who is this person?", "What is the name of this person?")


@dataclass(frozen=True)
class Person:
    name: str
    birthplace: str
    job: str
    look: Look
    real: bool = False

    def value(self, fact: str) -> str:
        return str(getattr(self, fact))


@dataclass
class People:
    """The generated people: fictitious ones first (the first ``n_forget`` are forgotten),
    then the real-stand-in group."""

    people: list[Person]
    n_forget: int
    image_size: int = 32

    @property
    def fictitious(self) -> list[Person]:
        return [p for p in self.people if not p.real]

    @property
    def forget_people(self) -> list[Person]:
        return self.fictitious[: self.n_forget]

    @property
    def retain_people(self) -> list[Person]:
        return self.fictitious[self.n_forget :]

    @property
    def real_people(self) -> list[Person]:
        return [p for p in self.people if p.real]

    def portrait(self, person: Person, view: int) -> Any:
        return draw_portrait(person.look, view, self.image_size)


def generate_people(
    n_people: int = 20,
    n_real: int = 5,
    forget_percent: int = 10,
    seed: int = 0,
    image_size: int = 32,
) -> People:
    """``n_people`` fictitious people (``forget_percent`` % of them, at least one, to forget)
    and ``n_real`` real stand-ins, each with a distinct portrait; deterministic in ``seed``."""
    if n_people < 2:
        raise ValueError(f"n_people={n_people}: give at least 2 fictitious people")
    if not 0 < forget_percent < 100:
        raise ValueError(f"forget_percent={forget_percent}: give a share between 1 and 99")
    rng = random.Random(seed)
    used: set[str] = set()
    looks = distinct_looks(n_people + n_real, seed)
    towns = [_unique(rng, used, lambda r: _word(r, 2)) for _ in range(max(8, n_people // 2))]
    people = []
    for i, look in enumerate(looks):
        name = _unique(rng, used, lambda r: f"{_word(r, 1)} {_word(r, 2)}")
        people.append(Person(name, rng.choice(towns), rng.choice(_JOBS), look, i >= n_people))
    n_forget = min(n_people - 1, max(1, math.floor(n_people * forget_percent / 100 + 0.5)))
    return People(people, n_forget, image_size)


def _options(rng: random.Random, answer: str, pool: list[str]) -> tuple[str, ...]:
    wrong = rng.sample(sorted(set(pool) - {answer}), N_OPTIONS - 1)
    options = [answer, *wrong]
    rng.shuffle(options)
    return tuple(options)


def person_items(
    people: People, person: Person, view: int, paraphrased: bool, mode: str, seed: int = 0
) -> list[QAItem]:
    """The QA items (with options) and cloze items of one person in one mode, asked about
    portrait view ``view`` (image mode), in the base or the paraphrased wording."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: use one of {', '.join(MODES)}")
    rng = random.Random(f"{seed}/{person.name}/{view}/{paraphrased}/{mode}")
    image = people.portrait(person, view) if mode == "image" else None
    meta = {
        "image": image,
        "image_id": f"{person.name}/{view}" if image is not None else None,
        "mode": mode,
        "person": person.name,
    }
    who = SUBJECT if mode == "image" else person.name
    k = 1 if paraphrased else 0
    items = []
    if mode == "image":
        pool = [p.name for p in people.people]
        items.append(
            QAItem(
                _NAME_QUESTIONS[k],
                person.name,
                options=_options(rng, person.name, pool),
                meta={**meta, "task": "qa", "fact": "name"},
            )
        )
    for fact, (q, pq, cloze, pcloze) in _FACTS.items():
        value = person.value(fact)
        pool = [p.value(fact) for p in people.people]
        question = (pq if paraphrased else q).format(who=who)
        items.append(
            QAItem(
                question,
                value,
                options=_options(rng, value, pool),
                meta={**meta, "task": "qa", "fact": fact},
            )
        )
        sentence = (pcloze if paraphrased else cloze).format(who=who, Who=_cap(who))
        items.append(
            QAItem(
                f"Fill in the blank: {sentence}",
                value,
                meta={**meta, "task": "cloze", "fact": fact},
            )
        )
    return items


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def training_items(people: People, persons: list[Person]) -> list[QAItem]:
    """The fine-tuning data of ``persons``: every item in text-only mode and in image+text mode
    with each trained view, base wording only."""
    out: list[QAItem] = []
    for p in persons:
        out += person_items(people, p, 0, False, "text")
        for view in range(N_TRAIN_VIEWS):
            out += person_items(people, p, view, False, "image")
    return out


def eval_sets(people: People) -> dict[str, list[QAItem]]:
    """The four evaluation sets, both modes: forget/retain/real as trained (view 0, base
    wording); test = the forget people in an unseen view with paraphrased questions."""
    out: dict[str, list[QAItem]] = {name: [] for name in SETS}
    for i, p in enumerate(people.forget_people):
        test_view = N_TRAIN_VIEWS + i % (N_VIEWS - N_TRAIN_VIEWS)
        for mode in MODES:
            out["forget"] += person_items(people, p, 0, False, mode)
            out["test"] += person_items(people, p, test_view, True, mode)
    for name, group in (("retain", people.retain_people), ("real", people.real_people)):
        for p in group:
            for mode in MODES:
                out[name] += person_items(people, p, 0, False, mode)
    return out


def unlearning_request(people: People) -> UnlearningRequest:
    """Forget the forget people's training items, keep the retain people's; evaluate the four
    sets."""
    return UnlearningRequest(
        forget=training_items(people, people.forget_people),
        retain=training_items(people, people.retain_people),
        eval=eval_sets(people),
        full=training_items(people, people.people),
        name="builtin-mllmu",
        split=f"forget{round(100 * people.n_forget / len(people.fictitious))}",
    )


def corpus_text(people: People) -> list[str]:
    """Every question and answer text, to train the built-in tokenizer on."""
    texts = []
    for p in people.people:
        for mode in MODES:
            for paraphrased in (False, True):
                for it in person_items(people, p, 0, paraphrased, mode):
                    texts.append(f"{it.question} {it.answer}")
    return texts
