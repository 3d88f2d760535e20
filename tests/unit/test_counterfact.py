"""CounterFact / zsRE fact-level scores (ROME, Meng+ 2022, arXiv 2202.05262): the pure scores
on hand-computed log-probs, the loaders (files in the hub's / MEND's format, the hub through a
stub, the built-in records) and the suite with the model's scores replaced by a table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from obliviate.data.types import DataError
from obliviate.metrics.counterfact import (
    aggregate,
    mean_logprob,
    neighborhood_hit,
    record_mean,
    rewrite_hit,
    token_accuracy,
    true_probability,
)

CF_ROW = {
    "case_id": 0,
    "requested_rewrite": {
        "prompt": "The mother tongue of {} is",
        "relation_id": "P103",
        "subject": "Danielle Darrieux",
        "target_new": {"str": "English", "id": "Q1860"},
        "target_true": {"str": "French", "id": "Q150"},
    },
    "paraphrase_prompts": ["Danielle Darrieux's mother tongue is", "Darrieux spoke natively"],
    "neighborhood_prompts": ["The mother tongue of Léon Blum is"],
}
ZSRE_ROW = {
    "subject": "Watts Humphrey",
    "src": "What university did Watts Humphrey attend?",
    "pred": "Trinity College",
    "rephrase": "What university did Watts Humphrey take part in?",
    "alt": "University of Michigan",
    "answers": ["Illinois Institute of Technology"],
    "loc": "nq question: who played desmond doss father in hacksaw ridge",
    "loc_ans": "Hugo Weaving",
    "cond": "Trinity College >> University of Michigan || What university did Watts Humphrey attend?",
}

# ----------------------------------------------------------------------------- pure scores


def test_probabilities_are_length_normalised():
    assert mean_logprob([-1.0, -3.0]) == -2.0
    # new: mean -0.5 (one token), true: mean -2 over two tokens -> new wins
    hit, magnitude = rewrite_hit([-0.5], [-1.0, -3.0])
    assert hit == 1.0 and magnitude == pytest.approx(math.exp(-0.5) - math.exp(-2.0))
    # summed, true (-4) would lose to new (-0.5) too; a case where only normalising decides:
    # new [-1.5, -1.5] (sum -3, mean -1.5) vs true [-2.0] -> new wins on the mean
    assert rewrite_hit([-1.5, -1.5], [-2.0])[0] == 1.0
    assert rewrite_hit([-1.0], [-1.0])[0] == 0.0  # a tie is no success
    hit, magnitude = neighborhood_hit([-0.5], [-1.0, -3.0])  # neighbour keeps the true object?
    assert hit == 0.0 and magnitude == pytest.approx(math.exp(-2.0) - math.exp(-0.5))
    assert true_probability([-1.0, -3.0]) == pytest.approx(math.exp(-2.0))
    with pytest.raises(ValueError, match="at least one scored token"):
        mean_logprob([])


def test_record_means_and_aggregate():
    assert record_mean([]) is None
    assert record_mean([(1.0, 0.25), (0.0, -0.75)]) == (0.5, -0.25)
    # records without neighbourhood prompts are left out of the mean
    assert aggregate([(1.0, 0.2), None, (0.5, 0.4)]) == (0.75, pytest.approx(0.3), 2)
    with pytest.raises(ValueError, match="no record has prompts"):
        aggregate([None, None])


def test_token_accuracy():
    assert token_accuracy([True, False, True, True]) == 0.75
    assert token_accuracy(np.array([False])) == 0.0
    with pytest.raises(ValueError, match="at least one scored token"):
        token_accuracy([])


# ----------------------------------------------------------------------------- loaders


def test_counterfact_file_in_the_hub_format(tmp_path: Path):
    from obliviate.data.counterfact import load_edit_records

    (tmp_path / "cf.json").write_text(json.dumps([CF_ROW]))
    (tmp_path / "cf.jsonl").write_text(json.dumps(CF_ROW) + "\n")
    (r,) = load_edit_records(tmp_path / "cf.json")
    assert (
        r.prompt == "The mother tongue of Danielle Darrieux is" and r.subject == "Danielle Darrieux"
    )
    assert (r.target_true, r.target_new) == ("French", "English")
    assert r.paraphrases == tuple(CF_ROW["paraphrase_prompts"])
    assert r.neighbours == (("The mother tongue of Léon Blum is", "French"),)
    assert load_edit_records(str(tmp_path / "cf.jsonl")) == [r]


@pytest.mark.parametrize(
    "change, match",
    [
        (
            {"requested_rewrite": {**CF_ROW["requested_rewrite"], "prompt": "Tongue is"}},
            "needs '{}'",
        ),
        (
            {"requested_rewrite": {**CF_ROW["requested_rewrite"], "target_new": {"str": ""}}},
            "target_new",
        ),
        (
            {"requested_rewrite": {**CF_ROW["requested_rewrite"], "target_new": {"str": "French"}}},
            "nothing to rewrite",
        ),
        ({"paraphrase_prompts": "x"}, None),  # one string is accepted as a list of one
        ({"neighborhood_prompts": [1]}, "neighborhood_prompts must be a list"),
        ({"requested_rewrite": None}, "expected 'requested_rewrite'"),
    ],
)
def test_malformed_counterfact_rows(tmp_path: Path, change, match):
    from obliviate.data.counterfact import load_edit_records

    path = tmp_path / "cf.jsonl"
    path.write_text(json.dumps({**CF_ROW, **change}) + "\n")
    if match is None:
        assert load_edit_records(path)[0].paraphrases == ("x",)
        return
    with pytest.raises(DataError, match=match) as err:
        load_edit_records(path)
    assert "line 1" in str(err.value)


def test_zsre_file_in_the_mend_format(tmp_path: Path):
    from obliviate.data.counterfact import load_edit_records

    (tmp_path / "zsre.json").write_text(json.dumps([ZSRE_ROW]))
    (r,) = load_edit_records(tmp_path / "zsre.json", "zsre")
    assert (r.prompt, r.target_true, r.target_new) == (
        ZSRE_ROW["src"],
        "Illinois Institute of Technology",
        "University of Michigan",
    )
    assert r.paraphrases == (ZSRE_ROW["rephrase"],)
    assert r.neighbours == ((ZSRE_ROW["loc"], "Hugo Weaving"),)
    with pytest.raises(DataError, match="zsRE is read from a local file"):
        load_edit_records("some/hub-name", "zsre")
    (tmp_path / "bad.json").write_text(json.dumps([{**ZSRE_ROW, "answers": []}]))
    with pytest.raises(DataError, match="item 1: answers is empty"):
        load_edit_records(tmp_path / "bad.json", "zsre")


def test_counterfact_hub_name(monkeypatch):
    import datasets

    from obliviate.data.counterfact import load_edit_records

    calls = []

    def fake(name, config=None, split=None, revision=None, **kw):
        calls.append((name, config, split, revision))
        return [dict(CF_ROW)]

    monkeypatch.setattr(datasets, "load_dataset", fake)
    assert load_edit_records("azhx/counterfact")[0].target_new == "English"
    assert calls == [("azhx/counterfact", None, "train", None)]


def test_builtin_records_are_the_forget_peoples_facts():
    from obliviate.data.builtin import generate_builtin
    from obliviate.data.counterfact import load_edit_records

    kw = {"n_people": 20, "n_world_facts": 20}
    records = load_edit_records("builtin", split="forget10", **kw)
    forget = generate_builtin(**kw)["forget10"]
    assert len(records) == len(forget) == 20
    for r, row in zip(records, forget):
        # the prompt is the trained text up to the value; the true target continues it
        trained = f"Question: {row['question']}\nAnswer: {row['answer']}"
        assert trained.startswith(f"{r.prompt} {r.target_true}")
        assert r.subject in row["question"] and r.target_new != r.target_true
        assert all(p.endswith(r.prompt.split("\nAnswer:")[1]) for p in r.paraphrases)
    with_neighbours = [r for r in records if r.neighbours]
    assert with_neighbours and all(
        r.subject not in p and a == r.target_true for r in with_neighbours for p, a in r.neighbours
    )
    assert len(load_edit_records("builtin", split="forget05", **kw)) == 10
    with pytest.raises(ValueError, match="split must be one of forget01"):
        load_edit_records("builtin", split="train", **kw)


# ----------------------------------------------------------------------------- suite


@pytest.fixture
def fake_scores(monkeypatch):
    """score_pairs replaced: (prompt, continuation) -> token log-probs (EOS last) and hits."""
    import obliviate.scoring as scoring
    from obliviate.scoring import TokenScores

    table = {
        ("The mother tongue of Danielle Darrieux is", " English"): [-1.0, -9.0],
        ("The mother tongue of Danielle Darrieux is", " French"): [-0.5, -9.0],
        ("Danielle Darrieux's mother tongue is", " English"): [-0.2, -9.0],
        ("Danielle Darrieux's mother tongue is", " French"): [-0.4, -9.0],
        ("Darrieux spoke natively", " English"): [-3.0, -9.0],
        ("Darrieux spoke natively", " French"): [-1.0, -9.0],
        ("The mother tongue of Léon Blum is", " English"): [-2.0, -9.0],
        ("The mother tongue of Léon Blum is", " French"): [-0.1, -9.0],
    }
    calls = []

    def score_pairs(model, tok, pairs, template, **kw):
        calls.append(list(pairs))
        out = []
        for p, a in pairs:
            lp = np.asarray(table.get((p, a), [-1.0, -2.0, -9.0]))
            hits = np.array([True, False, True][: lp.size]) if (p, a) not in table else lp > -0.6
            z = np.zeros(lp.shape)
            out.append(TokenScores(lp, hits, z, z, True))
        return out

    monkeypatch.setattr(scoring, "score_pairs", score_pairs)
    return calls


def test_counterfact_suite_scores_and_request(tmp_path: Path, fake_scores):
    from obliviate.api import load_suite

    (tmp_path / "cf.json").write_text(json.dumps([CF_ROW]))
    suite = load_suite("counterfact", data=str(tmp_path / "cf.json"))
    v = suite.evaluate(object(), None, None, "fp", False).values()
    e = math.exp
    assert v["counterfact_efficacy_score"] == 0.0  # English -1.0 < French -0.5
    assert v["counterfact_efficacy_magnitude"] == pytest.approx(e(-1.0) - e(-0.5))
    assert v["counterfact_paraphrase_score"] == 0.5  # one of the two paraphrases flips
    assert v["counterfact_paraphrase_magnitude"] == pytest.approx(
        ((e(-0.2) - e(-0.4)) + (e(-3.0) - e(-1.0))) / 2
    )
    assert v["counterfact_neighborhood_score"] == 1.0
    assert v["counterfact_neighborhood_magnitude"] == pytest.approx(e(-0.1) - e(-2.0))
    assert v["counterfact_true_prob"] == pytest.approx(e(-0.5))
    req = suite.request
    assert req.forget[0].question == "The mother tongue of Danielle Darrieux is"
    assert (
        req.forget[0].answer == " French" and req.forget[0].meta["subject"] == "Danielle Darrieux"
    )
    assert req.retain[0].answer == " French" and suite.item_template == "raw"


def test_zsre_suite_scores_and_missing_prompts(tmp_path: Path, fake_scores):
    from obliviate.api import load_suite

    (tmp_path / "z.json").write_text(json.dumps([ZSRE_ROW, {**ZSRE_ROW, "rephrase": None}]))
    res = load_suite("zsre", data=str(tmp_path / "z.json")).evaluate(
        object(), None, None, "fp", False
    )
    v = res.values()  # every pair is off the table: hits [True, False] -> 0.5
    assert v["zsre_efficacy"] == 0.5 and v["zsre_specificity"] == 0.5
    assert res.metrics["zsre_paraphrase"]["n"] == 1  # the second record has no rephrase
    loc = next(p for p, a in fake_scores[0] if a == " Hugo Weaving")
    assert loc == ZSRE_ROW["loc"] + "?"
    with pytest.raises(DataError, match="needs its records: --data FILE"):
        load_suite("zsre")


def test_counterfact_without_neighbours_reports_them_unavailable(tmp_path: Path, fake_scores):
    from obliviate.api import load_suite

    (tmp_path / "cf.json").write_text(json.dumps([{**CF_ROW, "neighborhood_prompts": []}]))
    res = load_suite("counterfact", data=str(tmp_path / "cf.json")).evaluate(
        object(), None, None, "fp", False
    )
    assert "counterfact_neighborhood_score" in res.unavailable
    assert "counterfact_efficacy_score" in res.metrics


def test_cli_bad_input_is_one_sentence(tmp_path: Path, capsys):
    from obliviate.cli import main

    for argv, words in (
        (["eval", "--benchmark", "zsre", "--model", "m"], "needs its records"),
        (
            ["eval", "--benchmark", "counterfact", "--data", "/no/cf.json", "--model", "m"],
            "no such",
        ),
        (
            ["eval", "--benchmark", "builtin-counterfact", "--model", "m", "--set", "mode=x"],
            "unknown setting",
        ),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert words in err


def test_the_benchmark_entries_list_the_catalogued_scenario_metrics():
    import obliviate.benchmarks as b
    from obliviate.metrics import scenario_defs as d

    assert b.TRUTHFULQA_METRICS == d.TRUTHFULQA_METRICS
    assert b.COUNTERFACT_METRICS == d.COUNTERFACT_METRICS
    assert b.ZSRE_METRICS == d.ZSRE_METRICS
