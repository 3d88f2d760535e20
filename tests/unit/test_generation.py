"""Generation backends (obliviate.generation): obliviate's decode loop gives the token ids of HF
``generate(do_sample=False)`` on a tiny random Llama, finished rows leave the batch and the KV
cache, the backend is chosen by name with one-sentence errors, and the vLLM backend calls vLLM's
offline API as documented (a stand-in ``vllm`` module) and decodes like the HF path."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
import torch
from micro_models import noisy_tiny_llama, qa_tokenizer  # tests/unit/micro_models.py

from obliviate.data.templates import PromptTemplate
from obliviate.decoding import greedy_generate, hf_select, hf_step
from obliviate.generation import (
    GENERATION_BACKENDS,
    GenerationJob,
    cut_at_eos,
    generate_ids,
    resolve_backend,
)
from obliviate.models.tiny import build_tiny_llama
from obliviate.scoring import generate

QUESTIONS = ["Where was Ann Berro born?", "What does Olli write?", "Q?", "Who is Olli Berro?"]


@pytest.fixture(scope="module")
def tok():
    return qa_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return noisy_tiny_llama(tok)  # varied tokens, not one token repeated


def _batch(tok, questions):
    from obliviate.data.collate import pad_batch, pad_id_of

    prompts = [PromptTemplate().prompt_ids(tok, q) for q in questions]
    return pad_batch(prompts, pad_id_of(tok), side="left")


def _eos_that_ends_rows_early(model, batch, n: int) -> list[int]:
    """EOS ids the model emits at step 2 of the first row and step 5 of the last: the rows of
    one batch then end at different steps (and the middle ones run to ``n``)."""
    free = model.generate(**batch, max_new_tokens=n, do_sample=False, eos_token_id=None)
    new = free[:, batch["input_ids"].shape[1] :]
    return [int(new[0, 2]), int(new[-1, 5])]


@pytest.mark.parametrize("rows", [1, 4])
def test_the_loop_gives_the_ids_of_hf_generate(tok, model, rows) -> None:
    batch = _batch(tok, QUESTIONS[:rows])
    n = 12
    eos = _eos_that_ends_rows_early(model, batch, n)
    want = model.generate(
        **batch, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=eos
    )
    for select in (None, hf_select):
        got = greedy_generate(
            hf_step(model), batch["input_ids"], batch["attention_mask"], n, tok.pad_token_id, eos,
            select=select,
        )  # fmt: skip
        assert torch.equal(got, want)


def test_finished_rows_leave_the_batch_and_the_cache(tok, model) -> None:
    batch = _batch(tok, QUESTIONS)
    n = 12
    eos = _eos_that_ends_rows_early(model, batch, n)
    inner = hf_step(model)
    seen: list[tuple[int, int | None]] = []

    def step(ids, mask, pos, past):
        cached = None if past is None else int(past.layers[0].keys.shape[0])
        seen.append((ids.shape[0], cached))
        assert mask.shape[0] == ids.shape[0] == pos.shape[0]
        return inner(ids, mask, pos, past)

    got = greedy_generate(
        step, batch["input_ids"], batch["attention_mask"], n, tok.pad_token_id, eos,
        select=hf_select,
    )  # fmt: skip
    new = got[:, batch["input_ids"].shape[1] :]
    ended = [torch.isin(row, torch.tensor(eos)).nonzero()[:1].flatten().tolist() for row in new]
    live = [sum(1 for e in ended if not e or e[0] >= t) for t in range(new.shape[1])]
    assert len(set(live)) > 1, "the chosen EOS must end rows at different steps"
    assert [rows for rows, _ in seen] == [len(QUESTIONS), *live[1:]]
    assert all(cached == rows for rows, cached in seen[1:])  # the cache holds the live rows only
    for row, e in zip(new, ended):  # after EOS only padding
        if e:
            assert set(row[e[0] + 1 :].tolist()) <= {tok.pad_token_id}


def test_auto_runs_the_loop_on_plain_models_and_generate_elsewhere(tok, model) -> None:
    assert resolve_backend("auto", model) == "loop"
    wrapper = types.SimpleNamespace(generate=model.generate)
    assert resolve_backend("auto", wrapper) == "hf"
    with pytest.raises(ValueError, match=r"^generation_backend=loop runs plain Hugging Face"):
        resolve_backend("loop", wrapper)
    with pytest.raises(ValueError, match=r"^unknown generation_backend 'fast'; choose one of auto"):
        resolve_backend("fast", model)
    assert {"loop", "hf", "vllm"} <= set(GENERATION_BACKENDS)


def test_auto_leaves_a_model_whose_generation_config_changes_greedy_to_generate(
    tok, model, monkeypatch
) -> None:
    monkeypatch.setattr(model.generation_config, "repetition_penalty", 1.3)
    assert resolve_backend("auto", model) == "hf"
    texts = [
        generate(
            model, tok, QUESTIONS, PromptTemplate(), max_new_tokens=10, progress=False, backend=b
        )
        for b in ("auto", "hf")
    ]
    assert texts[0] == texts[1]


def test_all_backends_give_the_same_texts(tok, model) -> None:
    qs = [*QUESTIONS, QUESTIONS[0]]  # a duplicate is generated once
    texts = {
        b: generate(
            model,
            tok,
            qs,
            PromptTemplate(),
            max_new_tokens=10,
            batch_size=b_s,
            progress=False,
            backend=b,
        )
        for b, b_s in (("hf", 3), ("loop", 3), ("auto", 1))
    }
    assert texts["hf"] == texts["loop"] == texts["auto"] and texts["hf"][0] == texts["hf"][-1]


def test_evaluation_settings_name_a_known_backend_and_the_default_is_not_keyed() -> None:
    from obliviate.data.types import QAItem, UnlearningRequest
    from obliviate.evaluation import EvalSettings, eval_key

    with pytest.raises(ValueError, match=r"^evaluation setting generation_backend='gpu'"):
        EvalSettings(generation_backend="gpu")
    item = QAItem("q", "a")
    request = UnlearningRequest(forget=[item], retain=[], eval={"forget": [item]})
    auto = eval_key(request, PromptTemplate(), EvalSettings(), "m")
    vllm = eval_key(request, PromptTemplate(), EvalSettings(generation_backend="vllm"), "m")
    assert "generation_backend" not in auto["settings"]
    assert vllm["settings"]["generation_backend"] == "vllm"


class FakeVLLM(types.ModuleType):
    """A stand-in for the vllm package: records the calls, answers with given token ids."""

    def __init__(self, answers: dict[tuple[int, ...], list[int]]) -> None:
        super().__init__("vllm")
        self.calls: dict[str, Any] = {}
        fake = self

        class SamplingParams:
            def __init__(self, **kw: Any) -> None:
                fake.calls["params"] = kw

        class LLM:
            def __init__(self, **kw: Any) -> None:
                fake.calls.setdefault("engines", []).append(kw)

            def generate(self, requests: list, params: Any, use_tqdm: bool = True) -> list:
                fake.calls["requests"] = requests
                outs = []
                for r in requests:
                    ids = answers[tuple(r["prompt_token_ids"])]
                    outs.append(
                        types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=ids)])
                    )
                return outs

        self.LLM, self.SamplingParams = LLM, SamplingParams


def test_vllm_backend_calls_the_offline_api_and_decodes_like_hf(tok, model, tmp_path, monkeypatch):
    from obliviate import generation_vllm

    folder = tmp_path / "model"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    monkeypatch.setattr(model, "name_or_path", str(folder))
    n = 10
    prompts = [PromptTemplate().prompt_ids(tok, q) for q in QUESTIONS]
    job = GenerationJob(max_new_tokens=n, batch_size=4, pad_token_id=tok.pad_token_id,
                        eos_token_id=tok.eos_token_id)  # fmt: skip
    loop = generate_ids(model, prompts, job, "loop")
    # vLLM returns the stop token (EOS) at the end of a finished sequence
    answers = {tuple(p): [*ids, tok.eos_token_id] for p, ids in zip(prompts, loop)}
    fake = FakeVLLM(answers)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setattr(generation_vllm, "_ENGINES", {})
    got = generate(model, tok, [*QUESTIONS, QUESTIONS[1]], PromptTemplate(), max_new_tokens=n,
                   progress=False, backend="vllm")  # fmt: skip
    want = generate(model, tok, [*QUESTIONS, QUESTIONS[1]], PromptTemplate(), max_new_tokens=n,
                    progress=False, backend="loop")  # fmt: skip
    assert got == want
    assert fake.calls["requests"] == [{"prompt_token_ids": p} for p in prompts]  # deduped ids
    assert fake.calls["params"] == {
        "temperature": 0.0, "max_tokens": n, "stop_token_ids": [tok.eos_token_id],
        "detokenize": False,
    }  # fmt: skip
    (engine,) = fake.calls["engines"]
    assert engine["model"] == str(folder) and engine["dtype"] == "float32"
    generate(model, tok, QUESTIONS, PromptTemplate(), max_new_tokens=n, progress=False,
             backend="vllm")  # fmt: skip
    assert len(fake.calls["engines"]) == 1  # one engine per model folder


def test_vllm_backend_errors_are_one_sentence(tok, model, monkeypatch) -> None:
    from obliviate import generation_vllm

    monkeypatch.setattr(generation_vllm, "_ENGINES", {})
    monkeypatch.setitem(sys.modules, "vllm", None)  # not installed
    job = GenerationJob(max_new_tokens=2, batch_size=1, pad_token_id=0, eos_token_id=1)
    with pytest.raises(ValueError, match=r"^generation_backend=vllm needs vLLM, which is not"):
        generate_ids(model, [[1, 2]], job, "vllm")
    monkeypatch.setitem(sys.modules, "vllm", FakeVLLM({}))
    fresh = build_tiny_llama(tok, "xs")  # built in memory: no folder to load from
    with pytest.raises(ValueError, match=r"^generation_backend=vllm loads the model from its"):
        generate_ids(fresh, [[1, 2]], job, "vllm")


def test_cut_at_eos() -> None:
    assert cut_at_eos([4, 5, 2, 6, 2], 2) == [4, 5] and cut_at_eos([4, 5], None) == [4, 5]
    assert cut_at_eos([4, 3, 5], [5, 3]) == [4]
