"""Scoring with each distinct prompt run once gives the numbers of one pass per pair.

Items of a random micro Llama: questions with one to four answers of different lengths, a
one-token answer, an answer that is only EOS, an item cut to ``max_length`` and prompts of
different lengths (left padding in the prompt pass, right padding in the answer pass)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from micro_models import noisy_tiny_llama, qa_tokenizer  # tests/unit/micro_models.py

from obliviate.data.templates import Encoded, PromptTemplate, encode
from obliviate.scoring import score_encoded, score_pairs
from obliviate.shared_prompts import can_share, prompt_groups

PAIRS = [
    ("Where was Ann Berro born?", "Ann Berro was born in Paris."),
    ("Where was Ann Berro born?", "In Paris."),
    ("Where was Ann Berro born?", "She was born in a small town by the sea, far from Paris."),
    ("Where was Ann Berro born?", "Rome."),
    ("What does Olli write?", "Olli writes short mystery novels about sailors."),
    ("What does Olli write?", "Poems."),
    ("Q?", "Paris."),
    ("Tell me, in a few words, everything you know about Olli and about Ann Berro?", "Nothing."),
    ("Tell me, in a few words, everything you know about Olli and about Ann Berro?", ""),
]


@pytest.fixture(scope="module")
def tok():
    return qa_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return noisy_tiny_llama(tok)  # spread-out distributions


def _same(a, b) -> None:
    assert a.n == b.n and a.has_eos == b.has_eos and a.cut == b.cut
    np.testing.assert_allclose(a.token_logprobs, b.token_logprobs, rtol=0, atol=2e-5)
    np.testing.assert_allclose(a.mu, b.mu, rtol=0, atol=2e-5)
    # sigma2 (a variance of log-probabilities, ~2-5 here) carries float32 rounding relative to
    # its size: on an AVX2-only CPU the two paths' kernels differed by 5.2e-6 of 4.41
    np.testing.assert_allclose(a.sigma2, b.sigma2, rtol=1e-5, atol=2e-5)
    assert (a.correct == b.correct).all() and (a.predicted == b.predicted).all()


@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_shared_prompts_give_the_numbers_of_one_pass_per_pair(tok, model, batch_size) -> None:
    t = PromptTemplate()
    single = score_pairs(model, tok, PAIRS, t, batch_size=batch_size, progress=False)
    shared = score_pairs(
        model, tok, PAIRS, t, batch_size=batch_size, progress=False, share_prompts=True
    )
    assert [s.n for s in shared] == [s.n for s in single]
    assert min(s.n for s in single) == 1  # the answer that is only EOS
    for a, b in zip(shared, single):
        _same(a, b)


def test_cut_items_and_the_statistics_against_a_direct_forward(tok, model) -> None:
    t = PromptTemplate()
    enc = [encode(tok, q, a, t, max_length=16) for q, a in PAIRS[:4]]
    assert any(e.cut for e in enc)
    shared = score_encoded(model, tok, enc, 2, share_prompts=True)
    for e, s in zip(enc, shared):  # one item at a time, no padding at all
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([e.input_ids])).logits[0]
        logp = torch.log_softmax(logits[e.prompt_len - 1 : -1].double(), -1)
        ans = torch.tensor(e.input_ids[e.prompt_len :])
        want = logp.gather(-1, ans[:, None])[:, 0].numpy()
        np.testing.assert_allclose(s.token_logprobs, want, rtol=0, atol=2e-5)
        p = logp.exp()
        mu = (p * logp).sum(-1)
        np.testing.assert_allclose(s.mu, mu.numpy(), rtol=0, atol=2e-5)
        np.testing.assert_allclose(
            s.sigma2, ((p * logp * logp).sum(-1) - mu * mu).numpy(), rtol=0, atol=2e-5
        )


def _item(prompt: list[int], answer: list[int]) -> Encoded:
    return Encoded(prompt + answer, [-100] * len(prompt) + answer, len(prompt), False)


def test_prompt_groups_by_hand() -> None:
    enc = [
        _item([1, 2], [5]),
        _item([1, 2], [5, 6, 7]),
        _item([3], [5, 6, 7, 8, 9]),
        _item([1, 2], [6]),
        _item([4, 4, 4], [1]),
    ]
    # groups: {0, 1, 3} (longest item 5 tokens), {2} (6 tokens), {4} (4 tokens)
    assert prompt_groups(enc, 4) == [[[2], [0, 1, 3]], [[4]]]
    assert prompt_groups(enc, 1) == [[[2]], [[0, 1, 3]], [[4]]]  # a group is never split
    # up to 8 answer rows and 2 prompts a pass; the answer passes then take 2 rows each
    assert prompt_groups(enc, 2, rows=8) == [[[2], [0, 1, 3]], [[4]]]
    assert prompt_groups(enc, 4, rows=8) == [[[2], [0, 1, 3], [4]]]
    assert prompt_groups(enc, 4, rows=4) == [[[2], [0, 1, 3]], [[4]]]
    assert can_share(object(), enc) is False  # not a Hugging Face model


def test_can_share_needs_a_shared_prompt_and_prompts(tok, model) -> None:
    assert can_share(model, [_item([1, 2], [5]), _item([1, 2], [6])])
    assert not can_share(model, [_item([1, 2], [5]), _item([1, 3], [6])])  # nothing shared
    assert not can_share(model, [_item([], [5]), _item([], [6])])  # documents: no prompt
    assert not can_share(model, [_item([1, 2], []), _item([1, 2], [6])])  # an answer cut away
