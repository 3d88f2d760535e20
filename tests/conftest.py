"""Shared fixtures: a tiny built-in benchmark and tiny target/retain models, built once per
test session (xs model on 20 people x 10 QA, about 15 s for both on 2 CPU cores)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TOFU_DIR = Path(
    os.environ.get(
        "OBLIVIATE_TOFU_DIR",
        Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "tofu",
    )
)

# .ci/run sets this (seconds since the epoch): a slow test that would start after it is skipped,
# with the reason, so that CI ends within its time limit on a slower machine
SLOW_DEADLINE = os.environ.get("OBLIVIATE_SLOW_DEADLINE")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if SLOW_DEADLINE and item.get_closest_marker("slow") and time.time() > float(SLOW_DEADLINE):
        pytest.skip("CI time budget spent (OBLIVIATE_SLOW_DEADLINE); run `pytest -m slow` locally")


# the tiny benchmark every model-level test uses
TINY_BUILTIN = {"n_people": 20, "qa_per_person": 10, "n_world_facts": 20}
TINY_SPLIT = "forget10"  # 2 people = 20 QA


@pytest.fixture(scope="session")
def tiny_builtin() -> dict:
    return dict(TINY_BUILTIN)


@pytest.fixture(scope="session")
def tofu_dir() -> Path:
    if not (TOFU_DIR / "full.jsonl").exists():
        pytest.skip(f"real TOFU files not found at {TOFU_DIR}")
    return TOFU_DIR


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Tiny target (trained on full) and retain (on retain90) models sharing one tokenizer.

    Returns {"target": model dir, "retain": model dir, "root": folder, "builtin": kwargs,
    "split": "forget10"}.
    """
    import torch

    from obliviate import api

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("tiny_models")
    train = {"epochs": 15, "lr": 3e-3, "batch_size": 32}
    target = api.finetune(
        data="builtin",
        split="full",
        out=root / "target",
        size="xs",
        train=train,
        builtin=TINY_BUILTIN,
        progress=False,
    )
    retain = api.finetune(
        data="builtin",
        split="retain90",
        out=root / "retain",
        size="xs",
        tokenizer=str(target.path),
        train=train,
        builtin=TINY_BUILTIN,
        progress=False,
    )
    return {
        "target": str(target.path),
        "retain": str(retain.path),
        "root": root,
        "builtin": dict(TINY_BUILTIN),
        "split": TINY_SPLIT,
    }


@pytest.fixture(scope="session")
def diffusion_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache of trained built-in diffusion models (and judges) for the whole session, so that
    the quick model is trained once for every test that needs it; ``$OBLIVIATE_TEST_CACHE``
    keeps it across sessions. Models of different settings live in different folders in it."""
    cache = os.environ.get("OBLIVIATE_TEST_CACHE")
    return Path(cache) if cache else tmp_path_factory.mktemp("diffusion-cache")
