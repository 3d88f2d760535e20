"""SIGKILL a training run at chosen points (between steps and in the middle of a checkpoint
save), rerun it, and require the final weights to be bit-identical to an uninterrupted run:
the trainer (tiny Llama with attention dropout, full and LoRA), ``unlearn``, ``finetune``,
SISA and a diffusion eraser. Runs go through ``worker.py`` in subprocesses and the test hook
``OBLIVIATE_KILL_AT`` of :mod:`obliviate.checkpoints`. A damaged checkpoint falls back to the
previous good one with a message (docs/run-format.md, "Checkpoints and resuming")."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("worker.py")
SRC = Path(__file__).resolve().parents[2] / "src"


def work(job: str, roots: list[Path], settings: dict) -> subprocess.CompletedProcess:
    """One worker process running ``job`` under each of ``roots`` in turn."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    env.pop("OBLIVIATE_KILL_AT", None)
    return subprocess.run(
        [sys.executable, str(WORKER), job, json.dumps(settings), *map(str, roots)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of every safetensors file under ``folder`` (checkpoints left out)."""
    out = {}
    for f in sorted(folder.rglob("*.safetensors")):
        rel = f.relative_to(folder)
        if "checkpoint" in rel.parts or "ckpt" in rel.parts:
            continue
        for k, v in load_file(str(f)).items():
            out[f"{rel}:{k}"] = v
    assert out, f"no weights under {folder}"
    return out


def identical(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def kill(job: str, root: Path, settings: dict, point: str) -> None:
    """Run with the kill point (and the uninterrupted reference first): it must die by SIGKILL."""
    first = work(job, [root], {**settings, "reference": True, "kill": point})
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]


def resume(job: str, roots: list[Path], settings: dict) -> str:
    """Rerun the killed runs under ``roots`` (one process, one after another); its stderr."""
    second = work(job, roots, settings)
    assert second.returncode == 0, second.stderr[-2000:]
    return second.stderr


def kill_then_resume(job: str, root: Path, settings: dict, point: str) -> str:
    """Run with the kill point, rerun in a new process; return the rerun's stderr."""
    kill(job, root, settings, point)
    return resume(job, [root], settings)


def test_trainer_with_dropout_resumes_bit_exactly_after_a_kill_during_a_save(tmp_path) -> None:
    err = kill_then_resume("loop", tmp_path, {"dropout": 0.1}, "save:4")
    assert "skipping checkpoint" not in err  # the half-written one is a .tmp folder: ignored
    assert "resuming training from step 3" in err
    assert identical(tmp_path / "reference", tmp_path / "final")
    assert not (tmp_path / "final" / "ckpt").exists()  # removed once finished


@pytest.mark.slow
def test_lora_with_dropout_and_accumulation_resumes_bit_exactly(tmp_path) -> None:
    settings = {"dropout": 0.1, "lora": True, "grad_accum": 2}
    err = kill_then_resume("loop", tmp_path, settings, "step:3")
    assert "resuming training from step 2" in err  # killed before step 3 was saved
    assert identical(tmp_path / "reference", tmp_path / "final")


@pytest.mark.slow
def test_unlearn_run_resumes_bit_exactly_and_says_so(tmp_path, tiny_models) -> None:
    s = {"target": tiny_models["target"], "builtin": tiny_models["builtin"]}
    s["train"] = {"max_steps": 4, "batch_size": 8}
    err = kill_then_resume("unlearn", tmp_path, s, "save:2")
    assert "resuming unlearning from step 1" in err
    assert identical(tmp_path / "reference" / "model", tmp_path / "final" / "model")
    assert not (tmp_path / "final" / "checkpoint").exists()


@pytest.mark.slow
def test_diffusion_eraser_resumes_bit_exactly(tmp_path) -> None:
    from obliviate.diffusion.testing import FAST

    s = {"overrides": {**{k: FAST[k] for k in ("batch_size", "pool_size", "sample_steps")}}}
    s["overrides"]["iterations"] = 4
    err = kill_then_resume("erase", tmp_path, s, "save:3")
    assert "resuming erasing from step 2" in err
    assert identical(tmp_path / "reference", tmp_path / "final")


@pytest.mark.parametrize("damage", ["truncate", "mix", "no-manifest"])
def test_a_damaged_checkpoint_falls_back_to_the_previous_good_one(tmp_path, damage, capsys) -> None:
    from worker import loop

    from obliviate.checkpoints import step_dirs

    torch.set_num_threads(1)
    loop(tmp_path / "reference", {}, None)
    ckpt = tmp_path / "final" / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        loop(tmp_path / "final", {"stop_at": 5}, ckpt)
    newest, older = step_dirs(ckpt)[:2]
    assert newest.name == "step-00000005"
    if damage == "truncate":
        f = newest / "model.safetensors"
        f.write_bytes(f.read_bytes()[:100])
        why = "model.safetensors has 100 bytes"
    elif damage == "mix":  # a file from another step: same size, other content
        (newest / "optim.pt").write_bytes((older / "optim.pt").read_bytes())
        why = "optim.pt does not match its sha256"
    else:
        (newest / "manifest.json").unlink()
        why = "it has no manifest"
    (ckpt / ".tmp-step-00000009").mkdir()  # a partial save
    capsys.readouterr()
    loop(tmp_path / "final", {}, ckpt)
    err = capsys.readouterr().err
    assert f"skipping checkpoint {newest}: {why}" in err
    assert f"resuming training from step 4 (checkpoint {older})" in err
    assert identical(tmp_path / "reference", tmp_path / "final")
    assert not ckpt.exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "job", ["loop", "loop-lora", "unlearn", "unlearn-lora", "finetune", "sisa", "erase"]
)
def test_sweep_of_kill_points(tmp_path, request, job) -> None:
    """Kill points drawn with a fixed seed (steps and saves), each resumed to the end."""
    s: dict = {"dropout": 0.1}
    if job.startswith("unlearn") or job == "sisa":
        tiny_models = request.getfixturevalue("tiny_models")
    name, total = job, 9
    if job == "loop-lora":
        name, s = "loop", {"dropout": 0.1, "lora": True}
    elif job.startswith("unlearn") or job == "sisa":
        name = "unlearn" if job != "sisa" else "sisa"
        s = {"target": tiny_models["target"], "builtin": tiny_models["builtin"]}
        s["train"], total = {"max_steps": 5, "batch_size": 8}, 5
        if job == "unlearn-lora":
            s["overrides"] = {"peft": {"r": 4, "lora_dropout": 0.1}}
        if job == "sisa":
            s["method"] = "sisa"
            s["overrides"] = {"shards": 2, "slices": 2}
            s["train"], total = {"epochs": 1, "batch_size": 16}, 4
    elif job == "finetune":
        builtin = {"n_people": 20, "qa_per_person": 10, "n_world_facts": 20}
        s = {"builtin": builtin, "train": {"epochs": 1, "batch_size": 8}}
        total = 3
    elif job == "erase":
        s = {"overrides": {"iterations": 6, "batch_size": 2, "pool_size": 2, "sample_steps": 3}}
        total = 6
    rng = random.Random(1234)
    points = sorted({f"step:{rng.randint(1, total - 1)}" for _ in range(2)})
    points += [f"save:{rng.randint(1, total - 1)}"]
    ref = tmp_path / "k0" / "reference"
    roots = [tmp_path / f"k{i}" for i in range(len(points))]
    for i, (root, point) in enumerate(zip(roots, points)):
        if i:
            root.mkdir()
            (root / "reference").symlink_to(ref)
        kill(name, root, s, point)
    resume(name, roots, s)  # one process resumes all in turn: nothing may carry over
    same = 0
    for root in roots:
        a, b = ref, root / "final"
        if name not in ("loop", "erase"):
            a, b = ref / "model", b / "model"
        same += identical(a, b)
    print(f"kill/resume {job}: {len(roots)} kill points, {same} bit-identical resumes")
    assert same == len(roots)
