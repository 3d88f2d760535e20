"""TruthfulQA- and CounterFact-shaped rows about the built-in fictitious people (offline
equivalents of ``truthfulqa/truthful_qa`` and ``azhx/counterfact``; docs/scenarios.md).

Both are derived from :func:`obliviate.data.builtin.generate_builtin` with the same options
(``n_people``, ``qa_per_person``, ``n_world_facts``, ``seed``), so a model fine-tuned on the
built-in ``full`` split knows the facts they ask about.

- **TruthfulQA-shaped** (:func:`generate_builtin_truthfulqa`): one question per fact of the
  ``retain_perturbed`` people and per world fact (kept by every retain split: a utility check).
  ``mc1_targets`` = the trained answer (true) and the same sentence with the 5 wrong values of
  the built-in perturbed answers (false): the choices differ only in the fact.
  ``mc2_targets`` adds the paraphrased answer (true) and the perturbed answers themselves
  (false, in the paraphrase's sentence).
- **CounterFact-shaped** (:func:`generate_builtin_counterfact`): one record per fact of the
  people of a forget split. The built-in models learn "Question: ...\\nAnswer: <sentence>", so
  the rewrite prompt is that text up to the fact's value (e.g. ``"Question: Where was {} born?
  \\nAnswer: {} was born in the city of"``, the subject in every ``{}``) and the targets are
  the true value and another person's value of the same kind. Paraphrase prompts ask with the
  other question wordings; neighbourhood prompts are facts of retain people with the same
  true value (CounterFact's neighbourhood: other subjects sharing the object), at most
  ``MAX_NEIGHBOURS``.
"""

from __future__ import annotations

import random
import re
from typing import Any

from obliviate.data.builtin import FACT_KINDS, PERCENTS, _share, generate_builtin

MAX_NEIGHBOURS = 5


def _rows(n_people: int, qa_per_person: int, n_world_facts: int, seed: int) -> dict[str, Any]:
    return generate_builtin(
        n_people=n_people,
        qa_per_person=qa_per_person,
        n_holdout_people=0,
        n_world_facts=n_world_facts,
        seed=seed,
    )


def _match(kind_index: int, sentence: str) -> tuple[str, re.Match[str]]:
    """(template, regex match with one group per slot) of a built-in answer sentence."""
    from obliviate.data.builtin_muse import _template_regex

    kind = FACT_KINDS[kind_index]
    for template in kind.answers:
        m = _template_regex(template).fullmatch(sentence)
        if m is not None:
            return template, m
    raise ValueError(f"built-in answer {sentence!r} matches no {kind.key!r} template")


def generate_builtin_truthfulqa(
    n_people: int = 100, qa_per_person: int = 10, n_world_facts: int = 60, seed: int = 0
) -> list[dict[str, Any]]:
    """Rows in the hub's ``multiple_choice`` shape (module docstring)."""
    rows = _rows(n_people, qa_per_person, n_world_facts, seed)
    out = []
    for i, r in enumerate(rows["retain_perturbed"]):
        template, _ = _match(i % qa_per_person, r["answer"])
        # the wrong values, in the trained answer's own sentence
        wrong = [
            template.format(**_match(i % qa_per_person, w)[1].groupdict())
            for w in r["perturbed_answer"]
        ]
        mc2 = [r["answer"], r["paraphrased_answer"], *wrong, *r["perturbed_answer"]]
        out.append(
            {
                "question": r["question"],
                "mc1_targets": {"choices": [r["answer"], *wrong], "labels": [1] + [0] * len(wrong)},
                "mc2_targets": {"choices": mc2, "labels": [1, 1] + [0] * (len(mc2) - 2)},
            }
        )
    for f in rows["world_facts_perturbed"]:
        choices = [f["answer"], *f["perturbed_answer"]]
        targets = {"choices": choices, "labels": [1] + [0] * len(f["perturbed_answer"])}
        out.append({"question": f["question"], "mc1_targets": targets, "mc2_targets": targets})
    return out


def _cloze(kind_index: int, question: str, answer: str) -> tuple[str, str, str]:
    """(name, prompt up to the fact's value, target) of one trained QA: the target starts at
    the word holding the value (a book title keeps its opening quote) and ends with it."""
    _, m = _match(kind_index, answer)
    slots = m.groupdict()
    key = "city" if "city" in slots else next(k for k in slots if k != "name")
    head = f"Question: {question}\nAnswer: "
    start, end = len(head) + m.start(key), len(head) + m.end(key)
    text = head + answer
    space = text.rfind(" ", 0, start + 1)
    return slots["name"], text[:space], text[space + 1 : end]


def generate_builtin_counterfact(
    split: str = "forget10",
    n_people: int = 100,
    qa_per_person: int = 10,
    n_world_facts: int = 60,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """CounterFact-shaped rows for the facts of the people of ``split`` (forget01/05/10)."""
    percent = {f"forget{p:02d}": p for p in PERCENTS}.get(split)
    if percent is None:
        raise ValueError(f"split must be one of forget01, forget05, forget10, not {split!r}")
    rows = _rows(n_people, qa_per_person, n_world_facts, seed)
    people_rows = rows["full"][n_world_facts:]
    k = qa_per_person
    people = [people_rows[i : i + k] for i in range(0, len(people_rows), k)]
    n_forget = _share(n_people, percent)
    paraphrased = rows[f"{split}_perturbed"]
    clozes = [[_cloze(j, r["question"], r["answer"]) for j, r in enumerate(p)] for p in people]
    values: dict[int, list[str]] = {}
    for person in clozes:
        for j, (_, _, target) in enumerate(person):
            values.setdefault(j, []).append(target)
    rng = random.Random(f"obliviate-builtin-counterfact/{seed}/{split}")
    out: list[dict[str, Any]] = []
    for pi in range(len(people) - n_forget, len(people)):
        for j, (name, prompt, target) in enumerate(clozes[pi]):
            head_len = len(f"Question: {people[pi][j]['question']}\nAnswer:")
            tail = prompt[head_len:]
            para_q = paraphrased[(pi - (len(people) - n_forget)) * k + j]["paraphrased_question"]
            wording = [q.format(name=name) for q in FACT_KINDS[j].questions]
            paraphrases = [
                f"Question: {q}\nAnswer:{tail}"
                for q in [para_q, *wording]
                if q != people[pi][j]["question"]
            ]
            neighbours = [
                c[j][1]
                for c in clozes[: len(people) - n_forget]
                if c[j][2] == target and c[j][0] != name
            ][:MAX_NEIGHBOURS]
            new = rng.choice(sorted({v for v in values[j] if v != target}))
            out.append(
                {
                    "case_id": len(out),
                    "requested_rewrite": {
                        "prompt": prompt.replace(name, "{}"),
                        "subject": name,
                        "target_true": {"str": target},
                        "target_new": {"str": new},
                        "relation_id": FACT_KINDS[j].key,
                    },
                    "paraphrase_prompts": list(dict.fromkeys(paraphrases)),
                    "neighborhood_prompts": neighbours,
                }
            )
    return out
