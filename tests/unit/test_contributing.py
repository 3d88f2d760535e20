"""docs/contributing.md cannot rot: its python blocks are the plugin modules it says they are.

Each ``python`` block (first line ``# file: NAME.py``) is written to a temporary folder on the
path and loaded the documented way (``OBLIVIATE_PLUGINS``); every ``$ obliviate ...`` line of
the ``console`` block that follows it is run through :func:`obliviate.cli.main` from that folder
(``target``: the session's tiny target model; ``forget.jsonl`` / ``retain.jsonl``: a few of its
QA pairs) and must print the lines the page shows. Then the toy method passes the checks of
tests/contract/test_methods.py, the toy metric resolves in the catalogue and records the right
dict, and the toy benchmark evaluates a model. Every registry is restored afterwards.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import sys
from pathlib import Path

import pytest
from doc_blocks import FENCE, ROOT  # tests/unit/doc_blocks.py

from obliviate import registry
from obliviate.cli import main

DOC = ROOT / "docs" / "contributing.md"
REGISTRIES = (
    registry.METHODS,
    registry.FORGET_TERMS,
    registry.RETAIN_TERMS,
    registry.WRAPPERS,
    registry.METRICS,
    registry.BENCHMARKS,
    registry.ERASERS,
)


def _load_contract():
    """tests/contract/test_methods.py as a module (its helpers and its ``target`` fixture)."""
    path = ROOT / "tests" / "contract" / "test_methods.py"
    spec = importlib.util.spec_from_file_location("contract_test_methods", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


contract = _load_contract()
target = contract.target  # the contract tests' fixture: tiny target, its request and a probe


def doc_sections() -> dict[str, dict]:
    """``{module name: {"code": python source, "commands": [(command, expected lines)]}}`` for
    every python block of the page, with the console block(s) up to the next python block."""
    sections: dict[str, dict] = {}
    current: dict | None = None
    for lang, body in FENCE.findall(DOC.read_text()):
        if lang == "python":
            first = body.splitlines()[0]
            m = re.fullmatch(r"# file: (\w+)\.py", first)
            assert m, f"a python block must start with '# file: NAME.py', not {first!r}"
            current = sections[m.group(1)] = {"code": body, "commands": []}
        elif lang == "console":
            assert current is not None, "a console block before any python block"
            for line in body.splitlines():
                if line.startswith("$ "):
                    current["commands"].append((line[2:], []))
                else:
                    current["commands"][-1][1].append(line)
    return sections


SECTIONS = doc_sections()


def _norm(line: str) -> str:
    return " ".join(line.split())


def assert_shows(output: str, expected: list[str], command: str) -> None:
    """The output contains the expected lines in order; ``...`` stands for any lines (gaps are
    allowed only there) and a line ending in `` ...`` is a prefix."""
    got = [_norm(x) for x in output.splitlines() if x.strip()]
    i, gap = 0, False
    for want in expected:
        if want.strip() == "...":
            gap = True
            continue
        w = _norm(want)
        match = (
            (lambda g, w=w: g.startswith(w[:-4])) if w.endswith(" ...") else (lambda g, w=w: g == w)
        )
        j = i
        while j < len(got) and not match(got[j]) and gap:
            j += 1
        assert j < len(got) and match(got[j]), (
            f"`{command}` does not print {want!r} where docs/contributing.md shows it:\n{output}"
        )
        i, gap = j + 1, False
    assert gap or i == len(got), f"`{command}` prints more than the page shows:\n{output}"


def run_command(command: str, monkeypatch, capsys) -> str:
    """Run one documented ``[VAR=value ...] obliviate ARGS`` line in-process; its stdout."""
    words = shlex.split(command)
    while "=" in words[0]:
        var, _, value = words.pop(0).partition("=")
        if var == "PYTHONPATH":
            assert value == ".", "the examples run from the folder holding the plugin module"
        else:
            monkeypatch.setenv(var, value)
    assert words[0] == "obliviate", command
    capsys.readouterr()
    assert main(words[1:]) == 0, command
    return capsys.readouterr().out


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A folder holding the page's plugin modules, on sys.path and the current directory; the
    registries and sys.modules are restored afterwards."""
    before = [set(r.names()) for r in REGISTRIES]
    for name, section in SECTIONS.items():
        (tmp_path / f"{name}.py").write_text(section["code"])
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(registry.PLUGINS_ENV, raising=False)
    yield tmp_path
    monkeypatch.delenv(registry.PLUGINS_ENV, raising=False)
    for reg, names in zip(REGISTRIES, before):
        for name in set(reg.names()) - names:
            reg.unregister(name)
    for name in SECTIONS:
        sys.modules.pop(name, None)


@pytest.fixture
def qa_files(workdir, tiny_models):
    """``target`` (the tiny target model) and forget/retain JSONL files of its own QA pairs."""
    from obliviate import api

    request = api.load_request("builtin", tiny_models["split"], builtin=tiny_models["builtin"])
    for name, items in (("forget", request.forget[:4]), ("retain", request.retain[:4])):
        rows = [json.dumps({"question": it.question, "answer": it.answer}) for it in items]
        (workdir / f"{name}.jsonl").write_text("\n".join(rows) + "\n")
    (workdir / "target").symlink_to(tiny_models["target"], target_is_directory=True)
    return workdir


