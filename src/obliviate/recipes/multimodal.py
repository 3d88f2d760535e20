"""The multimodal recipe (``obliviate demo --multimodal``, docs/multimodal.md): on the built-in
people, train tiny LLaVA-style target and retain models, unlearn the forget people with each
method, and compare every model on the four MLLMU-Bench sets (forget, test, retain, real) in
both modes (image+text, text-only) with the three tasks (multiple choice, generation ROUGE-L,
cloze).

Writes ``out/target``, ``out/retain`` and ``out/<method>`` (safetensors ``save_pretrained``
folders with the processor), ``comparison.json``, ``comparison.md`` and ``samples.html``
(sample portraits with each model's answers, :mod:`obliviate.multimodal.samples`). A finished target and
retain model with the same settings are reused (``out/models.json``).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

BENCHMARK = "builtin-mllmu"
SETS = ("forget", "test", "retain", "real")
SHORT = {"mcq_acc": "MCQ", "rouge_l": "ROUGE", "cloze_acc": "cloze"}
MODES = {"image": "img", "text": "txt"}
# unlearning defaults on the demo's target (sizing: docs/multimodal.md): the language model is
# updated (the vision tower and projector stay as trained), with a retain weight of 8 for the
# methods that have a retain term (a text preset's own weight is tuned on the built-in text
# benchmark, docs/sweep.md). Updating both parts, or a weight of 1, cost one retain person's
# portrait questions on some machines' float rounding of the same training (docs/multimodal.md).
DEMO_UNLEARN = {"train": {"lr": 5e-4, "epochs": 5, "batch_size": 16}}
DEMO_PART = "language"
DEMO_ALPHA = {"graddiff": 8.0, "npo": 8.0}


def comparison_markdown(doc: Mapping[str, Any]) -> str:
    """One row per model, one column per set x task x mode (``img``: image+text, ``txt``:
    text-only)."""
    cols = [(s, m, mode) for s in SETS for m in SHORT for mode in MODES]
    head = ["model", *[f"{s} {SHORT[m]} {MODES[mode]}" for s, m, mode in cols]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, rows in doc["models"].items():
        cells = []
        for s, m, mode in cols:
            v = rows.get(f"{s}/{mode}", {}).get(m, math.nan)
            cells.append("-" if v is None or math.isnan(v) else f"{v:.2f}")
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


def run_demo(
    out: str | Path,
    methods: tuple[str, ...] = ("graddiff", "npo"),
    n_people: int = 8,
    n_real: int = 2,
    size: str = "xs",
    epochs: float | None = None,
    unlearn: Mapping[str, Any] | None = None,
    progress: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Run the demo into ``out``; returns the ``comparison.json`` document."""
    from obliviate.data.templates import PromptTemplate
    from obliviate.io import atomic_write_text, read_json, write_json
    from obliviate.multimodal.evaluate import answer_generations, evaluate_sets
    from obliviate.multimodal.lm import ImageBank, VisionLM
    from obliviate.multimodal.loading import load_vlm, save_vision_lm
    from obliviate.multimodal.methods import unlearn_vlm
    from obliviate.multimodal.people import generate_people, unlearning_request
    from obliviate.multimodal.samples import sample_items, sample_page
    from obliviate.multimodal.train import train_builtin_models
    from obliviate.recipes.resume import claim_comparison

    say = log or (lambda m: None)
    out = Path(out)
    claim_comparison(out, BENCHMARK, overwrite)
    t0 = time.perf_counter()
    people = generate_people(n_people, n_real)
    request = unlearning_request(people)
    train = {"epochs": epochs} if epochs is not None else {}
    settings = {"n_people": n_people, "n_real": n_real, "size": size, "train": train}
    record = out / "models.json"
    if record.is_file() and read_json(record) == settings:
        say(f"reusing the target and retain models in {out}")
        loaded = [load_vlm(str(out / name)) for name in ("target", "retain")]
        bank = ImageBank(loaded[0][1])
        target, retain = (VisionLM(m, bank) for m, _ in loaded)
        tok = loaded[0][1].tokenizer
    else:
        say(f"training target and retain tiny LLaVA models ({size}, {n_people} + {n_real} people)")
        built = train_builtin_models(people, size, train, out, progress=progress)
        target, retain, tok = built.target, built.retain, built.tokenizer
        write_json(record, settings)
    timings = {"models_s": time.perf_counter() - t0}
    rows: dict[str, Any] = {}
    samples = sample_items(request.eval)
    answers: dict[str, list[str]] = {}
    for name, model in (("target", target), ("retain", retain)):
        say(f"evaluating {name}")
        rows[name] = evaluate_sets(model, tok, request.eval)
        answers[name] = answer_generations(model, tok, samples, PromptTemplate())
    for method in methods:
        say(f"unlearning with {method}")
        t1 = time.perf_counter()
        model = copy.deepcopy(target)
        settings = dict(unlearn or DEMO_UNLEARN)
        if not unlearn and method in DEMO_ALPHA:
            settings["alpha"] = DEMO_ALPHA[method]
        part = str(settings.pop("part", DEMO_PART))
        result = unlearn_vlm(model, tok, request, method, part, settings)
        timings[f"{method}_s"] = time.perf_counter() - t1
        save_vision_lm(result.model, out / method)
        rows[method] = evaluate_sets(result.model, tok, request.eval)
        answers[method] = answer_generations(result.model, tok, samples, PromptTemplate())
    timings["wall_s"] = time.perf_counter() - t0
    doc = {"benchmark": BENCHMARK, "split": request.split, "models": rows, "timings": timings}
    write_json(out / "comparison.json", doc)
    atomic_write_text(out / "comparison.md", comparison_markdown(doc) + "\n")
    atomic_write_text(out / "samples.html", sample_page(samples, answers))
    return doc
