"""Contract tests over every registered unlearning method (obliviate.registry.METHODS).

Each method, loss-based or builder-based, runs 2 optimiser steps (batch 8) on the tiny target
and must: report finite losses; change the model's outputs (for in-place gradient methods: move
some trainable parameter and no frozen one); leave the reference model (when built) and the
target's files untouched. A method registered later is picked up automatically; give it cheap
settings in EXTRA only when its defaults are too slow for a 2-step run.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import torch

from obliviate.registry import METHODS

STEPS = 2
BASE = {"train": {"max_steps": STEPS, "batch_size": 8}}
EXTRA = {  # cheaper settings of the same options (documented per method), for speed only
    "altpo": {"forget_params": {"n_winners": 2, "max_new_tokens": 24}},
    "demem": {"iterations": 1, "samples_per_prompt": 1, "max_new_tokens": 4},
    "whp": {"forget_params": {"reinforce_epochs": 1}},
}
NAMES = METHODS.names()


def checksum(model) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def files_checksum(folder: str) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def overrides(name: str) -> dict:
    out = {k: dict(v) for k, v in BASE.items()}
    for k, v in EXTRA.get(name, {}).items():
        out[k] = {**out.get(k, {}), **v} if isinstance(v, dict) else v  # a builder's option
    return out


@pytest.fixture(scope="module")
def target(tiny_models):
    from obliviate import api
    from obliviate.models.loading import load_model, load_tokenizer

    torch.set_num_threads(2)
    path = tiny_models["target"]
    tok = load_tokenizer(path)
    model = load_model(path)
    request = api.load_request("builtin", tiny_models["split"], builtin=tiny_models["builtin"])
    enc = [tok(f"Question: {it.question}\nAnswer:")["input_ids"] for it in request.forget[:4]]
    from obliviate.data.collate import pad_batch

    probe = pad_batch(enc, tok.pad_token_id)
    with torch.no_grad():
        logits = model(**probe).logits
    return {
        "path": path,
        "tok": tok,
        "request": request,
        "checksum": checksum(model),
        "files": files_checksum(path),
        "probe": probe,
        "logits": logits,
    }


@pytest.mark.parametrize("name", NAMES)
def test_registry_entry_documents_method_and_paper(name):
    entry = METHODS.entry(name)
    assert entry.description and "\n" not in entry.description
    assert entry.paper, f"{name}: give the paper (authors, year, arXiv id)"
    preset = entry.load()
    defaults = preset.defaults()
    assert defaults["method"] == name
    preset.build({k: v for k, v in defaults.items() if k != "method"})  # every default is accepted
    with pytest.raises(ValueError, match="unknown"):
        preset.build({"no_such_setting": 1})


@pytest.mark.parametrize("name", NAMES)
def test_method_runs_moves_the_model_and_keeps_the_reference(name, target, tmp_path):
    from obliviate.data.templates import PromptTemplate
    from obliviate.methods.base import ComposedMethod, UnlearnJob
    from obliviate.models.loading import load_model

    method = METHODS.get(name).build(overrides(name))
    net = load_model(target["path"])
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    job = UnlearnJob(
        net,
        target["tok"],
        target["request"],
        PromptTemplate("qa"),
        tmp_path,
        progress=False,
        model_path=target["path"],
    )
    out = method.unlearn(job)

    for row in out.train_log:
        for key, value in row.items():
            assert math.isfinite(value), f"{name}: {key} = {value} at step {row.get('step')}"
    if isinstance(method, ComposedMethod):
        assert len(out.train_log) == STEPS and out.trainable_params > 0

    out_model = out.model
    with torch.no_grad():
        logits = out_model(
            input_ids=target["probe"]["input_ids"], attention_mask=target["probe"]["attention_mask"]
        ).logits
    assert logits.shape == target["logits"].shape
    assert not torch.allclose(logits, target["logits"]), (
        f"{name}: the unlearned model's outputs did not change"
    )

    if getattr(out_model, "module", out_model) is net:  # trained in place: which weights moved?
        moved = {n for n, p in net.named_parameters() if not torch.equal(p.detach(), before[n])}
        assert moved, f"{name}: no parameter moved"
        frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
        assert not moved & frozen, f"{name}: frozen parameters moved: {sorted(moved & frozen)[:5]}"

    if job._ref_model is not None:
        assert checksum(job._ref_model) == target["checksum"], (
            f"{name}: the reference model changed"
        )
    assert files_checksum(target["path"]) == target["files"], f"{name}: the target's files changed"
