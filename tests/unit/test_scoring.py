"""Templates, collation and the scoring pass: exact label boundary, padding invariance,
EOS handling, and per-token statistics against a hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from micro_models import qa_tokenizer  # tests/unit/micro_models.py

from obliviate.data.collate import pad_batch
from obliviate.data.templates import IGNORE, PromptTemplate, encode
from obliviate.models.tiny import build_tiny_llama
from obliviate.scoring import generate, score_pairs


@pytest.fixture(scope="module")
def tok():
    return qa_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    torch.manual_seed(0)
    m = build_tiny_llama(tok, "xs")
    m.eval()
    return m


def test_scored_tokens_decode_to_exactly_the_answer_plus_eos(tok) -> None:
    enc = encode(tok, "Where was Ann Berro born?", "Ann Berro was born in Paris.", PromptTemplate())
    answer_ids = [t for t in enc.labels if t != IGNORE]
    assert tok.decode(answer_ids) == " Ann Berro was born in Paris." + tok.eos_token
    assert enc.has_eos and answer_ids[-1] == tok.eos_token_id
    assert enc.labels[: enc.prompt_len] == [IGNORE] * enc.prompt_len
    assert (
        tok.decode(enc.input_ids[: enc.prompt_len])
        == tok.bos_token + "Question: Where was Ann Berro born?\nAnswer:"
    )


def test_documents_have_no_prompt_and_no_eos(tok) -> None:
    enc = encode(tok, "", "Olli writes short mystery novels.", PromptTemplate())
    assert enc.input_ids[0] == tok.bos_token_id and enc.prompt_len == 1
    assert not enc.has_eos and tok.decode(enc.labels[1:]) == "Olli writes short mystery novels."


def test_truncation_drops_the_answer_tail_and_the_eos(tok) -> None:
    full = encode(tok, "Q?", "Olli writes short mystery novels about sailors.", PromptTemplate())
    cut = encode(
        tok,
        "Q?",
        "Olli writes short mystery novels about sailors.",
        PromptTemplate(),
        max_length=full.prompt_len + 3,
    )
    assert len(cut.input_ids) == full.prompt_len + 3
    assert cut.input_ids == full.input_ids[: full.prompt_len + 3]
    assert not cut.has_eos


def test_pad_batch_masks_come_from_positions_not_token_ids() -> None:
    b = pad_batch([[5, 0, 7], [9]], pad_id=0, labels=[[IGNORE, 0, 7], [9]], side="left")
    # token id 0 inside a real sequence equals the pad id but is NOT masked
    assert b["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert b["input_ids"].tolist() == [[5, 0, 7], [0, 0, 9]]
    assert b["labels"].tolist() == [[IGNORE, 0, 7], [IGNORE, IGNORE, 9]]
    r = pad_batch([[5], [9, 8]], pad_id=3)
    assert r["attention_mask"].tolist() == [[1, 0], [1, 1]]
    with pytest.raises(ValueError):
        pad_batch([], pad_id=0)


def test_token_statistics_match_a_hand_computation(tok, model) -> None:
    q, a = "Where was Ann Berro born?", "Ann Berro was born in Paris."
    (s,) = score_pairs(model, tok, [(q, a)], PromptTemplate(), progress=False)
    enc = encode(tok, q, a, PromptTemplate())
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([enc.input_ids])).logits[0]
    logp = torch.log_softmax(logits.double(), -1)
    expected, correct, mus = [], [], []
    for t in range(enc.prompt_len, len(enc.input_ids)):
        row = logp[t - 1]
        expected.append(float(row[enc.input_ids[t]]))
        correct.append(int(row.argmax()) == enc.input_ids[t])
        mus.append(float((row.exp() * row).sum()))
    assert s.n == len(enc.input_ids) - enc.prompt_len
    np.testing.assert_allclose(s.token_logprobs, expected, atol=1e-5)
    np.testing.assert_array_equal(s.correct, correct)
    np.testing.assert_allclose(s.mu, mus, atol=1e-5)
    assert s.nll_avg() == pytest.approx(-np.mean(expected), abs=1e-5)
    assert s.nll_avg(include_eos=False) == pytest.approx(-np.mean(expected[:-1]), abs=1e-5)
    assert s.without_eos().n == s.n - 1


def test_scores_do_not_depend_on_batch_padding(tok, model) -> None:
    short = ("Q?", "Paris.")
    long = (
        "What does Olli write and where?",
        "Olli writes short mystery novels about sailors " * 3,
    )
    alone = score_pairs(model, tok, [short], PromptTemplate(), progress=False)[0]
    batched = score_pairs(
        model, tok, [long, short, long], PromptTemplate(), batch_size=3, progress=False
    )
    np.testing.assert_allclose(batched[1].token_logprobs, alone.token_logprobs, atol=1e-5)
    # identical pairs are scored once and returned for each occurrence, in input order
    assert batched[0] is batched[2]


def test_empty_answer_scores_only_the_eos(tok, model) -> None:
    (s,) = score_pairs(model, tok, [("Q?", "")], PromptTemplate(), progress=False)
    assert s.n == 1 and s.has_eos
    assert s.without_eos().n == 0 and math.isnan(s.without_eos().nll_avg())


def test_batched_generation_equals_one_at_a_time(tok, model) -> None:
    qs = ["Where was Ann Berro born?", "What does Olli write?", "Q?"]
    together = generate(
        model, tok, qs, PromptTemplate(), max_new_tokens=8, batch_size=3, progress=False
    )
    alone = [
        generate(model, tok, [q], PromptTemplate(), max_new_tokens=8, batch_size=1, progress=False)[
            0
        ]
        for q in qs
    ]
    assert together == alone
