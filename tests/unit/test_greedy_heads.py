"""Greedy answers read off the scoring pass, and the width of evaluation generation batches.

A teacher-forced pass over (prompt, reference answer) gives the argmax at every answer
position; greedy decoding from the same prompt emits the reference tokens for as long as they
are the argmax, then the argmax where one is not (:func:`obliviate.scoring.greedy_prefix`).
:func:`obliviate.scoring.generate` takes those tokens as known and decodes only the rest."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from micro_models import qa_tokenizer  # tests/unit/micro_models.py

from obliviate.data.templates import PromptTemplate
from obliviate.generation import GENERATION_BACKENDS, cache_rows, loop_backend
from obliviate.models.tiny import build_tiny_llama
from obliviate.scoring import TokenScores, generate, greedy_prefix, greedy_prefixes, score_pairs

QA = [
    ("Where was Ann Berro born?", "Ann Berro was born in Paris."),
    ("What does Olli write?", "Olli writes short mystery novels about sailors."),
]


def _scores(correct: list[bool], predicted: list[int] | None, eos: bool = True) -> TokenScores:
    n = len(correct)
    z = np.zeros(n)
    pred = None if predicted is None else np.array(predicted, dtype=np.int64)
    return TokenScores(z, np.array(correct, dtype=bool), z, z, eos, 0, pred)


def test_greedy_prefix_by_hand() -> None:
    # answer [5, 6, 7, EOS=2]; the model predicts 5, 6, then 9 instead of 7
    assert greedy_prefix(_scores([True, True, False, False], [5, 6, 9, 4])) == [5, 6, 9]
    # every token predicted, EOS included: the whole answer, ending in EOS
    assert greedy_prefix(_scores([True, True, True], [5, 6, 2])) == [5, 6, 2]
    # the first token already differs: only the model's own first token is known
    assert greedy_prefix(_scores([False, True], [8, 6])) == [8]
    assert greedy_prefix(_scores([], [])) == []  # empty answer
    assert greedy_prefix(_scores([True], None)) == []  # scores without predicted ids
    # dropping EOS keeps the predicted ids aligned with the tokens
    assert greedy_prefix(_scores([True, True, True], [5, 6, 2]).without_eos()) == [5, 6]


@pytest.fixture(scope="module")
def tok():
    return qa_tokenizer()  # trained on the texts of QA


@pytest.fixture(scope="module")
def model(tok):
    """A micro Llama that has memorised the two QA pairs (their answers end in EOS)."""
    from obliviate.data.collate import pad_batch, pad_id_of
    from obliviate.data.templates import encode

    torch.manual_seed(0)
    m = build_tiny_llama(tok, "xs")
    batch = pad_batch([e.input_ids for e in (encode(tok, q, a, PromptTemplate()) for q, a in QA)],
                      pad_id_of(tok))  # fmt: skip
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    for _ in range(80):
        loss = m(**batch, labels=batch["input_ids"].masked_fill(batch["attention_mask"] == 0,
                                                                 -100)).loss  # fmt: skip
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.eval()


QUESTIONS = [QA[0][0], QA[1][0], "Who is Olli Berro?", "Where was Olli born?", "Q?"]


def _plain_ids(tok, model, t, n: int) -> dict[str, list[int]]:
    """Plain greedy decoding of every question: new ids, EOS kept when emitted."""
    from obliviate.data.collate import pad_id_of
    from obliviate.generation import GenerationJob

    job = GenerationJob(n, 2, pad_id_of(tok), None)  # no EOS id: decode n tokens
    prompts = [t.prompt_ids(tok, q) for q in QUESTIONS]
    return dict(zip(QUESTIONS, loop_backend(model, prompts, job)))


def test_greedy_prefixes_are_true_heads_and_the_longest(tok, model) -> None:
    t = PromptTemplate()
    plain = _plain_ids(tok, model, t, 20)
    refs = [a for _, a in QA] + ["Nothing at all.", "Olli was born in Paris."]
    pairs = [(q, a) for q in QUESTIONS for a in refs]
    scores = dict(zip(pairs, score_pairs(model, tok, pairs, t, progress=False)))
    known = greedy_prefixes(tok, t, pairs, scores)
    assert set(known) == set(QUESTIONS)
    for q in QUESTIONS:
        heads = [greedy_prefix(scores[(q, a)]) for a in refs]
        for h in heads:  # every reference gives a true start of the greedy answer
            assert h == plain[q][: len(h)] and h
        assert known[q] == max(heads, key=len)
    for q, a in QA:  # memorised: known to its EOS, the answer itself
        assert known[q][-1] == tok.eos_token_id
        assert tok.decode(known[q], skip_special_tokens=True).strip() == a
    # a prompt that the joint tokenisation changed is not used
    other = types.SimpleNamespace(
        prompt_ids=t.prompt_ids, pair_ids=lambda tk, q, a: ([0], t.pair_ids(tk, q, a)[1])
    )
    assert greedy_prefixes(tok, other, pairs, scores) == {}  # type: ignore[arg-type]
    # nor one at max_length (generation would cut it)
    assert greedy_prefixes(tok, t, pairs, scores, max_length=3) == {}


def test_known_heads_are_not_decoded_again_and_change_nothing(tok, model, monkeypatch) -> None:
    t = PromptTemplate()
    plain = generate(model, tok, QUESTIONS, t, max_new_tokens=12, batch_size=2, progress=False)
    pairs = [(q, a) for q in QUESTIONS for _, a in QA]
    scores = dict(zip(pairs, score_pairs(model, tok, pairs, t, progress=False)))
    known = greedy_prefixes(tok, t, pairs, scores)
    decoded: list[list[int]] = []

    def counting(m, prompts, job):
        decoded.extend(list(p) for p in prompts)
        return loop_backend(m, prompts, job)

    monkeypatch.setitem(GENERATION_BACKENDS, "loop", counting)
    fast = generate(model, tok, QUESTIONS, t, 12, batch_size=3, progress=False, known=known)
    assert fast == plain
    ended = [q for q in QUESTIONS if tok.eos_token_id in known[q]]
    assert len(ended) >= 2 and len(decoded) == len(QUESTIONS) - len(ended)  # EOS known: no decode
    for q in QUESTIONS:
        if q not in ended:  # the rest is decoded from the prompt and the known head
            assert t.prompt_ids(tok, q) + known[q] in decoded
    # a made-up head is taken as given: proof that it is used, not recomputed
    paris = tok("Sailors in Paris", add_special_tokens=False)["input_ids"]
    fake = {QUESTIONS[0]: [*paris, tok.eos_token_id]}
    got = generate(model, tok, QUESTIONS[:1], t, 12, progress=False, known=fake)
    assert got == ["Sailors in Paris"] != plain[:1]
    # other backends decode everything themselves
    hf = generate(model, tok, QUESTIONS[:1], t, 12, progress=False, known=fake, backend="hf")
    assert hf == plain[:1]


def test_a_head_longer_than_the_budget_is_cut() -> None:
    tk = qa_tokenizer()
    torch.manual_seed(0)
    m = build_tiny_llama(tk, "xs").eval()
    ids = tk("Ann Berro was born in Paris", add_special_tokens=False)["input_ids"]
    out = generate(m, tk, ["Q?"], PromptTemplate(), 2, progress=False, known={"Q?": ids})
    assert len(ids) > 2 and out == [tk.decode(ids[:2], skip_special_tokens=True).strip()]


def test_cache_rows_by_hand() -> None:
    def fake(layers: int, hidden: int, heads: int, kv: int | None, dtype=torch.float32):
        cfg = types.SimpleNamespace(
            num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads,
            num_key_value_heads=kv, head_dim=None, text_config=None,
        )  # fmt: skip
        return types.SimpleNamespace(config=cfg, dtype=dtype)

    # 2 (k, v) x 4 layers x 4 heads x 40 dims x 4 bytes x 712 positions = 3,645,440 bytes/row
    assert cache_rows(fake(4, 160, 4, 4), 712, 32) == (1 << 30) // 3_645_440 == 294
    # grouped-query attention: the KV heads count; bf16 halves the bytes
    assert cache_rows(fake(4, 160, 4, 2, torch.bfloat16), 2000, 32) == (1 << 30) // 2_560_000
    assert cache_rows(fake(32, 4096, 32, 8, torch.bfloat16), 712, 32) == 32  # 7B-like: floor
    assert cache_rows(fake(1, 8, 1, 1), 10, 32) == 1024  # capped
    assert cache_rows(types.SimpleNamespace(config=None), 712, 16) == 16  # unknown sizes


def test_generation_batch_size_setting() -> None:
    from obliviate.data.types import QAItem, UnlearningRequest
    from obliviate.evaluation import EvalSettings, eval_key

    with pytest.raises(ValueError, match=r"^evaluation setting generation_batch_size=0"):
        EvalSettings(generation_batch_size=0)
    item = QAItem("q", "a")
    request = UnlearningRequest(forget=[item], retain=[], eval={"forget": [item]})
    auto = eval_key(request, PromptTemplate(), EvalSettings(), "m")
    fixed = eval_key(request, PromptTemplate(), EvalSettings(generation_batch_size=8), "m")
    assert "generation_batch_size" not in auto["settings"]
    assert fixed["settings"]["generation_batch_size"] == 8
