"""Launch a test worker in 2 processes (gloo, CPU) under ``torchrun`` or ``accelerate launch`` for
the multi-process tests (test_sharded_training.py, test_dp_eval.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env() -> dict[str, str]:
    """This environment with one thread per rank, offline, and no process-group variables."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def launch(
    worker: Path, args: list[str], timeout: float, tries: int = 2, accelerate: str = ""
) -> None:
    """Run ``worker`` with ``args`` in 2 processes on a free port: with ``torchrun``, or with
    ``accelerate launch --config_file ACCELERATE`` when a config file is given. A launch that
    dies at start-up with SIGABRT before any rank ran (seen about once in six launches on these
    machines) is retried once and reported as a launcher failure, not as a test result."""
    bin_dir = Path(sys.executable).parent
    for attempt in range(tries):
        if accelerate:
            cmd = [str(bin_dir / "accelerate"), "launch", "--config_file", accelerate]
            cmd += ["--num_processes", "2", "--main_process_ip", "127.0.0.1"]
            cmd += ["--main_process_port", str(free_port()), str(worker), *args]
        else:
            cmd = [str(bin_dir / "torchrun"), "--nproc_per_node", "2", "--master_addr"]
            cmd += ["127.0.0.1", "--master_port", str(free_port()), str(worker), *args]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, env=worker_env()
            )
        except subprocess.TimeoutExpired as err:
            pytest.fail(f"torchrun launcher timed out after {err.timeout} s (a rank waiting?)")
        if proc.returncode == 0:  # every rank exited with status 0
            return
        rank_lines = "\n".join(ln for ln in proc.stderr.splitlines() if ln.startswith("[rank"))
        aborted = "SIGABRT" in proc.stderr or "Signal 6" in proc.stderr
        if aborted and "Traceback" not in rank_lines and attempt + 1 < tries:
            continue
        what = "launcher failure (SIGABRT at start-up)" if aborted else "worker failed"
        pytest.fail(f"torchrun {what}:\n{rank_lines[-6000:]}\n...\n{proc.stderr[-2000:]}")
