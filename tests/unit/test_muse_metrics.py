"""MUSE metrics against hand-computed values (docs/muse-wmdp.md).

ROUGE-L F1 by hand: rouge_score lower-cases and keeps alphanumeric tokens; P = LCS/len(gen),
R = LCS/len(ref), F1 = 2PR/(P+R); an empty text scores 0.
"""

from __future__ import annotations

import numpy as np
import pytest

from obliviate.benchmarks import muse as M
from obliviate.data.muse import MuseData
from obliviate.data.types import QAItem
from obliviate.evaluation import EvalResult
from obliviate.scoring import TokenScores

# ----------------------------------------------------------------------------- pure functions


def test_knowmem_prompt_format():
    prompt = M.knowmem_prompt([("Q1?", "A1"), ("Q2?", "A2")], "Q3?")
    assert (
        prompt == "Question: Q1?\nAnswer: A1\n\nQuestion: Q2?\nAnswer: A2\n\nQuestion: Q3?\nAnswer:"
    )
    assert M.knowmem_prompt([], "Q?") == "Question: Q?\nAnswer:"
    with pytest.raises(ValueError, match="empty"):
        M.knowmem_prompt([], "  ")


def test_verbmem_hand_computed():
    # item 1: gen [the cat sat on the mat] vs ref [the cat sat]: LCS 3, P 1/2, R 1 -> F1 2/3
    # item 2: empty generation -> 0
    gens = ["The cat sat on the mat", ""]
    gts = ["the cat sat", "hello world"]
    assert M.rouge_l_f1(gens, gts) == pytest.approx([2 / 3, 0.0])
    assert M.verbmem_score(gens, gts) == pytest.approx(1 / 3)


def test_knowmem_hand_computed():
    # item 2: gen [in london town] vs ref [london]: LCS 1, P 1/3, R 1 -> F1 0.5
    assert M.knowmem_score(["Paris", "in London town"], ["Paris", "London"]) == pytest.approx(0.75)


def test_stemming_is_off_by_default_like_muse():
    assert M.knowmem_score(["cats running"], ["cat run"]) == 0.0
    assert M.knowmem_score(["cats running"], ["cat run"], use_stemmer=True) == 1.0


def test_scores_need_items():
    with pytest.raises(ValueError):
        M.verbmem_score([], [])
    with pytest.raises(ValueError):
        M.knowmem_score([], [])
    with pytest.raises(ValueError, match="paired"):
        M.knowmem_score(["a"], ["a", "b"])


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Vasola\n\nQuestion: next one", "Vasola"),
        ("Vasola\nQuestion: next", "Vasola"),
        ("Vasola Question: next", "Vasola"),
        ("  no stop here  ", "no stop here"),
        ("\n\nQuestion:", ""),
    ],
)
def test_cut_at_stops(text, expected):
    assert M.cut_at_stops(text, M.KNOWMEM_STOPS) == expected


class WordTokenizer:
    """Whitespace 'tokenizer': one token per word (ids index a growing vocabulary)."""

    def __init__(self) -> None:
        self.vocab: list[str] = []

    def __call__(self, text, add_special_tokens=False, verbose=False):
        ids = []
        for w in text.split():
            if w not in self.vocab:
                self.vocab.append(w)
            ids.append(self.vocab.index(w))
        return {"input_ids": ids}

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(self.vocab[i] for i in ids)


def test_truncate_to_tokens():
    tok = WordTokenizer()
    assert M.truncate_to_tokens(tok, "a b c", 3) == "a b c"  # not longer: unchanged
    assert M.truncate_to_tokens(tok, "a  b", 5) == "a  b"  # unchanged text, spacing kept
    assert M.truncate_to_tokens(tok, "a b c d e", 2) == "a b"


def test_settings_validate():
    with pytest.raises(ValueError, match="min_k"):
        M.MuseSettings(min_k=0)
    with pytest.raises(ValueError, match="verbmem_max_new_tokens"):
        M.MuseSettings(verbmem_max_new_tokens=0)
    assert M.MuseSettings(knowmem_stop=["x"]).knowmem_stop == ("x",)


