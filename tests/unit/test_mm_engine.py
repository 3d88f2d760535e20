"""The multimodal engine on a random micro LLaVA: image references resolve to the processor's
own inputs, teacher-forced scores equal a direct forward pass (padding, an empty answer,
text-only rows), batched generation equals per-sample ``generate``, and the model and processor
round-trip through safetensors folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mm_micro import micro_vlm  # tests/unit/mm_micro.py

from obliviate.data.templates import IGNORE, PromptTemplate
from obliviate.data.types import QAItem
from obliviate.multimodal.encoding import encode_item
from obliviate.multimodal.engine import generate_items, score_items
from obliviate.multimodal.loading import load_vision_lm, save_vision_lm

QA = PromptTemplate()


@pytest.fixture(scope="module")
def micro():
    return micro_vlm()


def _items(micro) -> list[QAItem]:
    people = micro["people"]
    p, q = people.people[0], people.people[1]
    img_p, img_q = people.portrait(p, 0), people.portrait(q, 4)
    return [
        QAItem("Who is this person?", p.name, meta={"image": img_p, "image_id": "p/0"}),
        QAItem("Where was this person born?", "", meta={"image": img_q, "image_id": "q/4"}),
        QAItem(f"What is the job of {q.name}?", q.job),
        QAItem(
            "Where was this person born?", p.birthplace, meta={"image": img_p, "image_id": "p/0"}
        ),
    ]


def _direct(micro, item: QAItem) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The processor's own input ids/pixels of prompt + answer + EOS, and the answer labels."""
    tok, proc = micro["tok"], micro["processor"]
    prompt = QA.prompt_text(("<image>\n" if item.meta.get("image") else "") + item.question)
    text = prompt + QA.answer_text(item.answer) + tok.eos_token
    if item.meta.get("image") is not None:
        out = proc(images=[item.meta["image"]], text=[text], return_tensors="pt")
        pixels = out["pixel_values"]
    else:
        out, pixels = tok([text], return_tensors="pt"), None
    n_prompt = (
        len(proc(images=[item.meta["image"]], text=[prompt])["input_ids"][0])
        if pixels is not None
        else len(tok(prompt)["input_ids"])
    )
    return out["input_ids"], pixels, list(range(n_prompt, out["input_ids"].shape[1]))


def test_encoding_matches_the_processor_and_scores_match_a_direct_forward(micro) -> None:
    model, tok = micro["model"], micro["tok"]
    items = _items(micro)
    for it in items:
        enc = encode_item(model.bank, tok, it, QA)
        ids, _, answer_pos = _direct(micro, it)
        resolved, _ = model.resolve(torch.tensor([enc.input_ids]))
        assert resolved[0].tolist() == ids[0].tolist()
        assert [i for i, t in enumerate(enc.labels) if t != IGNORE] == answer_pos
        n_refs = sum(t < 0 for t in enc.input_ids)
        assert n_refs == (16 if it.meta.get("image") else 0)
    scores = score_items(model, tok, items, QA, batch_size=4)  # one padded batch
    assert [s.n for s in scores][1] == 1  # the empty answer: EOS only
    for it, s in zip(items, scores):
        ids, pixels, answer_pos = _direct(micro, it)
        with torch.no_grad():
            kw = {"pixel_values": pixels} if pixels is not None else {}
            logits = model.vlm(input_ids=ids, **kw).logits[0].double()
        logp = torch.log_softmax(logits, -1)
        want = [float(logp[t - 1, ids[0, t]]) for t in answer_pos]
        assert s.n == len(answer_pos) and s.has_eos
        np.testing.assert_allclose(s.token_logprobs, want, atol=1e-5)
        argmax = [int(logp[t - 1].argmax()) == int(ids[0, t]) for t in answer_pos]
        assert s.correct.tolist() == argmax


def test_mismatched_image_references_are_refused(micro) -> None:
    model = micro["model"]
    enc = encode_item(model.bank, micro["tok"], _items(micro)[0], QA)
    bad = [t for t in enc.input_ids if t >= 0][:3] + [-1] * 5
    with pytest.raises(ValueError, match="consecutive image tokens"):
        model.resolve(torch.tensor([bad]))


def test_batched_generation_equals_per_sample_generate(micro) -> None:
    model, tok, proc = micro["model"], micro["tok"], micro["processor"]
    items = _items(micro)
    batched = generate_items(model, tok, items, QA, max_new_tokens=6, batch_size=4)
    for it, got in zip(items, batched):
        prompt = QA.prompt_text(("<image>\n" if it.meta.get("image") else "") + it.question)
        if it.meta.get("image") is not None:
            inputs = proc(images=[it.meta["image"]], text=[prompt], return_tensors="pt")
        else:
            inputs = tok([prompt], return_tensors="pt")
        with torch.no_grad():
            out = model.vlm.generate(**inputs, max_new_tokens=6, do_sample=False)
        new = out[0, inputs["input_ids"].shape[1] :].tolist()
        if tok.eos_token_id in new:
            new = new[: new.index(tok.eos_token_id)]
        assert got == tok.decode(new, skip_special_tokens=True).strip()


def test_save_and_load_round_trip_through_safetensors(micro, tmp_path) -> None:
    model, tok = micro["model"], micro["tok"]
    save_vision_lm(model, tmp_path / "vlm")
    files = {f.name for f in (tmp_path / "vlm").iterdir()}
    assert "model.safetensors" in files and "processor_config.json" in files
    assert not any(f.endswith((".bin", ".pt")) for f in files)
    loaded, tok2 = load_vision_lm(tmp_path / "vlm")
    items = _items(micro)
    a = score_items(model, tok, items, QA)
    b = score_items(loaded, tok2, items, QA)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.token_logprobs, y.token_logprobs, atol=1e-6)


def test_loading_a_missing_model_is_one_sentence(tmp_path) -> None:
    with pytest.raises(Exception, match="does not exist") as err:
        load_vision_lm(str(tmp_path / "nope"))
    assert "\n" not in str(err.value)
