"""The generated TOFU-shaped benchmark: sizes, fields, determinism and split invariants."""

from __future__ import annotations

import re

import pytest

from obliviate.data.builtin import (
    CONFIG_NAMES,
    FACT_KINDS,
    TRAIN_VARIANTS,
    builtin_corpus_text,
    generate_builtin,
)
from obliviate.data.training_data import training_variants

QA_FIELDS = {"question", "answer"}
PERTURBED_FIELDS = {
    "question",
    "answer",
    "paraphrased_answer",
    "perturbed_answer",
    "paraphrased_question",
}


@pytest.fixture(scope="module")
def default():
    return generate_builtin()


def _pattern(template: str) -> re.Pattern[str]:
    """A regex matching renderings of a template; ``{name}`` is captured."""
    parts = re.split(r"(\{\w+\})", template)
    regex = "".join(
        "(?P<name>.+?)" if p == "{name}" else "(.+?)" if p.startswith("{") else re.escape(p)
        for p in parts
    )
    return re.compile(regex)


def _template_index(text: str, templates: tuple[str, ...]) -> int:
    hits = [i for i, t in enumerate(templates) if _pattern(t).fullmatch(text)]
    assert len(hits) == 1, (text, hits)
    return hits[0]


def _person_name(question: str) -> str:
    """Name from a birthplace question (the first fact kind)."""
    for t in FACT_KINDS[0].questions:
        m = _pattern(t).fullmatch(question)
        if m:
            return m.group("name")
    raise AssertionError(f"not a birthplace question: {question!r}")


def test_default_sizes(default):
    # 60 world facts + 100 people x 10 QA; forget = last 1/5/10 people; holdout = forget10 count
    sizes = {name: len(rows) for name, rows in default.items()}
    assert sizes == {
        "full": 1060,
        "forget01": 10,
        "forget05": 50,
        "forget10": 100,
        "retain99": 1050,
        "retain95": 1010,
        "retain90": 960,
        "forget01_perturbed": 10,
        "forget05_perturbed": 50,
        "forget10_perturbed": 100,
        "retain_perturbed": 100,
        "holdout01": 10,
        "holdout05": 50,
        "holdout10": 100,
        "world_facts": 60,
        "world_facts_perturbed": 60,
    }
    assert list(default) == list(CONFIG_NAMES)


def test_hub_field_names(default):
    for name, rows in default.items():
        for row in rows:
            if name.startswith("world_facts_perturbed"):
                assert set(row) == {"question", "answer", "perturbed_answer"}
            elif name == "world_facts":
                assert set(row) == QA_FIELDS | {"option1", "option2", "option3", "option4"}
            elif name.endswith("_perturbed"):
                assert set(row) == PERTURBED_FIELDS
            else:
                assert set(row) == QA_FIELDS, name


def test_deterministic_and_seeded():
    a, b = generate_builtin(n_people=12, seed=3), generate_builtin(n_people=12, seed=3)
    assert a == b
    c = generate_builtin(n_people=12, seed=4)
    assert c["full"] != a["full"]
    assert c["forget10_perturbed"] != a["forget10_perturbed"]


