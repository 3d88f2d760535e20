"""Unit tests of the method terms (the wiring around the pure losses of functional.py).

A "bigram" model (logits at position t = a table row of token t) makes every sequence
log-probability computable by hand; expected values are written with ``math`` over the table,
never by calling the function under test. What is checked: which sequences a term scores (winner,
loser, mismatched answers), that reference values come from the untouched model and are indexed by
the forget item, PDU's dual-variable schedule, the cached answer-position logits, WHP's generic
targets, RMU's layer discovery/parameter selection/adaptive coefficient, and AltPO's alternates.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from obliviate.config import TrainConfig
from obliviate.data.templates import PromptTemplate, encode
from obliviate.data.types import DataError, QAItem, UnlearningRequest
from obliviate.methods import functional as F
from obliviate.methods import gradient, preference, representation, whp
from obliviate.methods.base import UnlearnJob
from obliviate.training import collate_encoded

IGN = -100
pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
TEXTS = [
    "Who wrote the Blue Door? Mara Lind wrote it.",
    "Where was Tomas Ek born? In Varn.",
    "What is the capital of Olmia? Its capital is Presk.",
    "I don't know.",
    "I have no idea.",
    "Sorry, I can't answer that.",
    "What did Ana study? She studied botany at Kell.",
]


@pytest.fixture(scope="module")
def tok():
    from obliviate.models.tiny import train_tokenizer

    return train_tokenizer(TEXTS * 3, vocab_size=200)


class Bigram(torch.nn.Module):
    """logits[b, t] = table[input_ids[b, t]]: a causal LM whose log-probs are a table lookup."""

    def __init__(self, vocab: int, seed: int = 0, scale: float = 1.0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = torch.nn.Parameter(
            torch.randn(vocab, vocab, generator=g, dtype=torch.float64) * scale
        )
        self.config = SimpleNamespace(vocab_size=vocab)

    def forward(self, input_ids, attention_mask=None, **_):
        return SimpleNamespace(logits=self.table[input_ids])


def lsm(row: list[float], i: int) -> float:
    return row[i] - math.log(sum(math.exp(x) for x in row))


def lsm_row(row: list[float]) -> list[float]:
    lse = math.log(sum(math.exp(x) for x in row))
    return [x - lse for x in row]


def hand_seq_logp(table: list[list[float]], enc) -> tuple[float, int]:
    """Σ over answer tokens of log softmax(table[prev])[token], and the number of answer tokens."""
    total, n = 0.0, 0
    for t in range(1, len(enc.input_ids)):
        if enc.labels[t] != IGN:
            total += lsm(table[enc.input_ids[t - 1]], enc.input_ids[t])
            n += 1
    return total, n


FORGET = [
    QAItem("Who wrote the Blue Door?", "Mara Lind wrote it."),
    QAItem("Where was Tomas Ek born?", "In Varn."),
    QAItem("What did Ana study?", "She studied botany at Kell."),
]
RETAIN = [
    QAItem("What is the capital of Olmia?", "Its capital is Presk."),
    QAItem("Where is Presk?", "In Olmia."),
]


def make_job(model, tok, forget=FORGET, retain=RETAIN) -> UnlearnJob:
    return UnlearnJob(
        model,
        tok,
        UnlearningRequest(list(forget), list(retain)),
        PromptTemplate("qa"),
        progress=False,
    )


def forget_batch(job: UnlearnJob, order: list[int], max_length: int = 512) -> dict:
    enc = job.encode_items(job.request.forget, max_length)
    return collate_encoded([enc[i] for i in order], order, job.tokenizer.pad_token_id)


CFG = TrainConfig(batch_size=2, seed=0, lr=1e-3)


# ----------------------------------------------------------------------------- IdK answers


def test_builtin_idk_list_has_about_100_distinct_refusals():
    idk = preference.load_idk()
    assert len(idk) >= 100
    assert len(set(idk)) == len(idk)
    assert all(a == a.strip() and a for a in idk)


def test_user_idk_file_and_errors(tmp_path):
    p = tmp_path / "refusals.txt"
    p.write_text("No comment.\n\n  Not telling.  \n", encoding="utf-8")
    assert preference.load_idk(p) == ["No comment.", "Not telling."]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n", encoding="utf-8")
    with pytest.raises(DataError, match=r"empty.txt"):
        preference.load_idk(empty)
    with pytest.raises(DataError, match=r"missing.txt"):
        preference.load_idk(tmp_path / "missing.txt")


# ----------------------------------------------------------------------------- cached answer logits


def test_answer_logits_cache_places_rows_for_any_batch_order_and_padding(tok):
    model = Bigram(len(tok))
    job = make_job(model, tok)
    enc = job.encode_items(FORGET)
    cache = gradient.AnswerLogits.compute(
        lambda b: model(b["input_ids"]).logits, enc, tok.pad_token_id, "cpu", batch_size=2
    )
    assert [r.shape[0] for r in cache.rows] == [
        hand_seq_logp(model.table.tolist(), e)[1] for e in enc
    ]
    b = forget_batch(job, [2, 0, 1])
    logits = model(b["input_ids"]).logits.detach()
    got = cache.for_batch(b["index"], b["labels"], logits)
    _, _, mask = F.shift_labels(logits, b["labels"])
    assert torch.equal(got[:, :-1][mask], logits[:, :-1][mask])
    assert torch.count_nonzero(got[:, :-1][~mask]) == 0 and torch.count_nonzero(got[:, -1]) == 0
    b["labels"][1, b["labels"][1].ne(IGN).nonzero()[-1]] = IGN  # row 1 = item 0 loses a token
    with pytest.raises(ValueError, match="forget item 0"):
        cache.for_batch(b["index"], b["labels"], logits)


# ----------------------------------------------------------------------------- SimNPO / DPO


def test_simnpo_term_matches_hand_value_and_ignores_padding(tok):
    model = Bigram(len(tok), seed=1)
    job = make_job(model, tok)
    term = preference.SimNPOTerm(beta=2.0, margin=0.5)
    b = forget_batch(job, [0, 1, 2])
    table = model.table.tolist()
    terms = []
    for e in job.encode_items(FORGET):
        s, n = hand_seq_logp(table, e)
        x = -(2.0 / n) * s - 0.5  # -(β/n)·log π − γ_m
        terms.append(-(2 / 2.0) * -math.log1p(math.exp(-x)))
    assert float(term(model, b, job)) == pytest.approx(sum(terms) / 3, rel=1e-9)
    wide = {
        k: torch.cat(
            [
                v,
                torch.full(
                    (3, 4),
                    tok.pad_token_id if k == "input_ids" else (0 if k == "attention_mask" else IGN),
                ),
            ],
            1,
        )
        for k, v in b.items()
        if k != "index"
    }
    wide["index"] = b["index"]
    assert float(term(model, wide, job)) == pytest.approx(sum(terms) / 3, rel=1e-9)


def test_idk_dpo_uses_refusal_winners_true_losers_and_cached_reference(tok):
    model = Bigram(len(tok), seed=2)
    job = make_job(model, tok)
    term = preference.IdkDPOTerm(beta=0.5, n_winners=1)
    term.setup(job, job.encode_items(FORGET), CFG)
    idk = set(preference.load_idk())
    assert all(len(w) == 1 and w[0] in idk for w in term.winner_texts)
    ref_table = model.table.tolist()
    with torch.no_grad():  # "training" moved the model away from the reference
        model.table.add_(
            torch.randn(
                model.table.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64
            )
        )
    table = model.table.tolist()
    order = [2, 0]
    expected = []
    for i in order:
        win = encode(tok, FORGET[i].question, term.winner_texts[i][0], job.template)
        lose = job.encode_items([FORGET[i]])[0]
        d = (hand_seq_logp(table, win)[0] - hand_seq_logp(ref_table, win)[0]) - (
            hand_seq_logp(table, lose)[0] - hand_seq_logp(ref_table, lose)[0]
        )
        expected.append(-(2 / 0.5) * -math.log1p(math.exp(-0.5 * d)))
    got = term(model, forget_batch(job, order), job)
    # the cached reference log-probs are float32 (reference.sequence_logprobs): ~1e-7 relative
    assert float(got) == pytest.approx(sum(expected) / 2, rel=1e-5)
    got.backward()
    assert model.table.grad is not None and float(model.table.grad.abs().sum()) > 0


def test_dpo_at_the_reference_is_2_over_beta_log2(tok):
    model = Bigram(len(tok), seed=3)
    job = make_job(model, tok)
    term = preference.IdkDPOTerm(beta=0.1, n_winners=3)
    term.setup(job, job.encode_items(FORGET), CFG)
    assert all(len(w) == 3 and len(set(w)) == 3 for w in term.winner_texts)
    assert float(term(model, forget_batch(job, [1, 2, 0]), job)) == pytest.approx(20 * math.log(2))


def test_idk_nll_term_scores_refusals_on_forget_questions(tok, monkeypatch):
    model = Bigram(len(tok), seed=4)
    job = make_job(model, tok)
    seen = []
    real = preference.encode_pairs

    def spy(job_, pairs, max_length, device):
        seen.extend(pairs)
        return real(job_, pairs, max_length, device)

    monkeypatch.setattr(preference, "encode_pairs", spy)
    term = preference.IdkNLLTerm()
    term.setup(job, job.encode_items(FORGET), CFG)
    got = float(term(model, forget_batch(job, [1, 2]), job))
    idk = set(preference.load_idk())
    assert [q for q, _ in seen] == [FORGET[1].question, FORGET[2].question]
    assert all(a in idk for _, a in seen)
    table = model.table.tolist()
    tot, n = 0.0, 0
    for q, a in seen:
        s, k = hand_seq_logp(table, encode(tok, q, a, job.template))
        tot, n = tot - s, n + k
    assert got == pytest.approx(tot / n, rel=1e-9)  # HF token mean over the batch


# ----------------------------------------------------------------------------- LLMU


def test_llmu_is_weighted_ascent_plus_nll_of_random_retain_answers(tok, monkeypatch):
    model = Bigram(len(tok), seed=5)
    job = make_job(model, tok)
    seen = []
    real = gradient.encode_pairs
    monkeypatch.setattr(
        gradient,
        "encode_pairs",
        lambda j, pairs, m, d: (seen.extend(pairs), real(j, pairs, m, d))[1],
    )
    term = gradient.LLMUTerm(ascent_weight=0.5, random_weight=2.0)
    term.setup(job, job.encode_items(FORGET), CFG)
    order = [0, 2]
    got = float(term(model, forget_batch(job, order), job))
    assert [q for q, _ in seen] == [FORGET[i].question for i in order]
    assert all(a in {r.answer for r in RETAIN} for _, a in seen)
    table = model.table.tolist()

    def token_mean_nll(encs):
        s = [hand_seq_logp(table, e) for e in encs]
        return -sum(x for x, _ in s) / sum(n for _, n in s)

    ga = -token_mean_nll(job.encode_items([FORGET[i] for i in order]))
    mis = token_mean_nll([encode(tok, q, a, job.template) for q, a in seen])
    assert got == pytest.approx(0.5 * ga + 2.0 * mis, rel=1e-9)


def test_llmu_needs_a_retain_set(tok):
    job = make_job(Bigram(len(tok)), tok, retain=[])
    with pytest.raises(ValueError, match="retain"):
        gradient.LLMUTerm().setup(job, job.encode_items(FORGET), CFG)


# ----------------------------------------------------------------------------- PDU


def uniform_job(tok, n_forget: int) -> tuple[Bigram, UnlearnJob, float]:
    model = Bigram(len(tok))
    with torch.no_grad():
        model.table.zero_()  # uniform predictions: NLL = log V for every token
    items = [FORGET[i % 3] for i in range(n_forget)]
    return model, make_job(model, tok, forget=items), math.log(len(tok))


def test_pdu_dual_variable_schedule_by_hand(tok):
    model, job, nll = uniform_job(tok, 8)  # 8 forget items, batch 4 -> 2 steps per epoch
    term = gradient.PDURetainTerm(lambda_r=100.0, eps=0.3, eta=5.0, warmup_epochs=1.0)
    term.setup(job, [], TrainConfig(batch_size=4))
    rb = collate_encoded(job.encode_items(RETAIN), [0, 1], tok.pad_token_id)
    lam, losses = 100.0, []
    for step in range(1, 5):
        losses.append(float(term(model, rb, job)))
        assert losses[-1] == pytest.approx(lam * (nll - 0.3), rel=1e-9)  # λ before the update
        if step > 2:  # warm-up = 1 epoch = 2 steps
            lam = max(0.0, lam + 5.0 * (nll - 0.3))
        assert term.lambda_r == pytest.approx(lam)
    assert term.history == pytest.approx(
        [100.0, 100.0, 100 + 5 * (nll - 0.3), 100 + 10 * (nll - 0.3)]
    )


def test_pdu_dual_update_per_optimiser_step_and_clipped_at_zero(tok):
    model, job, nll = uniform_job(tok, 4)
    term = gradient.PDURetainTerm(lambda_r=1.0, eps=nll + 1.0, eta=0.25, warmup_epochs=0.0)
    term.setup(job, [], TrainConfig(batch_size=4, grad_accum=2))
    rb = collate_encoded(job.encode_items(RETAIN), [0, 1], tok.pad_token_id)
    term(model, rb, job)
    assert term.lambda_r == 1.0 and term.history == []  # mid-accumulation: no update
    term(model, rb, job)
    assert term.lambda_r == pytest.approx(1.0 - 0.25)  # mean NLL − ε = −1
    for _ in range(8):
        term(model, rb, job)
    assert term.lambda_r == 0.0  # max(0, ·)


# ----------------------------------------------------------------------------- UNDIAL, WHP


def test_undial_cached_reference_equals_reference_forward(tok):
    model = Bigram(len(tok), seed=6)
    job = make_job(model, tok)
    cached, live = gradient.UNDIALTerm(beta=3.0), gradient.UNDIALTerm(beta=3.0, cache_mb=0.0)
    cached.setup(job, job.encode_items(FORGET), CFG)
    live.setup(job, job.encode_items(FORGET), CFG)
    assert cached.cache is not None and live.cache is None and job._ref_model is not None
    with torch.no_grad():
        model.table.mul_(0.5)
    b = forget_batch(job, [2, 1, 0])
    assert float(cached(model, b, job)) == pytest.approx(float(live(model, b, job)), rel=1e-9)


def test_whp_generic_targets_by_hand(tok):
    model = Bigram(len(tok), seed=7, scale=0.3)
    job = make_job(model, tok)
    term = whp.WHPTerm(generic_alpha=2.0, reinforce_epochs=2, cache_mb=0.0)  # keep the models
    term.setup(job, job.encode_items(FORGET), TrainConfig(batch_size=2, lr=0.05, seed=0))
    base, reinf = model.table.tolist(), term.reinforced.table.tolist()
    assert base != reinf  # the reinforced copy was trained, the target was not touched
    assert torch.equal(job.reference_model().table, model.table)
    b = forget_batch(job, [1, 0])
    got = float(term(model, b, job))
    kls = []
    for t in range(b["input_ids"].shape[1] - 1):
        for r in range(2):
            if b["labels"][r, t + 1] == IGN:
                continue
            prev = int(b["input_ids"][r, t])
            gen = lsm_row([x - 2.0 * max(0.0, y - x) for x, y in zip(base[prev], reinf[prev])])
            student = lsm_row(base[prev])
            kls.append(sum(math.exp(g) * (g - q) for g, q in zip(gen, student)))
    assert got == pytest.approx(sum(kls) / len(kls), rel=1e-7)

    cached = whp.WHPTerm(generic_alpha=2.0, reinforce_epochs=2)
    cached.setup(job, job.encode_items(FORGET), TrainConfig(batch_size=2, lr=0.05, seed=0))
    assert cached.cache is not None and cached.reinforced is None
    assert float(cached(model, b, job)) == pytest.approx(got, rel=1e-7)


def test_whp_hard_labels_are_the_generic_argmax(tok):
    model = Bigram(len(tok), seed=8, scale=0.3)
    job = make_job(model, tok)
    term = whp.WHPTerm(generic_alpha=3.0, reinforce_epochs=2, labels="hard", cache_mb=0.0)
    term.setup(job, job.encode_items(FORGET), TrainConfig(batch_size=2, lr=0.05, seed=0))
    base, reinf = model.table.tolist(), term.reinforced.table.tolist()
    b = forget_batch(job, [0, 2])
    nlls = []
    for t in range(b["input_ids"].shape[1] - 1):
        for r in range(2):
            if b["labels"][r, t + 1] != IGN:
                prev = int(b["input_ids"][r, t])
                gen = [x - 3.0 * max(0.0, y - x) for x, y in zip(base[prev], reinf[prev])]
                nlls.append(-lsm(base[prev], max(range(len(gen)), key=gen.__getitem__)))
    assert float(term(model, b, job)) == pytest.approx(sum(nlls) / len(nlls), rel=1e-9)
    with pytest.raises(ValueError, match="labels"):
        whp.WHPTerm(labels="argmax")


# ----------------------------------------------------------------------------- RMU


def tiny_hf(kind: str):
    import transformers as tf

    torch.manual_seed(0)
    common = dict(vocab_size=50, num_hidden_layers=4, num_attention_heads=2)
    if kind == "llama":
        model = tf.LlamaForCausalLM(
            tf.LlamaConfig(hidden_size=16, intermediate_size=32, num_key_value_heads=2, **common)
        )
    elif kind == "gpt2":
        model = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=50, n_embd=16, n_layer=4, n_head=2))
    else:
        model = tf.GPTNeoXForCausalLM(
            tf.GPTNeoXConfig(hidden_size=16, intermediate_size=32, **common)
        )
    return model.eval()  # no dropout: two forward passes must agree


@pytest.mark.parametrize(
    "kind,mlp_out",
    [("llama", "mlp.down_proj"), ("gpt2", "mlp.c_proj"), ("neox", "mlp.dense_4h_to_h")],
)
def test_rmu_finds_layers_and_mlp_out_projection_in_any_architecture(kind, mlp_out):
    model = tiny_hf(kind)
    layers = representation.find_decoder_layers(model)
    assert len(layers) == 4
    names = {id(m): n for n, m in model.named_modules()}
    assert names[id(representation.mlp_out_module(layers[2]))].endswith(f"2.{mlp_out}")
    n = representation.select_mlp_out(model, [1, 3])
    on = [name for name, p in model.named_parameters() if p.requires_grad]
    assert sorted(on) == sorted(f"{names[id(layers[i])]}.{mlp_out}.weight" for i in (1, 3))
    assert n == sum(p.numel() for p in model.parameters() if p.requires_grad)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    h = representation.hidden_at(
        model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, 1
    )
    ref = model(input_ids=ids, output_hidden_states=True).hidden_states[2]  # output of block 1
    assert torch.allclose(h, ref)


def test_rmu_layer_defaults_and_errors():
    assert [representation.default_layer(n) for n in (1, 2, 4, 32, 28)] == [0, 0, 1, 7, 6]
    model = tiny_hf("llama")
    assert representation.resolve_layer(model, None) == 1
    assert representation.resolve_layer(model, -1) == 3
    with pytest.raises(ValueError, match="4 decoder layers"):
        representation.resolve_layer(model, 4)

    class Odd(torch.nn.Module):  # no known path: the largest ModuleList, MLP found by name
        def __init__(self):
            super().__init__()
            self.stack = torch.nn.ModuleList(
                torch.nn.ModuleDict(
                    {"ffn": torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 4))}
                )
                for _ in range(3)
            )
            self.heads = torch.nn.ModuleList([torch.nn.Linear(4, 4)])

    odd = Odd()
    blocks = representation.find_decoder_layers(odd)
    assert blocks is odd.stack
    assert representation.mlp_out_module(blocks[0]) is odd.stack[0]["ffn"][1]


def test_adaptive_rmu_coefficient_and_default_trainable_layers(tok):
    from obliviate.models.tiny import build_tiny_llama

    model = build_tiny_llama(tok, "s")  # 4 layers -> default layer round(7*4/32) = 1
    job = make_job(model, tok)
    term = representation.RMUForgetTerm(adaptive=True, scale=2.0)
    enc = job.encode_items(FORGET)
    term.setup(job, enc, CFG)
    assert term.layer == 1 and abs(float(term.control.norm()) - 1) < 1e-6
    means = []
    with torch.no_grad():
        for e in enc:
            hs = model(
                input_ids=torch.tensor([e.input_ids]), output_hidden_states=True
            ).hidden_states[2][0]
            rows = [hs[t].norm().item() for t in range(len(e.labels)) if e.labels[t] != IGN]
            means.append(sum(rows) / len(rows))
    assert term.coeff == pytest.approx(2.0 * sum(means) / len(means), rel=1e-5)

    method = representation.RMUMethod(TrainConfig(max_steps=1, batch_size=2), layer=3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    method.unlearn(job)
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved == {f"model.layers.{i}.mlp.down_proj.weight" for i in (1, 2, 3)}


# ----------------------------------------------------------------------------- AltPO


def test_altpo_rejects_copies_of_the_true_answer_and_falls_back_to_refusals(tok, monkeypatch):
    calls = []

    def fake_sample(model, tokenizer, prompts, template, n, temperature, max_new_tokens, bs, seed):
        calls.append(list(prompts))
        out = []
        for p in prompts:
            if p == FORGET[0].question:  # the true answer again, in other case and punctuation
                out.append(["mara lind  wrote it", "", "Mara Lind wrote it."])
            elif p == FORGET[1].question:
                out.append(["In Kell.", "In Varn", "In Presk."] if seed == 0 else ["In Olm."] * 3)
            else:
                out.append(["She studied law.", "She studied art.", "She studied maths."])
        return out

    monkeypatch.setattr(preference, "sample_answers", fake_sample)
    term = preference.AltPOTerm(n_winners=3, rounds=2)
    job = make_job(Bigram(len(tok)), tok)
    term.setup(job, job.encode_items(FORGET), CFG)
    assert calls[1] == [
        FORGET[0].question,
        FORGET[1].question,
    ]  # second round: incomplete items only
    assert term.winner_texts[1] == ["In Kell.", "In Presk.", "In Olm."]
    assert term.winner_texts[2] == ["She studied law.", "She studied art.", "She studied maths."]
    assert len(term.winner_texts[0]) == 1 and term.winner_texts[0][0] in preference.load_idk()


def test_altpo_paper_prompt_and_sampling_is_seeded_without_touching_global_rng(tok):
    from obliviate.models.tiny import build_tiny_llama

    term = preference.AltPOTerm(alt_prompt="paper")
    assert term._prompts([FORGET[0]])[0].startswith(
        "Question: Who wrote the Blue Door?\nAnswer: Mara"
    )
    model = build_tiny_llama(tok, "xs")
    state = torch.get_rng_state()
    kw = dict(template=PromptTemplate("qa"), n=2, max_new_tokens=5, seed=3)
    a = preference.sample_answers(model, tok, ["Who wrote it?", "Where?"], **kw)
    b = preference.sample_answers(model, tok, ["Who wrote it?", "Where?"], **kw)
    assert torch.equal(state, torch.get_rng_state())
    assert a == b and [len(x) for x in a] == [2, 2] and a != [["", ""], ["", ""]]
    with pytest.raises(ValueError, match="temperature"):
        preference.sample_answers(model, tok, ["x"], PromptTemplate("qa"), 1, temperature=0.0)


def test_pairwise_winner_choice_is_reproducible_and_varies_over_steps(tok):
    losses = []
    for _ in range(2):
        model = Bigram(len(tok), seed=10)
        job = make_job(model, tok)
        term = preference.IdkDPOTerm(n_winners=4)
        term.setup(job, job.encode_items(FORGET), CFG)
        with torch.no_grad():
            model.table.mul_(0.7)  # away from the reference, so the winner matters
        losses.append([float(term(model, forget_batch(job, [0, 1, 2]), job)) for _ in range(4)])
    assert losses[0] == losses[1]
    assert len(set(losses[0])) > 1  # a different refusal is drawn on each step
