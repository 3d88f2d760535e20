"""WMDP-style multiple choice: prompt, accuracy from fixed log-likelihoods, scoring plumbing,
loaders (cais/wmdp format on disk and via a monkeypatched load_dataset, corpora), malformed
files, the built-in set and the optional lm-evaluation-harness bridge."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from obliviate.benchmarks import wmdp as W
from obliviate.data import builtin_muse as B
from obliviate.data.types import DataError
from obliviate.data.wmdp import MCQItem, load_wmdp, load_wmdp_corpus, parse_mcq_row
from obliviate.scoring import TokenScores

ROW = {
    "question": "Which is a noble gas?",
    "choices": ["Neon", "Iron", "Salt", "Wood"],
    "answer": 0,
}


# ----------------------------------------------------------------------------- pure functions


def test_prompt_is_the_lm_eval_wmdp_template():
    assert W.mcq_prompt("Which is a noble gas?", ["Neon", "Iron", "Salt", "Wood"]) == (
        "Which is a noble gas?\nA. Neon\nB. Iron\nC. Salt\nD. Wood\nAnswer:"
    )
    assert W.letter_continuations(4) == [" A", " B", " C", " D"]
    assert W.cloze_prompt(" Where? ") == "Question: Where?\nAnswer:"


def test_accuracy_hand_computed():
    ll = [
        [-1.0, -2.0, -3.0, -4.0],  # predicts 0, answer 0: right
        [-5.0, -1.0, -2.0, -3.0],  # predicts 1, answer 2: wrong
        [-2.0, -2.0, -9.0, -9.0],
    ]  # tie -> first (0), answer 1: wrong
    assert W.predictions(ll) == [0, 1, 0]
    assert W.mcq_accuracy(ll, [0, 2, 1]) == pytest.approx(1 / 3)
    assert W.mcq_accuracy(ll, [0, 1, 0]) == 1.0
    assert W.mcq_accuracy([[-3.0, -1.0]], np.array([1])) == 1.0  # ragged / numpy answers fine


def test_accuracy_norm_divides_by_bytes():
    # raw: -4 < -3 -> predicts 1; per byte: -4/4 = -1 > -3/1 = -3 -> predicts 0
    assert W.mcq_accuracy([[-4.0, -3.0]], [0]) == 0.0
    assert W.mcq_accuracy_norm([[-4.0, -3.0]], [[4, 1]], [0]) == 1.0


@pytest.mark.parametrize(
    "ll,answers,match",
    [
        ([[-1.0, -2.0]], [0, 1], "1 questions but 2 answers"),
        ([], [], "no questions"),
        ([[-1.0, float("nan")]], [0], "NaN"),
        ([[-1.0, -2.0]], [2], "out of range"),
        ([[]], [0], "one log-likelihood per choice"),
    ],
)
def test_accuracy_errors(ll, answers, match):
    with pytest.raises(ValueError, match=match):
        W.mcq_accuracy(ll, answers)


def test_accuracy_norm_errors():
    with pytest.raises(ValueError, match="positive byte length"):
        W.mcq_accuracy_norm([[-1.0, -2.0]], [[1, 0]], [0])


# ----------------------------------------------------------------------------- scoring plumbing


def _ts(logprobs, has_eos=True):
    lp = np.asarray(logprobs, dtype=float)
    z = np.zeros(lp.shape)
    return TokenScores(lp, z.astype(bool), z, z, has_eos)


@pytest.fixture
def fake_scores(monkeypatch):
    """score_pairs replaced: continuation log-probs from a table (EOS last, to be dropped)."""
    import obliviate.scoring as scoring

    table = {
        " A": [-2.0, -9.0],
        " B": [-0.5, -9.0],
        " C": [-3.0, -9.0],
        " D": [-1.0, -9.0],
        " Neon": [-1.0, -1.0, -9.0],
        " Iron": [-0.5, -9.0],
        " Salt": [-4.0, -9.0],
        " Wood": [-3.0, -9.0],
    }
    calls = []

    def score_pairs(
        model,
        tok,
        pairs,
        template,
        batch_size=32,
        max_length=512,
        progress=True,
        desc="",
        truncate="answer",
    ):
        calls.append((list(pairs), template.name, max_length))
        return [_ts(table[a]) for _, a in pairs]

    monkeypatch.setattr(scoring, "score_pairs", score_pairs)
    return calls


def test_choice_loglikelihoods_letters(fake_scores):
    item = parse_mcq_row(ROW, "row 1")
    ll = W.choice_loglikelihoods(object(), None, [item], "letters")
    assert ll == [[-2.0, -0.5, -3.0, -1.0]]  # EOS (-9) not counted
    pairs, template, _ = fake_scores[0]
    prompt = W.mcq_prompt(ROW["question"], ROW["choices"])
    assert pairs == [(prompt, " A"), (prompt, " B"), (prompt, " C"), (prompt, " D")]
    assert template == "raw"


def test_choice_loglikelihoods_cloze_and_evaluate(fake_scores):
    item = parse_mcq_row(ROW, "row 1")
    assert W.choice_loglikelihoods(object(), None, [item], "cloze") == [[-2.0, -0.5, -4.0, -3.0]]
    assert fake_scores[0][0][0] == ("Question: Which is a noble gas?\nAnswer:", " Neon")
    res = W.evaluate_mcq(object(), None, {"wmdp-bio": [item], "retain": [item]}, mode="cloze")
    v = res.values()
    assert v["wmdp_bio_accuracy"] == 0.0  # " Iron" wins on the raw sum
    # per byte: Neon -2/5 = -0.4, Iron -0.5/5 = -0.1 -> still Iron
    assert v["wmdp_bio_accuracy_norm"] == 0.0
    assert (
        res.metrics["wmdp_bio_accuracy"]["direction"] == "lower"
    )  # forget-type set: chance is the goal
    assert res.metrics["retain_accuracy"]["direction"] == "higher"
    sample = res.samples[0]
    assert (
        sample["prediction"] == 1
        and sample["correct"] is False
        and sample["split"] == "mcq_wmdp_bio"
    )
    with pytest.raises(ValueError, match="unknown MCQ mode"):
        W.choice_loglikelihoods(object(), None, [item], "letter")


# ----------------------------------------------------------------------------- loaders


def _jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_parse_row_and_errors():
    item = parse_mcq_row(dict(ROW, answer="2"), "x")
    assert item == MCQItem(ROW["question"], tuple(ROW["choices"]), 2)


@pytest.mark.parametrize(
    "row,match",
    [
        ({"choices": ["a", "b"], "answer": 0}, "field 'question' is missing"),
        (dict(ROW, answer=None), "field 'answer' is null"),
        (dict(ROW, answer=4), r"'answer' is 4 but there are 4 choices \(valid: 0..3\)"),
        (dict(ROW, answer=-1), "'answer' is -1"),
        (dict(ROW, answer=True), "index"),
        (dict(ROW, answer="B"), "index"),
        (dict(ROW, choices="Neon, Iron"), "'choices' must be a list of strings"),
        (dict(ROW, choices=["Neon", 3]), "'choices' must be a list of strings"),
        (dict(ROW, choices=["Neon"]), "at least 2"),
        (dict(ROW, question=" "), "'question' must be a non-empty string"),
        ("text", "expected an object"),
    ],
)
def test_malformed_rows(row, match):
    with pytest.raises(DataError, match=match):
        parse_mcq_row(row, "wmdp-bio.jsonl: line 3")


def test_local_folder_file_and_hub_layout(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    folder = tmp_path / "wmdp"
    _jsonl(folder / "wmdp-bio.jsonl", [ROW, dict(ROW, answer=1)])
    (folder / "wmdp-cyber").mkdir()  # the hub's own layout: <subset>/test-00000-of-00001.parquet
    pq.write_table(
        pa.Table.from_pylist([ROW]), folder / "wmdp-cyber" / "test-00000-of-00001.parquet"
    )
    sets = load_wmdp(folder)
    assert list(sets) == ["wmdp-bio", "wmdp-cyber"]
    assert [x.answer for x in sets["wmdp-bio"]] == [0, 1]
    assert sets["wmdp-cyber"][0].choices == tuple(ROW["choices"])
    assert sets["wmdp-bio"][0].meta == {"subset": "wmdp-bio"}
    single = load_wmdp(folder / "wmdp-bio.jsonl")
    assert list(single) == ["wmdp-bio"] and len(single["wmdp-bio"]) == 2
    with pytest.raises(DataError, match=r"missing wmdp-chem\.jsonl"):
        load_wmdp(folder, subsets=["wmdp-chem"])


def test_local_errors_name_file_and_line(tmp_path):
    f = _jsonl(tmp_path / "wmdp-bio.jsonl", [ROW, dict(ROW, answer=7)])
    with pytest.raises(DataError, match=r"wmdp-bio\.jsonl: line 2: field 'answer' is 7"):
        load_wmdp(tmp_path)
    f.write_text(json.dumps(ROW) + "\n{oops\n")
    with pytest.raises(DataError, match=r"line 2: invalid JSON"):
        load_wmdp(f)
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(DataError, match="no WMDP subset file found"):
        load_wmdp(empty)
    bad = tmp_path / "q.csv"
    bad.write_text("question\n")
    with pytest.raises(DataError, match="unsupported file extension"):
        load_wmdp(bad)


def test_hub_with_monkeypatched_load_dataset(monkeypatch):
    import datasets

    calls = []

    def fake(name, config=None, split=None, revision=None, **kw):
        calls.append((name, config, split, revision))
        if config == "wmdp-chem":
            raise ConnectionError("offline")
        return [dict(ROW)]

    monkeypatch.setattr(datasets, "load_dataset", fake)
    sets = load_wmdp("cais/wmdp", ["wmdp-bio", "wmdp-cyber"], revision="r1")
    assert calls == [
        ("cais/wmdp", "wmdp-bio", "test", "r1"),
        ("cais/wmdp", "wmdp-cyber", "test", "r1"),
    ]
    assert sets["wmdp-bio"][0].answer == 0
    with pytest.raises(DataError, match=r"'wmdp-chem'.*ConnectionError: offline"):
        load_wmdp("cais/wmdp")


def test_corpora(tmp_path, monkeypatch):
    import datasets

    f = _jsonl(tmp_path / "cyber-forget-corpus.jsonl", [{"text": "doc one"}, {"text": "doc two"}])
    docs = load_wmdp_corpus(f)
    assert [d.answer for d in docs] == ["doc one", "doc two"] and all(d.is_document for d in docs)
    assert [d.answer for d in load_wmdp_corpus(tmp_path, "cyber-forget-corpus")] == [
        "doc one",
        "doc two",
    ]
    with pytest.raises(DataError, match="name the corpus"):
        load_wmdp_corpus(tmp_path)
    _jsonl(f, [{"text": "ok"}, {"title": "no text"}])
    with pytest.raises(DataError, match=r"line 2: field 'text' is missing"):
        load_wmdp_corpus(f)

    def fake(name, config=None, split=None, revision=None, **kw):
        if config == "bio-forget-corpus":
            raise PermissionError("gated dataset")
        return [{"text": f"{config} text"}]

    monkeypatch.setattr(datasets, "load_dataset", fake)
    assert (
        load_wmdp_corpus("cais/wmdp-corpora", "cyber-retain-corpus")[0].answer
        == "cyber-retain-corpus text"
    )
    with pytest.raises(DataError, match="gated"):
        load_wmdp_corpus("cais/wmdp-corpora", "bio-forget-corpus")


def test_builtin_set():
    sets = load_wmdp("builtin", n_people=20)
    assert list(sets) == ["forget", "retain"]
    assert len(sets["forget"]) == 2 * len(B.FACT_KINDS) == len(sets["retain"])
    people, _ = B.builtin_people(20)
    forget_values = {(f.questions[2], f.value) for p in people[-2:] for f in p.facts}
    for item in sets["forget"]:
        assert len(item.choices) == 4 and len(set(item.choices)) == 4
        assert (item.question, item.choices[item.answer]) in forget_values
    positions = [x.answer for x in sets["forget"] + sets["retain"]]
    assert len(set(positions)) == 4  # the right answer is not always in one place
    assert load_wmdp("builtin", ["retain"], n_people=20).keys() == {"retain"}
    with pytest.raises(DataError, match="no WMDP-style subset"):
        load_wmdp("builtin", ["wmdp-bio"], n_people=20)


# ----------------------------------------------------------------------------- lm-eval bridge


def test_lm_eval_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # makes `import lm_eval` fail
    with pytest.raises(ImportError, match="pip install lm-eval"):
        W.run_lm_eval("some/model", ["mmlu"])
    with pytest.raises(ValueError, match="at least one"):
        W.run_lm_eval("some/model", [])


def test_lm_eval_bridge_with_a_fake_module(monkeypatch, tmp_path):
    seen = {}

    def simple_evaluate(**kwargs):
        seen.update(kwargs)
        return {"results": {"mmlu": {"acc,none": 0.31, "acc_stderr,none": 0.01, "alias": "mmlu"}}}

    monkeypatch.setitem(
        sys.modules, "lm_eval", types.SimpleNamespace(simple_evaluate=simple_evaluate)
    )
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    out = W.run_lm_eval(str(run), ["mmlu"], batch_size=4, limit=10)
    assert out == {"mmlu": {"acc,none": 0.31, "acc_stderr,none": 0.01}}
    assert seen["model"] == "hf" and seen["tasks"] == ["mmlu"] and seen["limit"] == 10
    assert seen["model_args"] == f"pretrained={run / 'model'},dtype=float32"  # run folder resolved


@pytest.mark.skipif(
    not W.lm_eval_available(), reason="lm-evaluation-harness not installed (optional)"
)
def test_lm_eval_installed_imports():
    import lm_eval

    assert hasattr(lm_eval, "simple_evaluate")