@pytest.mark.parametrize(
    "kwargs, forget_people",
    [
        ({}, (1, 5, 10)),
        ({"n_people": 200, "qa_per_person": 3, "n_world_facts": 7}, (2, 10, 20)),
        ({"n_people": 20, "qa_per_person": 4, "n_world_facts": 0}, (1, 1, 2)),
        ({"n_people": 2, "qa_per_person": 1, "n_world_facts": 3}, (1, 1, 1)),
    ],
)
def test_split_invariants(kwargs, forget_people):
    d = generate_builtin(**kwargs)
    q = kwargs.get("qa_per_person", 10)
    n_world = kwargs.get("n_world_facts", 60)
    n_people = kwargs.get("n_people", 100)
    full = d["full"]
    assert len(full) == n_world + n_people * q
    world = [{"question": r["question"], "answer": r["answer"]} for r in d["world_facts"]]
    assert full[:n_world] == world  # world facts first
    for pct, k in zip((1, 5, 10), forget_people, strict=True):
        forget, retain = d[f"forget{pct:02d}"], d[f"retain{100 - pct}"]
        assert len(forget) == k * q
        assert forget == full[len(full) - k * q :]  # the tail
        assert retain == full[: len(full) - k * q]  # full minus forget
        assert retain[:n_world] == world  # world facts are retained
        pert = d[f"forget{pct:02d}_perturbed"]
        assert [(r["question"], r["answer"]) for r in pert] == [
            (r["question"], r["answer"]) for r in forget
        ]
    retain_pert = d["retain_perturbed"]
    assert len(retain_pert) == forget_people[2] * q
    assert [(r["question"], r["answer"]) for r in retain_pert] == [
        (r["question"], r["answer"]) for r in full[n_world : n_world + len(retain_pert)]
    ]
    # every question is unique; holdout: never in full, nested prefixes
    full_questions = {r["question"] for r in full}
    assert len(full_questions) == len(full)
    assert len({r["question"] for r in d["holdout10"]}) == len(d["holdout10"])
    assert not {r["question"] for r in d["holdout10"]} & full_questions
    assert d["holdout01"] == d["holdout10"][: len(d["holdout01"])]
    assert d["holdout05"] == d["holdout10"][: len(d["holdout05"])]
    assert [len(d[f"holdout{p:02d}"]) for p in (1, 5, 10)] == [k * q for k in forget_people]


def test_names_unique_and_holdout_people_new():
    d = generate_builtin(n_people=150, qa_per_person=2, n_holdout_people=40, n_world_facts=0)
    names = [_person_name(r["question"]) for r in d["full"][::2]]
    holdout = [_person_name(r["question"]) for r in d["holdout10"][::2]]
    assert len(names) == 150 and len(set(names)) == 150
    assert len(holdout) == 15 and not set(holdout) & set(names)  # holdout10 = 15 people
    assert len(set(holdout)) == 15


def test_perturbed_answers(default):
    n_kinds = 10
    rows = default["retain_perturbed"] + default["forget10_perturbed"]
    for i, row in enumerate(rows):
        kind = FACT_KINDS[i % n_kinds]
        wrong = row["perturbed_answer"]
        assert len(wrong) == 5 and len(set(wrong)) == 5
        assert row["answer"] not in wrong and row["paraphrased_answer"] not in wrong
        assert row["paraphrased_answer"] != row["answer"]
        assert row["paraphrased_question"] != row["question"]
        # paraphrase: another answer template; perturbed: the paraphrase's template, wrong fact
        t_answer = _template_index(row["answer"], kind.answers)
        t_para = _template_index(row["paraphrased_answer"], kind.answers)
        assert t_answer != t_para
        assert all(_template_index(w, kind.answers) == t_para for w in wrong)
        name = _pattern(kind.answers[t_para]).fullmatch(row["paraphrased_answer"]).group("name")
        assert all(_pattern(kind.answers[t_para]).fullmatch(w).group("name") == name for w in wrong)


def test_world_facts(default):
    wf, wfp = default["world_facts"], default["world_facts_perturbed"]
    assert len({r["question"] for r in wf}) == len(wf)
    for plain, pert in zip(wf, wfp, strict=True):
        options = [plain[f"option{k}"] for k in range(1, 5)]
        assert len(set(options)) == 4 and options.count(plain["answer"]) == 1
        assert pert["question"] == plain["question"] and pert["answer"] == plain["answer"]
        assert pert["perturbed_answer"] == [o for o in options if o != plain["answer"]]
    # the answer is not always in the same position
    assert (
        len({[plain[f"option{k}"] for k in range(1, 5)].index(plain["answer"]) for plain in wf}) > 1
    )


def test_answers_are_short(default):
    words = [len(r["answer"].split()) for r in default["full"][60:]]
    assert min(words) >= 6 and max(words) <= 25


def test_people_independent_of_holdout_and_qa_count():
    base = generate_builtin(n_people=10, n_world_facts=5)
    assert (
        generate_builtin(n_people=10, n_world_facts=5, n_holdout_people=0)["full"] == base["full"]
    )
    short = generate_builtin(n_people=10, n_world_facts=5, qa_per_person=3)["full"]
    assert short[5:8] == base["full"][5:8]  # first person's first 3 QA
    assert short[8:11] == base["full"][15:18]  # second person's first 3 QA


