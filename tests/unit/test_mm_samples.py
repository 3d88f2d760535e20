"""The demo's sample page: which items it shows and how it renders them."""

from __future__ import annotations

import pytest

from obliviate.multimodal.people import eval_sets, generate_people
from obliviate.multimodal.samples import sample_items, sample_page


def test_sample_items_are_the_forget_people_then_two_retain_people() -> None:
    people = generate_people(10, 2, forget_percent=20)
    items = sample_items(eval_sets(people))
    names = [p.name for p in people.forget_people + people.retain_people[:2]]
    assert [it.meta["person"] for it in items] == [n for n in names for _ in range(2)]
    assert [it.meta["mode"] for it in items[:2]] == ["image", "text"]
    assert items[0].question == "Who is this person?" and items[0].answer == names[0]
    assert items[1].question == f"Where was {names[0]} born?"


def test_sample_page_shows_portraits_escaped_text_and_each_models_answer() -> None:
    people = generate_people(4, 1, forget_percent=25)
    items = sample_items(eval_sets(people), n_retain_people=0)
    answers = {"target": [items[0].answer, "<b>x</b>"], "npo": ["nobody", ""]}
    page = sample_page(items, answers)
    assert page.count("data:image/png;base64,") == 1 and page.count("text only") == 1
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert page.count('class="hit"') == 1 and page.count('class="miss"') == 3
    assert "<th>target</th><th>npo</th>" in page
    with pytest.raises(ValueError, match="answers of 'npo'"):
        sample_page(items, {"npo": ["one"]})
