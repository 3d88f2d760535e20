"""Two gloo processes on CPU (torchrun): parameters stay in sync, ranks draw different retain
samples (docs/metrics.md), the world size is recorded, only rank 0 writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("ddp_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def random_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    from obliviate import api
    from obliviate.models.tiny import build_tiny_llama, train_tokenizer

    folder = tmp_path_factory.mktemp("ddp_model")
    builtin = {"n_people": 10, "qa_per_person": 4, "n_world_facts": 4}
    tok = train_tokenizer(api.corpus_text("builtin", builtin), vocab_size=800)
    model = build_tiny_llama(tok, "xs")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def test_two_process_unlearning(random_tiny_model: str, tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun),
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(WORKER),
        random_tiny_model,
        str(tmp_path),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    # every rank's own error lines first (the launcher's summary hides the crashing rank's traceback)
    rank_lines = "\n".join(ln for ln in proc.stderr.splitlines() if ln.startswith("[rank"))
    assert proc.returncode == 0, rank_lines[-6000:] + "\n...\n" + proc.stderr[-2000:]
    ranks = json.loads((tmp_path / "ranks.json").read_text())
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world"] == 2 and r["config_world_size"] == 2 for r in ranks)
    # DDP keeps replicas identical after every step
    assert ranks[0]["checksum"] == pytest.approx(ranks[1]["checksum"], rel=0, abs=1e-6)
    assert ranks[0]["steps"] == ranks[1]["steps"] == 3
    # each rank draws its own retain samples
    assert ranks[0]["retain_indices"] != ranks[1]["retain_indices"]
    # rank 0 alone wrote the run folder, once
    run = tmp_path / "run"
    assert (run / "model" / "model.safetensors").exists()
    assert (run / "config.yaml").exists()
    assert not list(run.rglob("*.tmp"))
