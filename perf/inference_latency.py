"""Added generation latency per token of each method in a benchmark folder, against its target.

Methods that change no weights (in-context unlearning, guardrails, logit offsets, ECO) pay at
generation time; edited and fine-tuned models should cost nothing extra. This script loads the
target and every method's saved model (or wrapper) from a benchmark folder written by
``obliviate benchmark`` / ``obliviate demo``, generates greedily the way evaluation does
(batched, left padding, KV cache) for the same retain questions (ordinary traffic, which a
guardrail passes to the model) and forget questions (which it may refuse without decoding), and
prints milliseconds per generated token (one decoding step of one row,
:func:`obliviate.inference.latency.generation_latency`), the added milliseconds against the
target and the ratio.

    .venv/bin/python perf/inference_latency.py runs/bench            # every method there
    .venv/bin/python perf/inference_latency.py runs/bench --methods icul,guardrail
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def model_folder(run: Path) -> Path:
    """A run folder's saved model: ``model/`` (weights, adapter or wrapper)."""
    folder = run / "model"
    if not folder.is_dir():
        raise FileNotFoundError(f"{run}: no model/ folder (was the run saved?)")
    return folder


def main() -> None:
    import torch
    import yaml

    from obliviate import api
    from obliviate.data.templates import PromptTemplate
    from obliviate.inference.latency import generation_latency
    from obliviate.models.loading import load_model, load_tokenizer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", help="benchmark folder (target/, retain/, one folder per method)")
    ap.add_argument("--methods", help="comma-separated; default: every unlearned run in the folder")
    ap.add_argument(
        "--questions",
        type=int,
        default=64,
        help="retain and forget questions to generate for (each)",
    )
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="best of this many timings")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    root = Path(args.folder)
    if not (root / "comparison.json").is_file():
        raise SystemExit(
            f"{root}: no comparison.json; give a folder written by `obliviate benchmark` "
            "or `obliviate demo`"
        )
    doc = json.loads((root / "comparison.json").read_text())
    methods = (
        args.methods.split(",")
        if args.methods
        else [r["name"] for r in doc["rows"] if r["role"] == "unlearned"]
    )
    # the target's evaluation records its model folder; a method run's config its data settings
    target_path = json.loads((root / "target" / "metrics.json").read_text())["model"]["path"]
    builtin = yaml.safe_load((root / methods[0] / "config.yaml").read_text()).get("builtin")
    request = api.load_request(doc["benchmark"], doc["split"], builtin=builtin)
    questions = {
        "retain": [it.question for it in request.retain[: args.questions]],
        "forget": [it.question for it in request.forget[: args.questions]],
    }
    template = PromptTemplate("qa")

    def measure(path: str) -> dict[str, float]:
        model, tok = load_model(path), load_tokenizer(path)
        return {
            side: generation_latency(
                model, tok, qs, template, args.max_new_tokens, repeats=args.repeats
            )["s_per_token"]
            * 1e3
            for side, qs in questions.items()
        }

    base = measure(target_path)
    print(
        f"{args.questions} retain and forget questions of {doc['benchmark']}:{doc['split']}, greedy, "
        f"max {args.max_new_tokens} new tokens, best of {args.repeats}, {args.threads} threads"
    )
    print("| model | ms/token retain | added | ratio | ms/token forget | added | ratio |")
    print("|---|---|---|---|---|---|---|")

    def row(name: str, ms: dict[str, float]) -> str:
        cells = [
            f"{ms[s]:.3f} | {ms[s] - base[s]:+.3f} | {ms[s] / base[s]:.2f}"
            for s in ("retain", "forget")
        ]
        return f"| {name} | " + " | ".join(cells) + " |"

    print(row("target", base))
    for name in methods:
        print(row(name, measure(str(model_folder(root / name)))), flush=True)
    # the same target again: its difference from the first row is the measurement noise
    print(row("target (again)", measure(target_path)))


if __name__ == "__main__":
    main()