# ----------------------------------------------------------------------------- evaluate_muse
# The model is replaced by fixed generations and token scores, so every number is by hand.


def _data() -> MuseData:
    doc = lambda t: QAItem("", t)
    return MuseData(
        name="muse",
        source="test",
        raw={"forget": [doc("f1"), doc("f2")], "retain1": [doc("r1")]},
        verbmem=[QAItem("prompt one", "w1 w2 w3 w4"), QAItem("prompt two", "x y")],
        knowmem={
            "forget_qa": [QAItem("Where?", "Paris"), QAItem("When?", "1990")],
            "forget_qa_icl": [QAItem("Who?", "Ann")],
            "retain_qa": [QAItem("What?", "tea")],
            "retain_qa_icl": [QAItem("Why?", "rain")],
        },
        privleak={"forget": [doc("pf1"), doc("pf2")], "holdout": [doc("ph1"), doc("ph2")]},
    )


def _scores(logprobs):
    lp = np.asarray(logprobs, dtype=float)
    return TokenScores(lp, np.zeros(lp.shape, bool), np.zeros(lp.shape), np.zeros(lp.shape), False)


@pytest.fixture
def fake_model(monkeypatch):
    """generate/score_pairs replaced by table look-ups; records the calls."""
    from obliviate import scoring

    calls = {"generate": [], "score": []}
    gens = {
        "prompt one": "w1 w2 zz",  # vs gt truncated to 3 tokens "w1 w2 w3": LCS 2, P=R=2/3 -> 2/3
        "prompt two": "x y",  # -> 1
        M.knowmem_prompt([("Who?", "Ann")], "Where?"): "Paris\n\nQuestion: more",  # cut -> 1
        M.knowmem_prompt([("Who?", "Ann")], "When?"): "in 1990 maybe",  # P 1/3 R 1 -> 0.5
        M.knowmem_prompt([("Why?", "rain")], "What?"): "coffee",  # -> 0
    }
    # Min-K% with k = 0.4: floor(0.4 * 5) = 2 lowest tokens
    lps = {
        "pf1": [-1, -1, -1, -1, -1],
        "pf2": [-0.5, -2, -3, -1, -1],  # s = 1.0, 2.5
        "ph1": [-4, -4, -1, -1, -1],
        "ph2": [-2, -2, -2, -2, -2],
    }  # s = 4.0, 2.0

    def generate(
        model,
        tok,
        questions,
        template,
        max_new_tokens=64,
        batch_size=32,
        max_length=512,
        progress=True,
        desc="",
        stop_strings=(),
    ):
        calls["generate"].append(
            (list(questions), max_new_tokens, tuple(stop_strings), template.name)
        )
        return [gens.get(q, "") for q in questions]

    def score_pairs(
        model, tok, pairs, template, batch_size=32, max_length=512, progress=True, desc=""
    ):
        calls["score"].append((list(pairs), max_length, template.name))
        return [_scores(lps[a]) for q, a in pairs]

    monkeypatch.setattr(scoring, "generate", generate)
    monkeypatch.setattr(scoring, "score_pairs", score_pairs)
    return calls


