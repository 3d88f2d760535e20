"""Evaluation generation gives the same token ids as before on the trained demo model.

The default path (obliviate's decode loop, finished rows dropped from the batch) against HF
``generate(do_sample=False)`` (the path before it), on the session's tiny trained target model: prompts of different lengths, rows that end early (EOS) next to rows that run to
``max_new_tokens``, batch sizes 1 and more. A vLLM check runs where CUDA and vLLM are present."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from obliviate.data.collate import pad_id_of
from obliviate.data.templates import PromptTemplate
from obliviate.generation import GenerationJob, generate_ids

MAX_NEW = 24


def _questions(tiny_models) -> list[str]:
    from obliviate import api

    request = api.load_request("builtin", tiny_models["split"], builtin=tiny_models["builtin"])
    qs = [it.question for it in request.eval["forget"]]
    qs += [it.question for it in request.eval.get("retain", [])][:10]
    return qs + ["Who?", "Tell me everything about the history of every author you know of."]


def _hf_generate_ids(model, prompts, job) -> list[list[int]]:
    """HF ``generate`` one prompt at a time: no padding, the plainest reference."""
    out = []
    for p in prompts:
        ids = torch.tensor([p])
        gen = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=job.max_new_tokens,
            do_sample=False, pad_token_id=job.pad_token_id, eos_token_id=job.eos_token_id,
        )[0, len(p) :].tolist()  # fmt: skip
        out.append(gen[: gen.index(job.eos_token_id)] if job.eos_token_id in gen else gen)
    return out


def test_the_default_generation_gives_the_token_ids_of_hf_generate(tiny_models) -> None:
    from obliviate.models.loading import load_model, load_tokenizer

    tok, model = load_tokenizer(tiny_models["target"]), load_model(tiny_models["target"])
    model.eval()
    prompts = [PromptTemplate().prompt_ids(tok, q) for q in _questions(tiny_models)]
    assert len({len(p) for p in prompts}) > 3  # prompts of different lengths
    want = _hf_generate_ids(model, prompts, GenerationJob(MAX_NEW, 1, pad_id_of(tok),
                                                          tok.eos_token_id))  # fmt: skip
    lengths = {len(w) for w in want}
    assert min(lengths) < MAX_NEW and len(lengths) > 2  # rows end early, at different steps
    for batch_size in (1, 8):
        job = GenerationJob(MAX_NEW, batch_size, pad_id_of(tok), tok.eos_token_id)
        assert generate_ids(model, prompts, job, "auto") == want
    assert generate_ids(model, prompts, job, "hf") == want  # the path before, batched


@pytest.mark.skipif(
    not torch.cuda.is_available() or importlib.util.find_spec("vllm") is None,
    reason="vLLM runs on a CUDA GPU: needs torch.cuda and the vllm package (obliviate[vllm])",
)
def test_vllm_gives_the_token_ids_of_the_loop_on_a_gpu(tiny_models) -> None:
    from obliviate.models.loading import load_model, load_tokenizer

    tok = load_tokenizer(tiny_models["target"])
    model = load_model(tiny_models["target"]).to("cuda").eval()
    prompts = [PromptTemplate().prompt_ids(tok, q) for q in _questions(tiny_models)]
    job = GenerationJob(MAX_NEW, 8, pad_id_of(tok), tok.eos_token_id, device="cuda")
    assert generate_ids(model, prompts, job, "vllm") == generate_ids(model, prompts, job, "loop")


def test_evaluation_generation_with_known_heads_and_a_wide_batch_is_unchanged(tiny_models):
    """The evaluation's shortcuts (greedy heads read off the scoring pass, one wide batch) give
    the texts of plain batched greedy decoding, on prompts whose answers the trained target
    reproduces whole, in part and not at all."""
    from obliviate import api
    from obliviate.evaluation import _pairs_for
    from obliviate.models.loading import load_model, load_tokenizer
    from obliviate.scoring import generate, greedy_prefixes, score_pairs

    tok, model = load_tokenizer(tiny_models["target"]), load_model(tiny_models["target"])
    model.eval()
    request = api.load_request("builtin", tiny_models["split"], builtin=tiny_models["builtin"])
    template = PromptTemplate()
    items = [*request.eval["forget"], *request.eval.get("retain", [])[:20]]
    items += request.eval.get("world_facts", [])[:10]
    pairs = [p for it in items for p in _pairs_for("x", [it])]
    scores = dict(zip(pairs, score_pairs(model, tok, pairs, template, progress=False)))
    known = greedy_prefixes(tok, template, scores, scores)
    qs = [it.question for it in items]
    heads = [known.get(q, []) for q in qs]
    assert sum(tok.eos_token_id in h for h in heads) >= 5  # answers known up to EOS: no decoding
    assert sum(len(h) > 0 and tok.eos_token_id not in h for h in heads) >= 3  # known in part
    plain = generate(model, tok, qs, template, MAX_NEW, batch_size=8, progress=False)
    fast = generate(model, tok, qs, template, MAX_NEW, batch_size=64, progress=False, known=known)
    assert fast == plain