def run_section(name: str, monkeypatch, capsys) -> list[str]:
    """Run the section's commands, checking what each prints; their outputs."""
    outputs = []
    for command, expected in SECTIONS[name]["commands"]:
        out = run_command(command, monkeypatch, capsys)
        assert_shows(out, expected, command)
        outputs.append(out)
    return outputs


def test_the_page_has_one_plugin_module_per_kind_and_commands_that_load_it():
    assert list(SECTIONS) == ["scaled_ga", "answer_words", "qa_memorisation"]
    for name, section in SECTIONS.items():
        assert section["commands"], f"{name}: the page shows no command using it"
        for command, _ in section["commands"]:
            assert f"{registry.PLUGINS_ENV}={name} obliviate" in command, command


def test_the_output_check_fails_on_a_line_the_command_does_not_print():
    assert_shows("a\nb  c\nd\n", ["a", "...", "d"], "x")
    assert_shows("a\nb  c\nd\n", ["a", "b c", "d"], "x")
    assert_shows("a 1\nb\n", ["a ...", "..."], "x")
    for expected in (["a", "d"], ["a", "b c"], ["...", "e"], ["b c", "..."]):
        with pytest.raises(AssertionError):
            assert_shows("a\nb  c\nd\n", expected, "x")


def test_plugin_names_must_be_importable(workdir, monkeypatch):
    monkeypatch.setenv(registry.PLUGINS_ENV, "no_such_plugin_module")
    with pytest.raises(ImportError, match="no_such_plugin_module"):
        registry.METHODS.find("ga")


def test_method_example(workdir, qa_files, target, monkeypatch, capsys, tmp_path_factory):
    from obliviate.methods.base import ComposedMethod
    from obliviate.models.loading import load_model

    assert "scaled_ga" not in registry.METHODS
    run_section("scaled_ga", monkeypatch, capsys)  # ls, ls NAME, unlearn
    assert registry.FORGET_TERMS.get("scaled_ga").__name__ == "ScaledGATerm"
    method = registry.METHODS.get("scaled_ga").build({})
    assert isinstance(method, ComposedMethod) and method.forget.scale == 0.5
    unlearned = load_model(str(workdir / "runs" / "scaled_ga" / "model"))
    original = load_model(str(workdir / "target"))
    assert any(not p.equal(q) for p, q in zip(unlearned.parameters(), original.parameters()))

    # the checks every registered method passes (tests/contract/test_methods.py)
    contract.test_registry_entry_documents_method_and_paper("scaled_ga")
    contract.test_method_runs_moves_the_model_and_keeps_the_reference(
        "scaled_ga", target, tmp_path_factory.mktemp("contract_run")
    )


def test_metric_example(workdir, monkeypatch, capsys):
    from obliviate.metrics import direction_of, metric_def

    assert "retain_answer_words" not in registry.METRICS
    run_section("answer_words", monkeypatch, capsys)  # ls metrics NAME
    listing = run_command("obliviate ls metrics", monkeypatch, capsys)
    line = (
        "retain_answer_words (higher) mean words per greedy answer to the retain questions "
        "(0 = stopped answering) [toy example, docs/contributing.md]"
    )
    assert_shows(listing, ["...", line, "..."], "obliviate ls metrics")

    plugin = sys.modules["answer_words"]
    d = metric_def("retain_answer_words")
    assert (d.direction, d.version, d.inputs) == ("higher", 1, ("generations",))
    assert direction_of("retain_answer_words") == "higher"
    assert registry.resolve(d.function) is plugin.answer_words
    metrics: dict = {}
    plugin.record(metrics, ["Paris", "a sailor from Lima"])
    assert metrics == {
        "retain_answer_words": {"value": 2.5, "direction": "higher", "version": 1, "n": 2}
    }
    assert '{"value": 2.5, "direction": "higher", "version": 1, "n": 2}' in DOC.read_text()


def test_benchmark_example(workdir, qa_files, monkeypatch, capsys):
    from obliviate.benchmarks import get_benchmark

    assert "qa-memorisation" not in registry.BENCHMARKS
    _, evaluated = run_section("qa_memorisation", monkeypatch, capsys)  # ls NAME, eval
    spec = get_benchmark("qa-memorisation")
    printed = {line.split()[0] for line in evaluated.splitlines() if line.strip()}
    assert set(spec.metrics) <= printed, evaluated
    suite = spec.build(forget="forget.jsonl", retain="retain.jsonl")
    assert len(suite.request.forget) == 4 and len(suite.request.retain) == 4


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    heads = re.findall(r"^#+ (.+)$", FENCE.sub("", page.read_text()), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_links_to_and_from_the_page_reach_existing_headings():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    links = 0
    for page in pages:
        for file, anchor in re.findall(
            r"\]\(((?:docs/)?[\w-]+\.md)(?:#([\w-]+))?\)", page.read_text()
        ):
            linked = (page.parent / file).resolve()
            if DOC.resolve() not in (page.resolve(), linked):
                continue  # only links to or from docs/contributing.md
            links += 1
            assert linked.exists(), f"{page.name} links to missing {file}"
            assert not anchor or anchor in _anchors(linked), f"{page.name}: no #{anchor} in {file}"
    assert links >= 5  # README, methods.md, metrics.md -> here; here -> methods.md, metrics.md
    assert "docs/contributing.md" in (ROOT / "src" / "obliviate" / "registry.py").read_text()
