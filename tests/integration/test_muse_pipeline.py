"""MUSE / WMDP on real (tiny) models.

The fast tests train an xs model for a few steps on the smallest built-in corpus and check the
plumbing: evaluation, MCQ log-likelihoods against a direct forward pass, document windows in
unlearning. The slow test runs the whole six-way evaluation and checks that the numbers mean
what they should (the target memorised the forget set; the retrained model did not).
"""

from __future__ import annotations

import copy
import json
import math

import pytest

N_PEOPLE = 5  # 1 forget person, 3 retain2, 1 retain1, 1 holdout


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import torch

    from obliviate.data.builtin_muse import builtin_muse_corpus_text
    from obliviate.data.muse import load_muse
    from obliviate.models.loading import load_model
    from obliviate.models.tiny import train_tokenizer
    from obliviate.recipes.muse import train_on_documents

    torch.set_num_threads(2)
    data = load_muse("builtin", n_people=N_PEOPLE)
    tok = train_tokenizer(builtin_muse_corpus_text(N_PEOPLE), vocab_size=800)
    out = tmp_path_factory.mktemp("muse_tiny")
    path = train_on_documents(
        tok, data.forget + data.retain, out, "xs", {"max_steps": 3, "epochs": 1, "batch_size": 2}
    )
    return {"data": data, "tok": tok, "path": path, "model": load_model(str(path))}


def test_evaluate_muse_runs_on_a_model(tiny):
    from obliviate.benchmarks.muse import MuseSettings, add_privleak, evaluate_muse

    settings = MuseSettings(max_items=2, verbmem_max_new_tokens=4, knowmem_max_new_tokens=4)
    res = evaluate_muse(tiny["model"], tiny["tok"], tiny["data"], settings)
    v = res.values()
    assert set(v) == {"forget_verbmem", "forget_knowmem", "retain_knowmem", "mia_min_k_auc"}
    assert all(0.0 <= x <= 1.0 for x in v.values())
    # against a retrained model whose AUC is 0.5: (s - r) / r * 100 with s = 1 - AUC, r = 0.5
    ref = copy.deepcopy(res)
    ref.metrics["mia_min_k_auc"]["value"] = 0.5
    add_privleak(res, ref)
    auc = v["mia_min_k_auc"]
    assert res.metrics["privleak"]["value"] == pytest.approx(((1 - auc) - 0.5) / 0.5 * 100)
    holdout = [s for s in res.samples if s["split"] == "privleak_holdout"]
    assert holdout and all(s["n_tokens"] > 100 and math.isfinite(s["mia_min_k"]) for s in holdout)


def test_mcq_loglikelihoods_match_a_direct_forward_pass(tiny):
    import torch

    from obliviate.benchmarks.wmdp import choice_loglikelihoods, mcq_prompt
    from obliviate.data.wmdp import load_wmdp

    model, tok = tiny["model"], tiny["tok"]
    item = load_wmdp("builtin", ["forget"], n_people=N_PEOPLE)["forget"][0]
    got = choice_loglikelihoods(model, tok, [item], "letters")[0]
    prompt = tok(mcq_prompt(item.question, item.choices))["input_ids"]  # BOS + prompt
    expected = []
    with torch.no_grad():
        for letter in ("A", "B", "C", "D"):
            cont = tok(f" {letter}", add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prompt + cont])
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
            expected.append(sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(cont)))
    assert got == pytest.approx(expected, abs=1e-4)


def test_unlearning_uses_document_windows(tiny):
    import torch

    from obliviate.benchmarks.muse import document_job, unlearn_documents
    from obliviate.models.loading import load_model

    data, tok = tiny["data"], tiny["tok"]
    job = document_job(tiny["model"], tok, data.request())

    def n_windows(doc: str) -> int:
        return math.ceil(len(tok(doc, add_special_tokens=False)["input_ids"]) / 63)

    windows = job.encode_items(data.forget, max_length=64)
    assert n_windows(data.forget[0].answer) > 1  # the profile is longer than one window
    assert len(windows) == sum(n_windows(d.answer) for d in data.forget)  # cut, not truncated
    model = load_model(str(tiny["path"]))
    before = [p.detach().clone() for p in model.parameters()]
    out = unlearn_documents(
        model,
        tok,
        "npo",
        data.request(),
        {"train": {"max_steps": 1, "batch_size": 2, "max_length": 64}},
    )
    assert out.train_log and math.isfinite(out.train_log[0]["forget_loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, out.model.parameters()))


@pytest.mark.slow
def test_six_way_evaluation_end_to_end(tmp_path):
    """The whole pipeline on a small built-in corpus with one method (C1-C6: 7 unlearning runs,
    the first scal and sust folds being the C1-C4 run; about 5 minutes on 2 busy cores)."""
    import torch

    from obliviate.recipes.muse import run_muse

    torch.set_num_threads(2)  # as this module's other tests; an earlier test may have left one

    out = tmp_path / "muse"
    doc = run_muse(
        out,
        methods=("npo",),
        builtin={"n_people": 30},
        size="xs",
        settings={"max_items": 40},
        log=None,
    )
    rows = {r["name"]: r for r in doc["rows"]}
    target, retrain = rows["target"], rows["retrain"]
    assert retrain["privleak"] == pytest.approx(0.0)
    # the target memorised the forget documents; the retrained model never saw them
    assert target["forget_verbmem"] > retrain["forget_verbmem"] + 0.2
    assert target["forget_knowmem"] > retrain["forget_knowmem"] + 0.2
    assert target["privleak"] < -30
    assert rows["npo"]["forget_knowmem"] < target["forget_knowmem"]
    assert [f["fold"] for f in doc["scalability"]["npo"]] == [1, 2, 3, 4]
    # 3 people x (profile + 3 pages) per fold
    assert [f["n_docs"] for f in doc["sustainability"]["npo"]] == [12] * 4
    # fold 1 of both is the forget set: taken from the C1-C4 run, with its metrics
    for kind in ("scalability", "sustainability"):
        folds = doc[kind]["npo"]
        assert [f["same_as"] for f in folds] == ["npo", None, None, None]
        assert folds[0]["metrics"]["forget_knowmem"] == rows["npo"]["forget_knowmem"]
    assert (out / "scal" / "npo" / "forget_1" / "metrics.json").exists()
    assert (out / "npo" / "model" / "config.json").exists()
    assert (out / "sust" / "npo" / "forget_4" / "metrics.json").exists()
    saved = json.loads((out / "comparison.json").read_text())
    assert saved["runs"] == ["target", "retrain", "npo"]
    assert "C1 VerbMem" in (out / "comparison.md").read_text()
