"""The built-in multimodal people: deterministic, distinct portraits, unseen test views, and
MLLMU-Bench-shaped sets (forget/test/retain/real, image+text and text-only, QA with options
and cloze)."""

from __future__ import annotations

import numpy as np
import pytest

from obliviate.multimodal.people import (
    N_OPTIONS,
    eval_sets,
    generate_people,
    training_items,
    unlearning_request,
)
from obliviate.multimodal.portraits import N_TRAIN_VIEWS, N_VIEWS, distinct_looks, draw_portrait


def _px(img) -> np.ndarray:
    return np.asarray(img, dtype=np.float64)


def test_generation_is_deterministic_and_people_are_distinct() -> None:
    a, b = generate_people(20, 5, seed=3), generate_people(20, 5, seed=3)
    assert [(p.name, p.birthplace, p.job, p.look) for p in a.people] == [
        (p.name, p.birthplace, p.job, p.look) for p in b.people
    ]
    assert np.array_equal(_px(a.portrait(a.people[0], 2)), _px(b.portrait(b.people[0], 2)))
    assert len({p.name for p in a.people}) == 25
    assert len({p.look for p in a.people}) == 25
    c = generate_people(20, 5, seed=4)
    assert [p.name for p in c.people] != [p.name for p in a.people]


def test_portraits_differ_between_people_more_than_between_views() -> None:
    looks = distinct_looks(6)
    imgs = [[_px(draw_portrait(look, v)) for v in range(N_VIEWS)] for look in looks]
    assert imgs[0][0].shape == (32, 32, 3)
    within = max(np.abs(imgs[i][v] - imgs[i][0]).mean() for i in range(6) for v in range(N_VIEWS))
    between = min(np.abs(imgs[i][0] - imgs[j][0]).mean() for i in range(6) for j in range(i))
    assert within > 0  # the views are different images
    assert between > within
    with pytest.raises(ValueError, match="view"):
        draw_portrait(looks[0], N_VIEWS)


def test_sets_follow_mllmu_bench() -> None:
    people = generate_people(20, 5, forget_percent=10)
    assert people.n_forget == 2 and len(people.retain_people) == 18
    assert len(people.real_people) == 5
    sets = eval_sets(people)
    forget_names = {p.name for p in people.forget_people}
    assert {it.meta["person"] for it in sets["forget"]} == forget_names
    assert {it.meta["person"] for it in sets["test"]} == forget_names
    assert not forget_names & {it.meta["person"] for it in sets["retain"] + sets["real"]}
    for name, items in sets.items():
        # per person: image mode 3 QA + 2 cloze, text mode 2 QA + 2 cloze
        n_people = {"forget": 2, "test": 2, "retain": 18, "real": 5}[name]
        assert len(items) == 9 * n_people
        for it in items:
            assert (it.meta["image"] is None) == (it.meta["mode"] == "text")
            if it.meta["task"] == "qa":
                assert len(it.options) == N_OPTIONS and len(set(it.options)) == N_OPTIONS
                assert it.answer in it.options
            else:
                assert it.meta["task"] == "cloze" and "___" in it.question and not it.options
            if it.meta["mode"] == "text":
                assert it.meta["person"] in it.question
    # the test set: unseen views, paraphrased questions
    trained = {it.meta["image_id"] for it in training_items(people, people.people)}
    test_images = {it.meta["image_id"] for it in sets["test"] if it.meta["image"] is not None}
    assert test_images and not test_images & trained
    assert all(int(i.split("/")[1]) >= N_TRAIN_VIEWS for i in test_images)
    assert not {it.question for it in sets["test"]} & {it.question for it in sets["forget"]}


def test_request_forgets_the_forget_people_and_trains_everyone_in_full() -> None:
    people = generate_people(10, 2, forget_percent=20)
    req = unlearning_request(people)
    assert req.split == "forget20"
    assert {it.meta["person"] for it in req.forget} == {p.name for p in people.forget_people}
    assert {it.meta["person"] for it in req.retain} == {p.name for p in people.retain_people}
    assert {it.meta["person"] for it in req.full} == {p.name for p in people.people}
    # per person: text mode 4 items, image mode 5 items per trained view
    assert len(req.full) == 12 * (4 + 5 * N_TRAIN_VIEWS)


@pytest.mark.parametrize("kwargs", [{"n_people": 1}, {"forget_percent": 0}])
def test_bad_sizes_are_one_sentence(kwargs) -> None:
    with pytest.raises(ValueError, match="give"):
        generate_people(**kwargs)
