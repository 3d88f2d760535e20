"""The generic registry: lazy "module:attr" entries, catalogues, family patterns, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from obliviate.registry import WRAPPERS, Registry, UnknownEntryError, resolve


def test_lazy_entries_are_imported_on_first_lookup_only():
    reg: Registry[object] = Registry("thing", {"join": "os.path:join"})
    entry = reg.entry("join")
    assert entry.target == "os.path:join"  # nothing imported yet
    import os.path

    assert reg.get("join") is os.path.join and entry.target is os.path.join
    assert entry.description.startswith("Join two or more pathname components")


def test_a_dotted_attribute_resolves_and_a_bad_target_is_a_clear_error():
    assert resolve("os:path.join").__name__ == "join"
    with pytest.raises(ValueError, match="module:attr"):
        resolve("os.path.join")


def test_family_patterns_match_concrete_names_and_exact_names_win():
    reg: Registry[int] = Registry("metric")
    reg.register("fluency_{split}_perplexity", 1)
    reg.register("fluency_forget_perplexity", 2)
    assert reg.get("fluency_retain_perplexity") == 1
    assert reg.get("fluency_forget_perplexity") == 2
    assert "fluency_retain_perplexity" in reg and "fluency_retain_rouge" not in reg


def test_unknown_names_suggest_close_matches_and_double_registration_fails():
    reg: Registry[int] = Registry("method", {"graddiff": "math:pi"})
    with pytest.raises(UnknownEntryError, match="Did you mean 'graddiff'") as err:
        reg.entry("gradiff")
    assert str(err.value).startswith("unknown method 'gradiff'")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("graddiff", 1)


def test_decorator_registration_and_catalogue_modules():
    reg: Registry[type] = Registry("eraser", catalogues=("json",))

    @reg.register("toy", paper="Doe 2024")
    class Toy:
        """A toy entry."""

    assert reg.get("toy") is Toy and reg.entry("toy").paper == "Doe 2024"
    assert reg.entry("toy").description == "A toy entry." and reg.names() == ["toy"]


@pytest.mark.parametrize("name", ["icul", "guardrail", "logit_offset", "sisa"])
def test_every_wrapper_kind_resolves_in_a_fresh_interpreter(name):
    """The registry finds every wrapper kind without the caller importing its package first
    (a SISA run folder once failed to load in a process that never imported the methods)."""
    assert name in WRAPPERS.names()
    code = f"from obliviate.registry import WRAPPERS; print(WRAPPERS.get({name!r}).__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == WRAPPERS.get(name).__name__
