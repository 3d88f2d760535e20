"""The fenced code blocks of README.md and docs/*.md, for the tests that run them as written
(tests/unit/test_contributing.py: docs/contributing.md's plugin examples;
tests/unit/test_docs_commands.py: every ``bash`` block)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def pages() -> list[Path]:
    """README.md first (later pages use its outputs), then docs/*.md by name."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(page: Path, lang: str) -> list[str]:
    """The bodies of the page's ``lang`` blocks, in order."""
    return [body for kind, body in FENCE.findall(page.read_text()) if kind == lang]


def commands(block: str) -> list[str]:
    """The shell commands of a block as a user copies them: backslash continuations joined,
    comment lines and trailing ``# ...`` comments dropped."""
    out: list[str] = []
    pending = ""
    for raw in block.splitlines():
        line = raw.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        full = pending + line.strip()
        pending = ""
        out.append(re.sub(r"\s+#\s.*$", "", full).strip())
    return out
