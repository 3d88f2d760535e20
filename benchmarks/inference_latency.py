"""Added generation latency per token of each method in a benchmark folder, against its target.

Methods that change no weights (in-context unlearning, guardrails, logit offsets, ECO) pay at
generation time; edited and fine-tuned models should cost nothing extra. This script loads the
target and every method's saved model (or wrapper) from a benchmark folder written by
``obliviate benchmark`` / ``obliviate demo``, generates greedily for the same forget questions
the way evaluation does (batched, left padding, KV cache) and prints seconds per generated token,
the added milliseconds per token and the ratio against the target.

    .venv/bin/python benchmarks/inference_latency.py runs/bench            # every method there
    .venv/bin/python benchmarks/inference_latency.py runs/bench --methods icul,guardrail
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
    ap.add_argument("--questions", type=int, default=64, help="forget questions to generate for")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="best of this many timings")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    root = Path(args.folder)
    doc = json.loads((root / "comparison.json").read_text())
    methods = args.methods.split(",") if args.methods else [
        r["name"] for r in doc["rows"] if r["role"] == "unlearned"]
    builtin = yaml.safe_load((root / "target" / "config.yaml").read_text()).get("builtin")
    target_path = str(model_folder(root / "target"))
    request = api.load_request(doc["benchmark"], doc["split"], builtin=builtin)
    questions = [it.question for it in request.forget[: args.questions]]
    template = PromptTemplate("qa")

    def measure(path: str) -> dict[str, float]:
        model, tok = load_model(path), load_tokenizer(path)
        return generation_latency(model, tok, questions, template, args.max_new_tokens, repeats=args.repeats)

    base = measure(target_path)
    print(f"{len(questions)} forget questions of {doc['benchmark']}:{doc['split']}, "
          f"greedy, max {args.max_new_tokens} new tokens, best of {args.repeats}")
    print("| model | ms / token | added ms / token | ratio |")
    print("|---|---|---|---|")
    print(f"| target | {1e3 * base['s_per_token']:.3f} | 0 | 1.00 |")
    for name in methods:
        res = measure(str(model_folder(root / name)))
        added = 1e3 * (res["s_per_token"] - base["s_per_token"])
        print(f"| {name} | {1e3 * res['s_per_token']:.3f} | {added:+.3f} | "
              f"{res['s_per_token'] / base['s_per_token']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
