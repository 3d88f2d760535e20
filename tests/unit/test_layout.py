"""Source layout rules: the package's module-level imports form no cycle, no file is long, and
every Markdown document that code, tests or docs cite is in this repository.

The import graph is built from the source with :mod:`ast` (nothing is imported): an edge
``a -> b`` for every module-level ``import b`` / ``from b import x`` in ``a``; ``from pkg import
sub`` where ``sub`` is a submodule is an edge to the submodule. Imports inside functions and
under ``if TYPE_CHECKING:`` are not edges (they run later, or never).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
MAX_LINES = 500
ROOT = SRC.parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If):
                if not _is_type_checking(node):
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                visit(node.orelse)
                visit(node.finalbody)
                for handler in node.handlers:
                    visit(handler.body)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                for alias in node.names:
                    if f"{module}.{alias.name}" in modules:
                        found.add(f"{module}.{alias.name}")
                    elif module in modules:
                        found.add(module)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None when it is acyclic."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = dfs(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = dfs(node)
            if cycle:
                return cycle
    return None


def test_find_cycle_reports_the_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_submodule_import_is_an_edge_to_the_submodule() -> None:
    graph = import_graph()
    assert "obliviate.registry" in graph["obliviate.inference.wrapper_file"]
    assert all(
        not m.startswith("obliviate.") or m in graph for deps in graph.values() for m in deps
    )


def test_module_level_imports_are_acyclic() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_source_file_is_over_500_lines() -> None:
    lengths = {
        path.relative_to(SRC).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in SRC.rglob("*.py")
    }
    too_long = {p: n for p, n in lengths.items() if n > MAX_LINES}
    assert not too_long, f"files over {MAX_LINES} lines (split them): {too_long}"


def test_every_cited_markdown_document_is_in_the_repository() -> None:
    """Code, tests and docs cite papers or this repository's documents (``docs/NAME.md``, or a
    Markdown link between docs), never a document that a fresh clone does not have."""
    import re

    texts = [*SRC.rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "docs").glob("*.md")]
    texts += [ROOT / "README.md", *(ROOT / "perf").glob("*.py"), *(ROOT / "scripts").glob("*")]
    outside = ("reference.md", "cpu-budget.md", "design.md", "style-anchors.md")
    missing = {}
    for path in texts:
        if not path.is_file() or path == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8")
        cited = [f"docs/{n}" for n in re.findall(r"docs/([A-Za-z0-9_-]+\.md)", text)]
        if path.suffix == ".md":
            base = path.parent.relative_to(ROOT)
            cited += [
                (base / n).as_posix() for n in re.findall(r"\]\(([A-Za-z0-9_./-]+\.md)", text)
            ]
        bad = [c for c in cited if not (ROOT / c).is_file()]
        bad += [n for n in outside if n in text]
        if bad:
            missing[path.relative_to(ROOT).as_posix()] = sorted(set(bad))
    assert not missing, f"documents cited but not in the repository: {missing}"
