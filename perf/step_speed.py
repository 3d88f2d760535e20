"""Speed of one unlearning optimiser step (NPO and GradDiff), new code path against the previous.

Each optimiser step is ``--batch`` forget samples plus as many retain samples, accumulated over
``--accum`` micro-batches (8 x 4 by default: 64 samples per step, as in the comparison with the
reference framework). The script builds the demo-size target (a tiny Llama of ``--size``, random
weights: the cost of a step does not depend on their values) on the built-in benchmark or a TOFU
folder (``--data``), or loads ``--model DIR``, then runs the real training loop of each method
for ``--warmup`` + ``--steps`` optimiser steps and takes the median time between steps.

Paths compared (alternating rounds A/B/A/B, so that a busy machine slows both alike):

- ``new``: the defaults, i.e. fused AdamW (``train.adamw=auto``), no host syncs per micro-step;
- ``baseline``: ``train.adamw=plain`` (the per-tensor AdamW loop of earlier versions);
- ``joint`` (``--paths new,joint``): the defaults plus ``train.one_forward=true`` (forget and
  retain batches in one forward pass);
- ``compile`` (with ``--compile``): the defaults plus ``train.compile=true``;
- ``bf16`` (``--paths new,bf16``): the defaults plus ``train.mixed_precision=bf16`` (bf16
  autocast: matmuls in bf16, weights, optimiser and losses in fp32), fast where the CPU has
  bf16 instructions (AVX512-BF16, AMX) or on a GPU;
- ``pack`` (``--paths new,pack``): the defaults plus ``train.pack=true`` (forget and retain
  sequences packed into shared rows without padding, the LM head only at answer positions:
  :mod:`obliviate.packing`); ``pack_bf16``: both.

It prints each step time, its ratio to the baseline, and its ratio to the compute floor: the
FLOPs of the step (6 x parameters x tokens for forward + backward, plus 2 x parameters x
tokens for a no-grad reference forward; the methods timed here have none, their reference
log-probabilities are cached) at the matmul speed this machine reaches on matrices of the
model's shapes (measured first). ``--profile`` prints the torch profiler's top operators of
one step of each path. With ``PYTHONPATH`` pointing at an older checkout (without these
settings) every path runs that checkout's code, which times it A/B against this one.

    .venv/bin/python perf/step_speed.py                       # demo size (s), built-in data
    .venv/bin/python perf/step_speed.py --size m --data ../shared/data/tofu --rounds 3
    .venv/bin/python perf/step_speed.py --model runs/demo/target/model --paths new
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

PATHS: dict[str, dict[str, Any]] = {
    "new": {},
    "baseline": {"adamw": "plain"},
    "joint": {"one_forward": True},
    "compile": {"compile": True},
    "bf16": {"mixed_precision": "bf16"},
    "pack": {"pack": True},
    "pack_bf16": {"pack": True, "mixed_precision": "bf16"},
}


def matmul_gflops(hidden: int, ffn: int, vocab: int, rows: int, repeat: int = 20) -> float:
    """GFLOP/s of ``torch.mm`` on the shapes of one forward of the model (``rows`` tokens)."""
    import torch

    shapes = [(rows, hidden, hidden)] * 4 + [(rows, hidden, ffn)] * 2
    shapes += [(rows, ffn, hidden), (rows, hidden, vocab)]
    mats = [(torch.randn(m, k), torch.randn(k, n)) for m, k, n in shapes]
    flops = sum(2 * m * k * n for m, k, n in shapes)
    for a, b in mats:  # warm-up
        torch.mm(a, b)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(repeat):
            for a, b in mats:
                torch.mm(a, b)
        best = min(best, (time.perf_counter() - t0) / repeat)
    return flops / best / 1e9


def supported_settings() -> set[str]:
    """The ``train.*`` settings this checkout knows (an older one lacks the new options)."""
    import dataclasses

    from obliviate.config import TrainConfig

    return {f.name for f in dataclasses.fields(TrainConfig)}


def time_steps(
    model: Any,
    tok: Any,
    request: Any,
    method: str,
    train: dict[str, Any],
    warmup: int,
    profile: bool = False,
) -> list[float]:
    """Run ``method`` for ``warmup + steps`` optimiser steps; the seconds of each timed step."""
    import obliviate.training as training
    from obliviate.methods.base import UnlearnJob, build_method

    stamps: list[float] = []

    class Stamp:
        def after_backward(self, model: Any) -> None:
            pass

        def after_step(self, model: Any) -> None:
            stamps.append(time.perf_counter())

    real: Callable[..., Any] = training.train_loop

    def timed_loop(*args: Any, **kwargs: Any) -> Any:
        kwargs["hooks"] = [*kwargs.get("hooks", ()), Stamp()]
        if not profile:
            return real(*args, **kwargs)
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            out = real(*args, **kwargs)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
        return out

    training.train_loop = timed_loop  # the method calls obliviate.training.train_loop
    try:
        job = UnlearnJob(copy.deepcopy(model), tok, request, progress=False)
        build_method(method, {"train": train}).unlearn(job)
    finally:
        training.train_loop = real
    return [b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1 :])]


def main() -> None:
    import torch

    from obliviate import api
    from obliviate.data.templates import PromptTemplate, encode
    from obliviate.data.training_data import corpus_text
    from obliviate.models.tiny import build_tiny_llama, train_tokenizer

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="a model folder (default: a random tiny Llama of --size)")
    ap.add_argument("--size", default="s", choices=["xs", "s", "m", "l"])
    ap.add_argument("--data", default="builtin", help="builtin (default) or a TOFU folder")
    ap.add_argument("--people", type=int, default=100, help="built-in people (default: 100)")
    ap.add_argument("--split", default="forget10")
    ap.add_argument("--methods", default="npo,graddiff")
    ap.add_argument("--paths", default="new,baseline,joint", help="of: " + ", ".join(PATHS))
    ap.add_argument("--compile", action="store_true", help="also time train.compile=true")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--accum", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps (default: 2)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per round (default: 5)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds (default: 2)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--profile", action="store_true", help="torch profiler table per path")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    paths = [p for p in args.paths.split(",") if p] + (["compile"] if args.compile else [])
    unknown = [p for p in paths if p not in PATHS]
    if unknown:
        raise SystemExit(f"unknown path(s) {unknown}; choose from {', '.join(PATHS)}")

    builtin = {"n_people": args.people} if args.data == "builtin" else None
    request = api.load_request(args.data, args.split, builtin=builtin)
    if args.model:
        from obliviate.models.loading import load_model, load_tokenizer

        tok, model = load_tokenizer(args.model), load_model(args.model)
    else:
        tok = train_tokenizer(corpus_text(args.data, builtin))
        model = build_tiny_llama(tok, size=args.size)
    cfg = model.config
    n_params = sum(p.numel() for p in model.parameters())
    template = PromptTemplate()

    def mean_len(items: list[Any]) -> float:
        return statistics.mean(
            len(encode(tok, it.question, it.answer, template).input_ids) for it in items
        )

    lf, lr = mean_len(request.forget), mean_len(request.retain)
    tokens = args.batch * args.accum * (lf + lr)  # forget + retain tokens of one step
    floor_flop = 6 * n_params * tokens
    gflops = matmul_gflops(
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.vocab_size,
        round(args.batch * (lf + lr) / 2),
    )
    floor_s = floor_flop / (gflops * 1e9)
    known = supported_settings()
    print(
        f"model: {n_params / 1e6:.2f}M parameters, forget {len(request.forget)} items of "
        f"{lf:.1f} tokens on average, retain {lr:.1f}; step = {args.batch} x {args.accum} "
        f"forget + as many retain samples = {tokens:.0f} tokens"
    )
    print(
        f"matmul speed on the model's shapes: {gflops:.0f} GFLOP/s; compute floor of a step "
        f"(6 x params x tokens = {floor_flop / 1e9:.2f} GFLOP): {floor_s:.3f} s"
    )
    if "one_forward" not in known:
        print("(this checkout has no step options: every path runs its one code path)")
    times: dict[tuple[str, str], list[float]] = {}
    for method in [m for m in args.methods.split(",") if m]:
        for r in range(args.rounds):
            for path in paths:
                train = {
                    "batch_size": args.batch,
                    "grad_accum": args.accum,
                    "max_steps": args.warmup + args.steps + 1,
                    "checkpoint": False,
                    "allow_collapse": True,
                    **{k: v for k, v in PATHS[path].items() if k in known},
                }
                if args.profile and r == 0:
                    print(f"--- {method} {path}: torch profiler, whole run")
                got = time_steps(
                    model, tok, request, method, train, args.warmup, args.profile and r == 0
                )
                times.setdefault((method, path), []).extend(got)
                print(
                    f"{method:9s} {path:9s} round {r + 1}: median "
                    f"{statistics.median(got):.3f} s/step"
                )
    print()
    print(f"{'method':9s} {'path':9s} {'s/step':>7s} {'vs baseline':>11s} {'vs floor':>9s}")
    for (method, path), got in times.items():
        med = statistics.median(got)
        base = times.get((method, "baseline"))
        ratio = f"{statistics.median(base) / med:.2f}x" if base else "-"
        print(f"{method:9s} {path:9s} {med:7.3f} {ratio:>11s} {med / floor_s:8.2f}x")


if __name__ == "__main__":
    main()