def test_evaluate_muse_hand_computed(fake_model):
    settings = M.MuseSettings(verbmem_gt_tokens=3)
    res = M.evaluate_muse(object(), WordTokenizer(), _data(), settings)
    v = res.values()
    assert v["forget_verbmem"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert v["forget_knowmem"] == pytest.approx((1.0 + 0.5) / 2)
    assert v["retain_knowmem"] == pytest.approx(0.0)
    # forget scores {1.0, 2.5}, holdout {4.0, 2.0}: pairs (h > f): 4>1, 4>2.5, 2>1 -> 3 of 4
    assert v["mia_min_k_auc"] == pytest.approx(0.75)
    assert "privleak" not in v  # no retrained model given
    assert res.metrics["forget_verbmem"]["direction"] == "lower"
    assert res.metrics["retain_knowmem"]["direction"] == "higher"
    # the protocol: 128 new tokens for VerbMem, 32 + stop strings for KnowMem, raw prompts
    (verb_q, verb_n, verb_stop, t1), (kf_q, kf_n, kf_stop, _), (kr_q, _, _, _) = fake_model[
        "generate"
    ]
    assert (verb_q, verb_n, verb_stop, t1) == (["prompt one", "prompt two"], 128, (), "raw")
    assert kf_n == 32 and kf_stop == M.KNOWMEM_STOPS
    assert kf_q[0] == "Question: Who?\nAnswer: Ann\n\nQuestion: Where?\nAnswer:"
    assert kr_q == ["Question: Why?\nAnswer: rain\n\nQuestion: What?\nAnswer:"]
    # privleak texts scored as documents (empty prompt), capped at max_length
    pairs, max_length, tname = fake_model["score"][0]
    assert pairs == [("", "pf1"), ("", "pf2")] and max_length == 2048 and tname == "raw"
    rows = [s for s in res.samples if s["split"] == "verbmem"]
    assert rows[0]["answer"] == "w1 w2 w3" and rows[0]["generation"] == "w1 w2 zz"
    knows = [s for s in res.samples if s["split"] == "forget_qa"]
    assert knows[0]["generation"] == "Paris"


def test_privleak_against_retrained_model(fake_model):
    data = _data()
    target = M.evaluate_muse(object(), WordTokenizer(), data)  # AUC 0.75
    retrain = EvalResult(
        {"mia_min_k_auc": {"value": 0.5, "direction": "zero", "version": 1}},
        [],
        dict(target.key, model="retrain"),
    )
    M.add_privleak(target, retrain)
    # MUSE orientation: s = 1 - 0.75 = 0.25, r = 0.5 -> (0.25 - 0.5) / 0.5 * 100 = -50
    assert target.metrics["privleak"]["value"] == pytest.approx(-50.0)
    assert target.metrics["privleak"]["direction"] == "zero"
    # the retrained model against itself: 0
    M.add_privleak(retrain, retrain)
    assert retrain.metrics["privleak"]["value"] == pytest.approx(0.0)


def test_privleak_refuses_incomparable_reference(fake_model):
    data = _data()
    target = M.evaluate_muse(object(), WordTokenizer(), data)
    other = M.evaluate_muse(object(), WordTokenizer(), data, M.MuseSettings(min_k=0.2))
    with pytest.raises(ValueError, match="settings"):
        M.add_privleak(target, other)


def test_max_items_and_n_icl(fake_model):
    res = M.evaluate_muse(object(), WordTokenizer(), _data(), M.MuseSettings(max_items=1, n_icl=0))
    assert len([s for s in res.samples if s["split"] == "verbmem"]) == 1
    assert fake_model["generate"][1][0] == ["Question: Where?\nAnswer:"]


def test_missing_parts_are_skipped(fake_model):
    data = MuseData(
        name="muse",
        source="t",
        knowmem={
            "forget_qa": [QAItem("Where?", "Paris")],
            "forget_qa_icl": [QAItem("Who?", "Ann")],
        },
    )
    res = M.evaluate_muse(object(), WordTokenizer(), data)
    assert set(res.values()) == {"forget_knowmem"}


def test_markdown_table():
    doc = {
        "benchmark": "builtin-muse",
        "rows": [
            {
                "name": "target",
                "forget_verbmem": 0.9,
                "forget_knowmem": 0.8,
                "privleak": -99.5,
                "retain_knowmem": 0.7,
            }
        ],
        "scalability": {"npo": [{"fold": 1, "n_docs": 6, "metrics": {"forget_knowmem": 0.1}}]},
        "sustainability": {},
    }
    from obliviate.reporting.render import muse_markdown

    md = muse_markdown(doc)
    assert "| target | 0.900 | 0.800 | -99.500 | 0.700 |" in md
    assert "| npo | 1 | 6 | - | 0.100 | - | - |" in md
