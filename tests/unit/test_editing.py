"""Model editing: the ROME/MEMIT updates on hand-computed values, tracing arithmetic, subject
detection, the module mapping of each supported architecture, and one edit of the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from obliviate.editing.rome import memit_update, rank_one_update
from obliviate.editing.stats import second_moment
from obliviate.editing.subjects import guess_subject
from obliviate.editing.trace import answer_probability, indirect_effects, window

# ----------------------------------------------------------------------------- pure maths


def test_rank_one_update_hand_computed():
    # C = diag(2, 1), k = (1, 1): C^-1 k = (0.5, 1), (C^-1 k)^T k = 1.5
    C = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    k = torch.tensor([1.0, 1.0], dtype=torch.float64)
    r = torch.tensor([3.0, -1.5], dtype=torch.float64)
    delta = rank_one_update(C, k, r, ridge=0.0)
    expected = torch.tensor([[1.0, 2.0], [-0.5, -1.0]], dtype=torch.float64)
    assert torch.allclose(delta, expected)
    assert torch.allclose(delta @ k, r)  # W'k* = W k* + (v* − W k*) = v*


def test_rank_one_update_leaves_c_orthogonal_keys_alone():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(6, 4, generator=g, dtype=torch.float64)
    C = A.T @ A / 6
    k = torch.randn(4, generator=g, dtype=torch.float64)
    r = torch.randn(3, generator=g, dtype=torch.float64)
    delta = rank_one_update(C, k, r, ridge=0.0)
    u = torch.linalg.solve(C, k)
    x = torch.randn(4, generator=g, dtype=torch.float64)
    x = x - (u @ x) / (u @ u) * u  # u^T x = 0
    assert torch.allclose(delta @ k, r)
    assert torch.allclose(delta @ x, torch.zeros(3, dtype=torch.float64), atol=1e-10)


def test_rank_one_update_rejects_zero_key_and_bad_shapes():
    with pytest.raises(ValueError, match="zero"):
        rank_one_update(torch.eye(2), torch.zeros(2), torch.ones(2), ridge=0.0)
    with pytest.raises(ValueError, match="C must be"):
        rank_one_update(torch.eye(3), torch.ones(2), torch.ones(2))


def test_memit_update_hand_computed():
    # one key k = (1, 0), C = I: (C + K^T K) = diag(2, 1); R^T K = [[2, 0]] -> Δ = [[1, 0]]
    K = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    R = torch.tensor([[2.0]], dtype=torch.float64)
    delta = memit_update(R, K, torch.eye(2, dtype=torch.float64))
    assert torch.allclose(delta, torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    # without the preservation term and with invertible K, the residuals are met exactly
    K2 = torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=torch.float64)
    R2 = torch.tensor([[1.0, -1.0, 0.5], [2.0, 0.0, 1.0]], dtype=torch.float64)
    d2 = memit_update(R2, K2, torch.zeros(2, 2, dtype=torch.float64))
    assert torch.allclose(d2 @ K2.T, R2.T)
    with pytest.raises(ValueError, match="shapes"):
        memit_update(R2, K2, torch.eye(3))


def test_second_moment_hand_computed():
    keys = torch.tensor([[1.0, 0.0], [1.0, 2.0]])
    assert torch.allclose(
        second_moment(keys), torch.tensor([[1.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    )
    with pytest.raises(ValueError):
        second_moment(torch.zeros(0, 2))


def test_indirect_effects_and_window():
    p_restored = np.array([[0.5, 0.7], [0.2, 0.2]])
    p_corrupt = np.array([0.1, 0.3])
    assert np.allclose(indirect_effects(p_restored, p_corrupt), [0.4, 0.0])
    assert window(0, 1, 4) == [0]
    assert window(2, 3, 4) == [1, 2, 3]
    assert window(3, 3, 4) == [2, 3]


def test_answer_probability_masks_prompt_and_padding():
    # vocab 2, uniform logits except the answer position predicting token 1 with p = 0.8
    logits = torch.zeros(1, 4, 2)
    logits[0, 1] = torch.tensor([0.0, float(np.log(4.0))])  # predicts position 2: p(1) = 0.8
    labels = torch.tensor([[-100, -100, 1, 0]])  # two answer tokens: p = 0.8 and 0.5
    expected = np.exp((np.log(0.8) + np.log(0.5)) / 2)
    assert float(answer_probability(logits, labels)[0]) == pytest.approx(expected, rel=1e-6)
    padded_logits = torch.cat([logits, torch.randn(1, 2, 2)], dim=1)
    padded_labels = torch.tensor([[-100, -100, 1, 0, -100, -100]])
    assert float(answer_probability(padded_logits, padded_labels)[0]) == pytest.approx(
        expected, rel=1e-6
    )


@pytest.mark.parametrize(
    "question, subject",
    [
        ("In which city was Geamfour Thoufo born?", "Geamfour Thoufo"),
        ("What is the capital of Kousgunora?", "Kousgunora"),
        ("Geamfour Thoufo was born where?", "Geamfour Thoufo"),
        ("Which of Jane Austen's novels came first?", "Jane Austen"),
        ("what is two plus two?", None),
        ("", None),
    ],
)
def test_guess_subject(question, subject):
    assert guess_subject(question) == subject


# ----------------------------------------------------------------------------- module mapping


def _tiny(arch: str):
    import transformers as tf

    common = dict(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    if arch == "llama":
        return tf.LlamaForCausalLM(tf.LlamaConfig(**common))
    if arch == "qwen2":
        return tf.Qwen2ForCausalLM(tf.Qwen2Config(**common, num_key_value_heads=2))
    if arch == "gpt2":
        return tf.GPT2LMHeadModel(
            tf.GPT2Config(vocab_size=64, n_embd=16, n_layer=2, n_head=2, n_inner=32, n_positions=64)
        )
    if arch == "gpt_neox":
        return tf.GPTNeoXForCausalLM(tf.GPTNeoXConfig(**common))
    raise AssertionError(arch)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2", "gpt_neox"])
def test_module_mapping_reads_keys_and_rank_one_edit_hits_the_value(arch):
    from obliviate.editing.arch import EditableModel, capture_io

    torch.manual_seed(0)
    model = _tiny(arch).eval()
    ed = EditableModel(model)
    assert ed.n_layers == 2 and ed.key_dim(0) == 32
    ids = torch.tensor([[1, 5, 7, 9, 11]])
    store: dict = {}
    with torch.no_grad(), capture_io(ed.down(0), [3], store):
        model(input_ids=ids, attention_mask=torch.ones_like(ids))
    k, v = store["key"][0], store["value"][0]
    assert k.shape == (32,) and v.shape == (16,)
    v_star = v + torch.linspace(-1, 1, 16)
    C = torch.eye(32)
    ed.add_to_weight(0, rank_one_update(C, k, v_star - v))
    with torch.no_grad():
        out = ed.down(0)(k[None])[0]
    assert torch.allclose(out, v_star, atol=1e-4)


def test_unsupported_architecture_is_a_clear_error():
    from obliviate.editing.arch import EditableModel

    class Fake(torch.nn.Module):
        class config:
            model_type = "t5"

    with pytest.raises(ValueError, match=r"no module mapping for architecture 't5'.*gpt2"):
        EditableModel(Fake())


# ----------------------------------------------------------------------------- the tiny model


@pytest.fixture(scope="module")
def tiny(tiny_models):
    from obliviate import api
    from obliviate.models.loading import load_model, load_tokenizer

    torch.set_num_threads(2)
    tok = load_tokenizer(tiny_models["target"])
    request = api.load_request("builtin", tiny_models["split"], builtin=tiny_models["builtin"])
    return {
        "path": tiny_models["target"],
        "tok": tok,
        "request": request,
        "load": lambda: load_model(tiny_models["target"]),
    }


def test_subject_span_decodes_to_the_subject(tiny):
    from obliviate.data.templates import PromptTemplate
    from obliviate.editing.subjects import subject_span

    tok = tiny["tok"]
    for it in tiny["request"].forget[:5]:
        ids = PromptTemplate("qa").prompt_ids(tok, it.question)
        subj = guess_subject(it.question)
        span = subject_span(tok, ids, subj)
        assert span.found
        assert tok.decode(ids[span.first : span.last + 1]).strip() == subj
    fallback = subject_span(tok, [1, 2, 3], None)
    assert (fallback.first, fallback.last, fallback.found) == (2, 2, False)


def _edit(tiny, algorithm: str, forget, **opts):
    from dataclasses import replace

    from obliviate.data.templates import PromptTemplate
    from obliviate.methods.base import UnlearnJob
    from obliviate.registry import METHODS

    model = tiny["load"]()
    req = replace(tiny["request"], forget=forget)
    method = METHODS.get(algorithm).build(opts)
    job = UnlearnJob(model, tiny["tok"], req, PromptTemplate("qa"), None, progress=False)
    return method.unlearn(job)


@pytest.mark.parametrize("algorithm, clamp", [("rome", 6.0), ("memit", 4.0)])
def test_edit_changes_the_targeted_answers_and_keeps_unrelated_generations(tiny, algorithm, clamp):
    """One person's ten questions are edited; other people's generations must stay.

    Locality is measured on retain people (facts the model knows, as the editing literature's
    neighbourhood prompts). Holdout people were never trained on: their generations are
    confabulated names with near-tied logits, so only a looser bound holds for them. The
    clamp (x the unedited value's norm, preset 4) is set per algorithm from measurements on
    this 2-layer fixture: ROME changes 50 % of the answers at 3-4, 60 % at 5, and meets every
    bound at 6; MEMIT changes 50 % at 3, meets every bound at 4-5 and keeps only 87.5 % of the retain
    generations at 6."""
    from obliviate.data.templates import PromptTemplate
    from obliviate.editing.subjects import guess_subject
    from obliviate.scoring import generate

    req = tiny["request"]
    person = guess_subject(req.forget[0].question)
    forget = [it for it in req.forget if guess_subject(it.question) == person]
    assert len(forget) == 10
    retain = [it.question for it in req.retain[:40]]
    holdout = [it.question for it in req.holdout[:20]]
    targeted = [it.question for it in forget]
    tmpl = PromptTemplate("qa")
    base = tiny["load"]()
    prompts = targeted + retain + holdout
    before = generate(base, tiny["tok"], prompts, tmpl, max_new_tokens=32, progress=False)
    out = _edit(tiny, algorithm, forget, clamp_norm_factor=clamp)
    after = generate(out.model, tiny["tok"], prompts, tmpl, max_new_tokens=32, progress=False)
    n, r = len(targeted), len(retain)
    changed = np.mean([a != b for a, b in zip(before[:n], after[:n])])
    kept_retain = np.mean([a == b for a, b in zip(before[n : n + r], after[n : n + r])])
    kept_holdout = np.mean([a == b for a, b in zip(before[n + r :], after[n + r :])])
    assert out.info["layers"] == [0]  # 2-layer model: only layer 0 reaches the answer tokens
    assert changed >= 0.7, (algorithm, changed, after[:3])
    assert kept_retain >= 0.9, (algorithm, kept_retain)
    assert kept_holdout >= 0.6, (algorithm, kept_holdout)
    # the original answer text is no longer generated for the edited questions
    assert sum(b == a for a, b in zip([it.answer for it in forget], after[:n])) <= 2
