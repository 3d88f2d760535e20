"""The generic registry: lazy "module:attr" entries, catalogues, family patterns, clear errors."""

from __future__ import annotations

import json
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
    (a SISA run folder once failed to load in a process that never imported the methods):
    the name is listed, and resolves, in a process that imported only the registry."""
    code = (
        f"from obliviate.registry import WRAPPERS; assert {name!r} in WRAPPERS.names(), "
        f"WRAPPERS.names(); print(WRAPPERS.get({name!r}).__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == WRAPPERS.get(name).__name__


def _registered_in_a_fresh_interpreter() -> dict[str, list[str]]:
    """Every built-in registry's names as a new process sees them, and which family modules the
    listing imported (none may be: the tables are strings)."""
    code = (
        "import json, sys; from obliviate import registry as r\n"
        "regs = {k: getattr(r, k).names() for k in "
        "('METHODS', 'FORGET_TERMS', 'RETAIN_TERMS', 'WRAPPERS', 'ERASERS')}\n"
        "regs['imported'] = sorted(m for m in sys.modules if m.startswith("
        "('obliviate.methods.', 'obliviate.inference.', 'obliviate.diffusion.')))\n"
        "print(json.dumps(regs))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_every_built_in_object_has_its_line_in_the_registry_tables():
    """Each method preset, term, wrapper and eraser defined in the packages is registered under
    its own name by the builtins tables alone (a fresh process, nothing else imported), so a
    missing table line fails here."""
    import importlib
    import pkgutil

    import obliviate.diffusion
    import obliviate.inference
    import obliviate.methods
    from obliviate.diffusion.eraser_base import Eraser
    from obliviate.inference.base import InferenceWrapper
    from obliviate.methods.base import MethodPreset
    from obliviate.methods.sisa_ensemble import SISAEnsemble
    from obliviate.methods.terms import Term
    from obliviate.registry import ERASERS, FORGET_TERMS, METHODS, RETAIN_TERMS

    fresh = _registered_in_a_fresh_interpreter()
    assert fresh.pop("imported") == []
    assert fresh == {
        "METHODS": METHODS.names(),
        "FORGET_TERMS": FORGET_TERMS.names(),
        "RETAIN_TERMS": RETAIN_TERMS.names(),
        "WRAPPERS": WRAPPERS.names(),
        "ERASERS": ERASERS.names(),
    }
    found = {"METHODS": 0, "TERMS": 0, "WRAPPERS": 0, "ERASERS": 0}
    for pkg in (obliviate.methods, obliviate.inference, obliviate.diffusion):
        for info in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + "."):
            module = importlib.import_module(info.name)
            for obj in vars(module).values():
                if isinstance(obj, MethodPreset) and obj.description:
                    assert obj.name in fresh["METHODS"] and METHODS.get(obj.name) is obj, obj.name
                    found["METHODS"] += 1
                elif not isinstance(obj, type) or obj.__module__ != module.__name__:
                    continue
                elif issubclass(obj, Term) and obj.description:
                    assert obj in (
                        FORGET_TERMS.get(obj.name) if obj.name in fresh["FORGET_TERMS"] else None,
                        RETAIN_TERMS.get(obj.name) if obj.name in fresh["RETAIN_TERMS"] else None,
                    ), obj
                    found["TERMS"] += 1
                elif issubclass(obj, (InferenceWrapper, SISAEnsemble)) and obj.description:
                    kind = "sisa" if obj is SISAEnsemble else obj.kind
                    assert kind in fresh["WRAPPERS"] and WRAPPERS.get(kind) is obj, obj
                    found["WRAPPERS"] += 1
                elif issubclass(obj, Eraser) and obj.name:
                    assert obj.name in fresh["ERASERS"] and ERASERS.get(obj.name) is obj, obj
                    found["ERASERS"] += 1
    assert found == {
        "METHODS": len(METHODS),
        "TERMS": len(FORGET_TERMS) + len(RETAIN_TERMS),
        "WRAPPERS": len(WRAPPERS),
        "ERASERS": len(ERASERS),
    }
