"""Every command of README.md and docs/*.md runs as written.

Each ``bash`` block is split into commands as a user copies them (continuations joined,
comments dropped). Fast checks: every ``obliviate`` command parses with the real argument
parser, and every command is either run or skipped for a stated reason. The slow test runs
them all, in page order (README first: later pages use its run folders), with ``bash`` in one
scratch copy of the repository whose ``.venv`` is a link to the running virtual environment;
``scripts/setup.sh`` there only checks the installation (the real one would reinstall the
package from the scratch copy). Commands needing the Hugging Face hub are skipped offline.
The run is marked ``heavy`` (about an hour on 2 cores, outside CI).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from doc_blocks import ROOT, blocks, commands, pages  # tests/unit/doc_blocks.py

from obliviate.cli import build_parser

NETWORK = (
    "muse-bench/",
    "HuggingFaceH4/",
    "cais/wmdp",
    "CompVis/",
    "truthfulqa/truthful_qa",
    "azhx/counterfact",
    "PKU-Alignment/",
)
SELF = (".venv/bin/pytest",)  # this test suite itself


def documented() -> list[tuple[str, str]]:
    """``(page, command)`` for every command of every ``bash`` block, in run order."""
    return [
        (page.relative_to(ROOT).as_posix(), cmd)
        for page in pages()
        for block in blocks(page, "bash")
        for cmd in commands(block)
    ]


COMMANDS = documented()


SHARED = ROOT.parent / "shared"  # the team's data folder, next to the checkout


def skip_reason(command: str) -> str | None:
    if "../shared/" in command and not SHARED.is_dir():
        return f"needs {SHARED} (the shared TOFU data next to the checkout)"
    if any(s in command for s in SELF):
        return "runs this test suite itself"
    if any(s in command for s in NETWORK):
        return "needs the Hugging Face hub (network)"
    return None


def obliviate_argv(command: str) -> list[list[str]]:
    """The arguments of every ``obliviate`` call in a command line (``a && b`` chains,
    ``VAR=value`` prefixes and ``torchrun ... -m obliviate`` handled)."""
    calls = []
    for part in command.split("&&"):
        words = shlex.split(part)
        while words and "=" in words[0] and not words[0].startswith("-"):
            words.pop(0)
        if words and Path(words[0]).name == "obliviate":
            calls.append(words[1:])
        elif words and Path(words[0]).name == "torchrun" and "-m" in words:
            at = words.index("-m")  # torchrun ... -m obliviate ARGS
            if words[at + 1 : at + 2] == ["obliviate"]:
                calls.append(words[at + 2 :])
    return calls


def test_the_pages_have_commands_and_each_is_run_or_skipped_for_a_reason() -> None:
    assert len(COMMANDS) >= 20
    pages_with = {page for page, _ in COMMANDS}
    assert {"README.md", "docs/muse-wmdp.md", "docs/reports.md", "docs/audit.md"} <= pages_with
    for marker in (*NETWORK, *SELF):
        assert any(marker in c for _, c in COMMANDS), f"stale marker {marker!r}"
    assert sum(skip_reason(c) is None for _, c in COMMANDS) >= 15


def test_torchrun_commands_are_parsed_too() -> None:
    cmd = ".venv/bin/torchrun --nproc_per_node 2 -m obliviate eval --model m && obliviate ls"
    assert obliviate_argv(cmd) == [["eval", "--model", "m"], ["ls"]]
    assert obliviate_argv("torchrun --nproc_per_node 2 -m other.module x") == []
    assert any(obliviate_argv(c) and "torchrun" in c for _, c in COMMANDS)


@pytest.mark.parametrize("page, command", COMMANDS)
def test_every_documented_obliviate_command_parses(page: str, command: str) -> None:
    for argv in obliviate_argv(command):
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"{page}: `{command}` is not a valid command (exit {exc.code})")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch copy of the repository's documents, where the commands run."""
    root = tmp_path_factory.mktemp("docs_commands")
    repo = root / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "README.md", repo / "README.md")
    shutil.copytree(ROOT / "docs", repo / "docs")
    (repo / "scripts").mkdir()
    setup = (ROOT / "scripts" / "setup.sh").read_text().splitlines()
    check = [line for line in setup if "import torch, obliviate" in line]
    assert check, "scripts/setup.sh ends by checking the installation"
    (repo / "scripts" / "setup.sh").write_text(
        '#!/usr/bin/env bash\nset -euo pipefail\ncd "$(dirname "$0")/.."\n' + check[0] + "\n"
    )
    (repo / ".venv").symlink_to(Path(sys.prefix), True)  # the running virtual environment
    if SHARED.is_dir():
        (root / "shared").symlink_to(SHARED, True)
    return repo


def _env(repo: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{repo / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT / "src")  # this checkout, not the venv's installed copy
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def _cases() -> list:
    # the commands train and evaluate the documented models (the README's demo, target and
    # retain models, benchmarks, the diffusion model): about an hour on 2 cores, so the whole
    # run is `heavy` (outside CI: `.venv/bin/pytest -m heavy tests/unit/test_docs_commands.py`)
    marks = [pytest.mark.slow, pytest.mark.heavy]
    return [
        pytest.param(page, command, marks=marks, id=f"{i:02d}-{page}")
        for i, (page, command) in enumerate(COMMANDS)
    ]


@pytest.mark.parametrize("page, command", _cases())
def test_documented_command_runs(page: str, command: str, scratch: Path) -> None:
    reason = skip_reason(command)
    if reason:
        pytest.skip(reason)
    t0 = time.perf_counter()
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=scratch,
        env=_env(scratch),
        capture_output=True,
        text=True,
        timeout=5400,
    )
    took = time.perf_counter() - t0
    tail = (done.stdout + done.stderr)[-3000:]
    assert done.returncode == 0, f"{page}: `{command}` failed after {took:.0f} s:\n{tail}"
    assert "Traceback" not in done.stderr, tail