def test_holdout_counts():
    assert all(
        not generate_builtin(n_people=10, n_holdout_people=0)[f"holdout{p:02d}"] for p in (1, 5, 10)
    )
    d = generate_builtin(n_people=100, qa_per_person=2, n_holdout_people=3)
    assert [len(d[f"holdout{p:02d}"]) for p in (1, 5, 10)] == [2, 6, 6]  # capped at 3 people


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_people": 1}, "n_people"),
        ({"qa_per_person": 0}, "qa_per_person"),
        ({"qa_per_person": len(FACT_KINDS) + 1}, "qa_per_person"),
        ({"n_world_facts": -1}, "n_world_facts"),
        ({"n_holdout_people": -1}, "n_holdout_people"),
        ({"world_fact_repeats": 0}, "world_fact_repeats"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_builtin(**kwargs)


def test_corpus_text():
    d = generate_builtin(n_people=5, qa_per_person=3, n_world_facts=5)
    text = builtin_corpus_text(d)
    lines = text.splitlines()
    assert len(lines) == len(set(lines))
    assert d["holdout10"][0]["answer"] in lines
    assert d["forget10_perturbed"][0]["perturbed_answer"][4] in lines
    assert d["retain_perturbed"][0]["paraphrased_question"] in lines
    assert d["world_facts"][0]["option1"] in lines
    assert builtin_corpus_text(d["full"]).splitlines() == list(
        dict.fromkeys(t for r in d["full"] for t in (r["question"], r["answer"]))
    )


def test_configs_do_not_share_row_objects():
    d = generate_builtin(n_people=5, qa_per_person=2, n_world_facts=3)
    d["retain90"][0]["answer"] = "changed"
    d["forget10_perturbed"][0]["perturbed_answer"].append("changed")
    fresh = generate_builtin(n_people=5, qa_per_person=2, n_world_facts=3)
    assert d["full"] == fresh["full"] and d["retain99"] == fresh["retain99"]
    assert d["forget01_perturbed"] == fresh["forget01_perturbed"]


def test_training_variants_leave_the_tofu_configs_alone():
    small = {"n_people": 10, "qa_per_person": 3, "n_world_facts": 4}
    plain = generate_builtin(**small)
    d = generate_builtin(**small, paraphrase_training=True, world_fact_repeats=3)
    assert TRAIN_VARIANTS not in plain
    assert {k: v for k, v in d.items() if k != TRAIN_VARIANTS} == plain
    variants = d[TRAIN_VARIANTS]
    # 2 more copies of the 4 world facts, then one (paraphrased question, paraphrased answer)
    # per person QA
    assert len(variants) == 2 * 4 + 10 * 3
    facts = [{"question": r["question"], "answer": r["answer"]} for r in plain["full"][:4]]
    assert [{"question": v["question"], "answer": v["answer"]} for v in variants[:8]] == facts * 2
    forget = plain["forget10_perturbed"][0]  # the last person's first QA
    assert variants[-3] == {
        "of": forget["question"],
        "question": forget["paraphrased_question"],
        "answer": forget["paraphrased_answer"],
    }


def test_training_variants_follow_the_training_config():
    d = generate_builtin(n_people=10, qa_per_person=3, n_world_facts=4, paraphrase_training=True)
    retain = training_variants(d["retain90"], d[TRAIN_VARIANTS])
    forget_questions = {r["paraphrased_question"] for r in d["forget10_perturbed"]}
    assert len(retain) == 9 * 3  # the 9 retain people's QAs, no world-fact copies
    assert not forget_questions & {r["question"] for r in retain}
    assert len(training_variants(d["full"], d[TRAIN_VARIANTS])) == 10 * 3
    assert training_variants([], d[TRAIN_VARIANTS]) == []


def test_fine_tuning_rows_include_the_variants():
    from obliviate.data.training_data import training_items

    small = {"n_people": 10, "qa_per_person": 3, "n_world_facts": 4}
    plain = training_items("builtin", "retain90", small)
    more = training_items("builtin", "retain90", {**small, "paraphrase_training": True})
    assert more[: len(plain)] == plain and len(more) == len(plain) + 9 * 3
    assert all(it.question.endswith("?") and it.answer for it in more)
