"""Peak host memory per rank and step time of DDP, FSDP, FSDP + activation checkpointing, ZeRO-3.

Two processes (torchrun, gloo on CPU; ZeRO-3 under accelerate launch) train a randomly
initialised Llama of about 50 M parameters (hidden 512, 10 layers, 8 heads, FFN 2048, vocabulary
8000) with the real training loop (:func:`obliviate.training.train_loop`) on random token
sequences for ``--steps`` optimiser steps, once per mode, each mode in its own launch:

- ``ddp``: ``train.shard=none`` (one full replica per rank);
- ``fsdp``: ``train.shard=fsdp`` (parameters, gradients and AdamW state sharded);
- ``fsdp_ac``: ``train.shard=fsdp`` and ``train.activation_checkpointing=true``;
- ``zero3``: ``train.shard=zero3`` (DeepSpeed ZeRO-3, launched with
  ``examples/accelerate/zero3.yaml``; needs the ``deepspeed`` extra, not in the default modes).

Per rank it reports the resident set before training (model built, imports done), the peak
resident set from the start of training to the last optimiser step (sampled every 5 ms from
/proc/self/statm; FSDP's consolidation of the trained model afterwards is left out) and the
median time between optimiser steps after the first; then the ratios of each mode to DDP. The
model is built unsharded on every rank first, and memory the allocator freed may stay resident,
so on CPU the peak is an upper bound for FSDP. Host memory of a
CPU run includes the Python runtime and allocator caches, so the ratios understate what sharding
saves on an accelerator's memory; the model's own states are 16 bytes per parameter (800 MB).

    .venv/bin/python perf/scale_out_memory.py                     # all three modes
    .venv/bin/python perf/scale_out_memory.py --steps 6 --seq 256 --modes ddp,fsdp
    .venv/bin/python perf/scale_out_memory.py --modes ddp,fsdp,zero3   # with DeepSpeed installed
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

MODES = {
    "ddp": {"shard": "none"},
    "fsdp": {"shard": "fsdp"},
    "fsdp_ac": {"shard": "fsdp", "activation_checkpointing": True},
    "zero3": {"shard": "zero3"},
}
ZERO3_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "accelerate" / "zero3.yaml"
SHAPE = {"hidden": 512, "layers": 10, "heads": 8, "ffn": 2048, "vocab": 8000}


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakSampler:
    """The largest resident set seen while running, sampled on a thread."""

    def __init__(self, every_s: float = 0.005) -> None:
        self.peak, self.every, self._stop = 0.0, every_s, threading.Event()
        self.frozen = False  # stop updating (the window of interest is over)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.frozen:
                self.peak = max(self.peak, rss_mb())
            time.sleep(self.every)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def worker(mode: str, steps: int, batch: int, seq: int) -> None:
    """One rank of one mode (run under torchrun); rank 0 prints a JSON line per rank."""
    import torch
    import torch.distributed as dist
    from transformers import LlamaConfig, LlamaForCausalLM

    from obliviate.config import TrainConfig
    from obliviate.data.templates import Encoded
    from obliviate.methods import functional as F
    from obliviate.training import get_accelerator, train_loop

    torch.set_num_threads(1)
    acc = get_accelerator()
    config = LlamaConfig(  # type: ignore[call-arg]
        vocab_size=SHAPE["vocab"],
        hidden_size=SHAPE["hidden"],
        num_hidden_layers=SHAPE["layers"],
        num_attention_heads=SHAPE["heads"],
        num_key_value_heads=SHAPE["heads"],
        intermediate_size=SHAPE["ffn"],
        max_position_embeddings=seq,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    params = sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(1)
    n = batch * acc.num_processes * steps
    data = [
        Encoded(ids, ids, 0, False)
        for ids in torch.randint(1, SHAPE["vocab"], (n, seq), generator=gen).tolist()
    ]
    stamps: list[float] = []
    sampler = PeakSampler()

    class Clock:
        """Step times; the memory window closes after the last step (before the trained model
        is consolidated into a full copy on every rank, which is not training memory)."""

        def after_backward(self, model: Any) -> None:
            pass

        def after_step(self, model: Any) -> None:
            stamps.append(time.perf_counter())
            if len(stamps) == steps + 1:
                sampler.peak, sampler.frozen = max(sampler.peak, rss_mb()), True

    def loss_fn(m: Any, b: dict, _r: Any, _s: int) -> tuple[Any, dict]:
        logits = m(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        return F.nll_loss(logits, b["labels"]), {}

    cfg = TrainConfig(
        lr=1e-4,
        max_steps=steps,
        batch_size=batch,
        warmup_epochs=0,
        checkpoint=False,
        allow_collapse=True,
        **MODES[mode],  # type: ignore[arg-type]
    )
    before = rss_mb()
    stamps.append(time.perf_counter())
    with sampler:
        train_loop(model, loss_fn, data, cfg, 0, accelerator=acc, hooks=[Clock()], progress=False)
    gaps = [b - a for a, b in itertools.pairwise(stamps)][1:]  # after the first step
    row = {
        "mode": mode,
        "rank": acc.process_index,
        "params": params,
        "rss_before_mb": before,
        "peak_rss_mb": sampler.peak,
        "step_s": statistics.median(gaps),
    }
    rows: list[Any] = [None] * acc.num_processes
    dist.all_gather_object(rows, row)
    if acc.is_main_process:
        for r in rows:
            print("RESULT " + json.dumps(r), flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(mode: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    bin_dir = Path(sys.executable).parent
    if MODES[mode]["shard"] == "zero3":
        cmd = [str(bin_dir / "accelerate"), "launch", "--config_file", str(ZERO3_CONFIG)]
        cmd += ["--num_processes", "2", "--main_process_port", str(_free_port())]
    else:
        cmd = [str(bin_dir / "torchrun"), "--nproc_per_node", "2", "--master_addr", "127.0.0.1"]
        cmd += ["--master_port", str(_free_port())]
    cmd += [__file__, "--worker", mode]
    cmd += ["--steps", str(args.steps), "--batch", str(args.batch), "--seq", str(args.seq)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode:
        raise SystemExit(f"{mode}: the launch failed\n{proc.stderr[-3000:]}")
    return [json.loads(ln[7:]) for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", default="ddp,fsdp,fsdp_ac")
    p.add_argument("--steps", type=int, default=4, help="optimiser steps (the first is not timed)")
    p.add_argument("--batch", type=int, default=8, help="sequences per rank and step")
    p.add_argument("--seq", type=int, default=128, help="tokens per sequence")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.batch, args.seq)
        return
    modes = args.modes.split(",")
    results = {m: launch(m, args) for m in modes}
    params = results[modes[0]][0]["params"]
    print(f"{params / 1e6:.1f} M parameters, 2 processes (gloo), batch {args.batch} x {args.seq}")
    print("mode     rank  RSS before MB  peak RSS MB  training delta MB  step s")
    for m in modes:
        for r in results[m]:
            delta = r["peak_rss_mb"] - r["rss_before_mb"]
            print(
                f"{m:8s} {r['rank']:4d}  {r['rss_before_mb']:13.0f}  {r['peak_rss_mb']:11.0f}"
                f"  {delta:17.0f}  {r['step_s']:6.2f}"
            )
    if "ddp" in results:
        base = results["ddp"]
        print("ratios to ddp (mean over ranks): peak RSS, training delta, step time")
        for m in modes:
            rows = results[m]

            def mean(key: str, rs: list[dict[str, Any]]) -> float:
                return sum(r[key] for r in rs) / len(rs)

            def delta(rs: list[dict[str, Any]]) -> float:
                return sum(r["peak_rss_mb"] - r["rss_before_mb"] for r in rs) / len(rs)

            print(
                f"{m:8s} {mean('peak_rss_mb', rows) / mean('peak_rss_mb', base):.2f}"
                f"  {delta(rows) / delta(base):.2f}  {mean('step_s', rows) / mean('step_s', base):.2f}"
            )


if __name__ == "__main__":
    main()
