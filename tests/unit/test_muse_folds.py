"""C5/C6 fold runners: a fold that repeats a finished run (same documents, from the target) is
taken from it instead of being trained again; the other folds run as before."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from obliviate.benchmarks import muse_folds as M
from obliviate.data.types import QAItem


def _docs(*names: str, split: str = "forget") -> list[QAItem]:
    return [QAItem("", f"text of {n}", meta={"config": "raw", "split": split}) for n in names]


@dataclass
class Data:
    forget: list[QAItem]
    scal: list[list[QAItem]]
    sust: list[list[QAItem]]
    source: str = "fake"

    def request(self, fold: list[QAItem]) -> Any:
        return SimpleNamespace(forget=fold)


@dataclass
class Eval:
    tag: str

    def values(self) -> dict[str, float]:
        return {"forget_knowmem": float(len(self.tag))}


@dataclass
class Recorder:
    """Stands in for ``unlearn_documents``: each call's starting model and documents."""

    calls: list[tuple[str, list[str]]] = field(default_factory=list)

    def __call__(self, model, tok, method, request, overrides, progress=False) -> Any:
        texts = [d.answer for d in request.forget]
        self.calls.append((model, texts))
        return SimpleNamespace(model=f"{model}+{len(texts)}", stopped=None)


@pytest.fixture
def setup(monkeypatch):
    a, b, c = _docs("a1", "a2"), _docs("b1"), _docs("c1")
    fold1 = _docs("a1", "a2", split="forget_1")  # the forget set, read from another file
    data = Data(forget=a, scal=[fold1, a + b, a + b + c], sust=[fold1, b, c])
    rec = Recorder()
    monkeypatch.setattr(M, "unlearn_documents", rec)
    main = M.FinishedRun(
        "npo", M.docs_key(a), Eval("main"), SimpleNamespace(model="main", stopped="early"), 3.5
    )
    return data, rec, main


def _evaluate(model: str) -> Eval:
    return Eval(model)


def test_scalability_takes_the_fold_that_repeats_the_finished_run(setup) -> None:
    data, rec, main = setup
    seen: list[tuple[int, Any]] = []
    folds = M.run_scalability(
        lambda: "target", None, data, "npo", _evaluate,
        on_fold=lambda k, ev, res: seen.append((k, ev.tag)), finished=main,
    )  # fmt: skip
    assert [docs for _, docs in rec.calls] == [
        ["text of a1", "text of a2", "text of b1"],
        ["text of a1", "text of a2", "text of b1", "text of c1"],
    ]  # fold 1 is not trained again
    assert [m for m, _ in rec.calls] == ["target", "target"]
    assert folds[0].same_as == "npo" and folds[0].train_s == 3.5 and folds[0].stopped == "early"
    assert folds[0].metrics == {"forget_knowmem": 4.0}  # the finished run's evaluation
    assert [f.same_as for f in folds[1:]] == [None, None]
    assert seen == [(1, "main"), (2, "target+3"), (3, "target+4")]


def test_sustainability_goes_on_from_the_finished_runs_model(setup) -> None:
    data, rec, main = setup
    folds = M.run_sustainability(lambda: "target", None, data, "npo", _evaluate, finished=main)
    assert rec.calls == [("main", ["text of b1"]), ("main+1", ["text of c1"])]
    assert [f.same_as for f in folds] == ["npo", None, None]


def test_folds_with_other_documents_are_all_trained(setup) -> None:
    data, rec, _ = setup
    other = M.FinishedRun("npo", M.docs_key(_docs("a2", "a1")), Eval("x"), None, 1.0)  # order
    M.run_sustainability(lambda: "target", None, data, "npo", _evaluate, finished=other)
    assert [m for m, _ in rec.calls] == ["target", "target+2", "target+2+1"]
    rec.calls.clear()
    folds = M.run_scalability(lambda: "target", None, data, "npo", _evaluate)  # none given
    assert len(rec.calls) == 3 and all(f.same_as is None for f in folds)


def test_metadata_a_method_may_read_is_part_of_the_documents() -> None:
    plain = _docs("a1")
    spans = [QAItem("", "text of a1", meta={"spans": [[0, 4]], "split": "forget"})]
    assert M.docs_key(plain) == M.docs_key(_docs("a1", split="forget_1"))
    assert M.docs_key(plain) != M.docs_key(spans)
