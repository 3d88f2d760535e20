"""Long inputs (docs/muse-wmdp.md, "Long documents and the context length"): documents are cut
into windows so that every token is trained on and scored; multiple-choice prompts longer
than the model's context are left-truncated and counted; privleak texts report the tokens
beyond the context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from obliviate.data.templates import IGNORE
from obliviate.data.types import QAItem


def long_text(tok: Any, n_tokens: int) -> str:
    """A text of at least ``n_tokens`` tokens made of the tokenizer's own words."""
    words = [
        "Anna",
        "Berg",
        "was",
        "born",
        "in",
        "Paris",
        "and",
        "wrote",
        "seven",
        "novels",
        "about",
        "the",
        "sea",
    ]
    out: list[str] = []
    while len(tok(" ".join(out), add_special_tokens=False)["input_ids"]) < n_tokens:
        out += words * 20
    return " ".join(out)


def n_tokens(tok: Any, text: str) -> int:
    return len(tok(text, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("stride", [None, 200, 511])
def test_every_token_of_a_3000_token_document_is_trained_on(
    builtin_tok: Any, stride: int | None
) -> None:
    from obliviate.data.muse import encode_documents

    doc = long_text(builtin_tok, 3000)
    n = n_tokens(builtin_tok, doc)
    assert n >= 3000
    enc = encode_documents(builtin_tok, [QAItem("", doc)], 512, stride=stride)
    labels = [t for e in enc for t in e.labels if t != IGNORE]
    assert len(labels) == n  # each token once, none dropped
    assert labels == builtin_tok(doc, add_special_tokens=False)["input_ids"]
    assert all(len(e.input_ids) <= 512 for e in enc)
    if stride is not None:
        assert len(enc) == 1 + -(-(n - 511) // stride)  # windows overlap: more of them


def test_documents_among_qa_files_are_windowed_not_truncated(
    builtin_tok: Any, tmp_path: Path
) -> None:
    """A .txt document given to the qa benchmark is cut into windows by every method's job."""
    from obliviate.data.files import make_request
    from obliviate.data.templates import PromptTemplate
    from obliviate.methods.job import UnlearnJob

    doc = long_text(builtin_tok, 3000)
    (tmp_path / "book.txt").write_text(doc, encoding="utf-8")
    request = make_request(tmp_path / "book.txt")
    job = UnlearnJob(None, builtin_tok, request, PromptTemplate("qa"))  # type: ignore[arg-type]
    enc = job.encode_items(request.forget, 512)
    assert sum(t != IGNORE for e in enc for t in e.labels) == n_tokens(builtin_tok, doc)


def test_document_scoring_covers_every_token(builtin_tok: Any, random_model: Any) -> None:
    from obliviate.scoring import score_documents

    doc = long_text(builtin_tok, 3000)
    short = "Anna Berg was born in Paris."
    got = score_documents(random_model, builtin_tok, [doc, short], 512, stride=384, progress=False)
    assert [len(g) for g in got] == [n_tokens(builtin_tok, doc), n_tokens(builtin_tok, short)]
    # a text that fits in one window gets the same values, windowed or not
    (alone,) = score_documents(random_model, builtin_tok, [short], 512, progress=False)
    assert alone == pytest.approx(got[1], abs=1e-5)


def test_documents_benchmark_perplexity_counts_every_token(
    builtin_tok: Any, random_model: Any, tmp_path: Path
) -> None:
    from obliviate import api

    doc = long_text(builtin_tok, 3000)
    (tmp_path / "forget.txt").write_text(doc, encoding="utf-8")
    suite = api.load_suite(
        "documents",
        forget=str(tmp_path / "forget.txt"),
        settings={"verbmem_max_new_tokens": 2, "stride": 256},
    )
    result = suite.evaluate(random_model, builtin_tok, None, "sha256:x", False)
    ppl = result.metrics["forget_perplexity"]
    assert ppl["n_tokens"] == n_tokens(builtin_tok, doc)  # not cut at max_length or 512


def test_stride_must_fit_the_window() -> None:
    from obliviate.data.muse import windows

    with pytest.raises(ValueError, match="stride must be between 1 and the window"):
        windows(list(range(10)), 4, 5)
    assert windows(list(range(10)), 4, 2) == [
        ([0, 1, 2, 3], 0),
        ([2, 3, 4, 5], 2),
        ([4, 5, 6, 7], 2),
        ([6, 7, 8, 9], 2),
    ]


class Recorder:
    """Wraps a model and records the length of every input it is run on."""

    def __init__(self, model: Any) -> None:
        self.model, self.config, self.lengths = model, model.config, []

    def parameters(self) -> Any:
        return self.model.parameters()

    def __call__(self, input_ids: Any, attention_mask: Any) -> Any:
        self.lengths.append(int(input_ids.shape[1]))
        return self.model(input_ids=input_ids, attention_mask=attention_mask)


def test_mcq_prompt_longer_than_the_context_is_left_truncated(
    builtin_tok: Any, random_model: Any
) -> None:
    from obliviate.benchmarks.wmdp import choice_scores, evaluate_mcq, mcq_prompt
    from obliviate.data.wmdp import parse_mcq_row

    choices = ["Paris", "Berlin", "Rome", "Lima"]
    question = long_text(builtin_tok, 521)
    prompt_len = len(builtin_tok(mcq_prompt(question, choices))["input_ids"])
    assert prompt_len > 512 == random_model.config.max_position_embeddings
    long_item = parse_mcq_row({"question": question, "choices": choices, "answer": 0}, "row 1")
    short_item = parse_mcq_row({"question": "Where?", "choices": choices, "answer": 1}, "row 2")
    model = Recorder(random_model)
    ll, cut = choice_scores(model, builtin_tok, [long_item, short_item], "letters")
    assert cut == 1 and len(ll) == 2 and all(len(r) == 4 for r in ll)
    assert max(model.lengths) == 512  # nothing beyond the model's positions
    result = evaluate_mcq(random_model, builtin_tok, {"forget": [long_item, short_item]})
    acc = result.metrics["forget_accuracy"]
    assert acc["truncated_inputs"] == 1 and acc["context"] == 512 and acc["n"] == 2
    assert result.key["max_length"] == 512


def test_mcq_truncation_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    from obliviate.cli.eval import print_metrics

    print_metrics(
        {
            "forget_accuracy": {
                "value": 0.5,
                "direction": "lower",
                "n": 2,
                "truncated_inputs": 1,
                "context": 512,
            }
        }
    )
    out = capsys.readouterr().out
    assert "1 of 2 inputs were longer than the model's context (512 tokens)" in out


def test_privleak_reports_tokens_beyond_the_context(builtin_tok: Any, random_model: Any) -> None:
    from obliviate.benchmarks.muse import MuseSettings, evaluate_muse
    from obliviate.data.muse import MuseData

    doc = long_text(builtin_tok, 700)
    short = "Anna Berg was born in Paris."
    data = MuseData(
        name="t",
        source="t",
        privleak={"forget": [QAItem("", doc)], "holdout": [QAItem("", short)]},
    )
    res = evaluate_muse(random_model, builtin_tok, data, MuseSettings())
    # BOS + 511 document tokens fit in 512 positions
    assert res.metrics["mia_min_k_auc"]["tokens_dropped"] == n_tokens(builtin_tok, doc) - 511


def test_qa_texts_cut_at_max_length_are_reported(
    builtin_tok: Any, random_model: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The TOFU-style suite scores each text up to ``max_length``: what it cut is reported in
    the result's notes (metrics.json) and printed, never dropped silently."""
    from obliviate import api
    from obliviate.cli.eval import print_result
    from obliviate.runs import load_eval, write_eval

    doc = long_text(builtin_tok, 300)
    (tmp_path / "forget.txt").write_text(doc, encoding="utf-8")
    suite = api.load_suite(
        "qa", forget=str(tmp_path / "forget.txt"), settings={"max_length": 64, "generate": False}
    )
    result = suite.evaluate(random_model, builtin_tok, None, "sha256:x", False)
    (note,) = result.notes
    assert note.startswith("1 of 1 scored texts were longer than max_length=64 tokens")
    write_eval(tmp_path / "run", result, {})
    assert load_eval(tmp_path / "run").notes == [note]
    print_result(result)
    assert f"note: {note}" in capsys.readouterr().out
    (tmp_path / "short.txt").write_text("Anna Berg was born in Paris.", encoding="utf-8")
    short = api.load_suite("qa", forget=str(tmp_path / "short.txt"), settings={"generate": False})
    assert short.evaluate(random_model, builtin_tok, None, "sha256:x", False).notes == []
