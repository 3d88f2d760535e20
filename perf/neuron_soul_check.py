"""Forget / retain answer probability after SOUL, DEPN and selective pruning on a tiny model.

Trains (or reuses, ``--cache``) the tiny target of the test suite (``xs`` Llama on the built-in
benchmark, 20 people x 10 QA), then unlearns ``forget10`` with each configuration and prints the
mean per-token answer probability (exp of the mean answer-token log-probability, averaged over
items) on the forget and the retain items, with the seconds each method took
(docs/methods.md, "Second-order unlearning (SOUL)" and "Neuron-level localisation").

    python perf/neuron_soul_check.py --cache runs/neuron-check
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

BUILTIN = {"n_people": 20, "qa_per_person": 10, "n_world_facts": 20}
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "npo adamw": ("npo", {"train": {"max_steps": 10, "batch_size": 8, "lr": 3e-4}}),
    "npo soul": (
        "npo",
        {"train": {"max_steps": 10, "batch_size": 8, "lr": 3e-4, "optimizer": "soul"}},
    ),
    "graddiff adamw": ("graddiff", {"train": {"max_steps": 10, "batch_size": 8, "lr": 3e-4}}),
    "graddiff soul": (
        "graddiff",
        {"train": {"max_steps": 10, "batch_size": 8, "lr": 3e-4, "optimizer": "soul"}},
    ),
    "depn": ("depn", {}),
    "depn z=100": ("depn", {"neurons": 100}),
    "selective_pruning": ("selective_pruning", {}),
    "selective_pruning 5%": ("selective_pruning", {"fraction": 0.05}),
}


def answer_prob(model: Any, tok: Any, items: list[Any]) -> float:
    from obliviate.data.collate import pad_batch
    from obliviate.data.templates import PromptTemplate, encode
    from obliviate.methods import functional as F

    enc = [encode(tok, it.question, it.answer, PromptTemplate("qa")) for it in items]
    batch = pad_batch([e.input_ids for e in enc], tok.pad_token_id, [e.labels for e in enc])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logp, mask = F.token_logprobs(logits, batch["labels"])
    per_item = F.sequence_logprob(logp, mask) / mask.sum(-1).clamp(min=1)
    return float(per_item.exp().mean())


def main() -> None:
    from obliviate import api
    from obliviate.data.templates import PromptTemplate
    from obliviate.methods.base import UnlearnJob, build_method
    from obliviate.models.loading import load_model, load_tokenizer

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", default="runs/neuron-check", help="folder of the tiny target")
    ap.add_argument("--only", default="", help="comma-separated configuration names")
    args = ap.parse_args()
    torch.set_num_threads(2)
    root = Path(args.cache)
    path = root / "target" / "model"
    if not (path / "config.json").is_file():
        train = {"epochs": 15, "lr": 3e-3, "batch_size": 32}
        api.finetune(
            data="builtin",
            split="full",
            out=root / "target",
            size="xs",
            train=train,
            builtin=BUILTIN,
            progress=False,
        )
    request = api.load_request("builtin", "forget10", builtin=BUILTIN)
    tok = load_tokenizer(str(path))
    target = load_model(str(path))
    print(f"{'configuration':24s} forget_p retain_p seconds")
    base = (answer_prob(target, tok, request.forget), answer_prob(target, tok, request.retain))
    print(f"{'target':24s} {base[0]:.4f}   {base[1]:.4f}")
    wanted = [c for c in args.only.split(",") if c] or list(CONFIGS)
    for name in wanted:
        method, over = CONFIGS[name]
        model = load_model(str(path))
        job = UnlearnJob(model, tok, request, PromptTemplate("qa"), None, progress=False)
        t0 = time.perf_counter()
        out = build_method(method, over).unlearn(job)
        took = time.perf_counter() - t0
        fp = answer_prob(out.model, tok, request.forget)
        rp = answer_prob(out.model, tok, request.retain)
        print(f"{name:24s} {fp:.4f}   {rp:.4f}   {took:.1f}", flush=True)


if __name__ == "__main__":
    main()
