"""Fixtures of the reliability suite: files and a model folder that fail fast."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture
def fake_model(tmp_path: Path) -> Path:
    """A folder that passes the path checks (config.json and a safetensors file) but holds no
    loadable model: errors that must fire before any loading are checked with it."""
    folder = tmp_path / "runs" / "target" / "model"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "model.safetensors").write_bytes(b"not loaded before the error")
    return folder


@pytest.fixture
def qa_file(tmp_path: Path) -> Path:
    path = tmp_path / "forget.jsonl"
    path.write_text(
        '{"question": "Who is Ann?", "answer": "Ann is a sailor."}\n'
        '{"question": "Who is Bob?", "answer": "Bob is a baker."}\n'
    )
    return path


@pytest.fixture
def retain_file(tmp_path: Path) -> Path:
    path = tmp_path / "retain.jsonl"
    path.write_text('{"question": "Who is Cid?", "answer": "Cid is a potter."}\n')
    return path
