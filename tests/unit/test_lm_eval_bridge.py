"""The lm-evaluation-harness bridge (obliviate.benchmarks.harness): metric names, settings
errors, and, when lm_eval is installed, a local task (docs/data/lm_eval_tasks: a YAML with
a local JSON dataset) run offline on the tiny trained model in memory, whose accuracy must equal
obliviate's own cloze scoring of the same questions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from obliviate.benchmarks.harness import lm_eval_available, metric_name

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "docs" / "data" / "lm_eval_tasks"
TASK = "obliviate_world_facts"
needs_lm_eval = pytest.mark.skipif(
    not lm_eval_available(), reason="lm-evaluation-harness not installed (extra obliviate[lm-eval])"
)


def test_metric_names_and_directions():
    from obliviate.metrics.lookups import direction_of

    assert metric_name("mmlu", "acc,none") == "lm_eval_mmlu_acc"
    assert metric_name("arc-easy", "acc_norm,none") == "lm_eval_arc_easy_acc_norm"
    assert (
        metric_name("gsm8k", "exact_match,strict-match") == "lm_eval_gsm8k_exact_match_strict_match"
    )
    assert metric_name("mmlu", "acc_stderr,none") is None
    assert metric_name("mmlu", "alias") is None and metric_name("t", "brier_score,none") is None
    for name, direction in (
        ("lm_eval_mmlu_acc", "higher"),
        ("lm_eval_arc_easy_acc_norm", "higher"),
        ("lm_eval_gsm8k_exact_match_strict_match", "higher"),
        ("lm_eval_wikitext_word_perplexity", "lower"),
        ("lm_eval_wikitext_bits_per_byte", "lower"),
    ):
        assert direction_of(name) == direction, name


def test_settings_errors(capsys):
    from obliviate import api
    from obliviate.cli import main

    for kw, words in (
        ({}, "needs --set tasks"),
        ({"settings": {"tasks": "mmlu", "shots": 1}}, "unknown setting"),
        ({"settings": {"tasks": "mmlu"}, "data": "x.json"}, "not --data"),
        ({"settings": {"tasks": "t", "include_path": "/no/dir"}}, "not a folder"),
    ):
        with pytest.raises((ValueError, ImportError), match=words):
            api.load_suite("lm-eval", **kw)
    argv = ["unlearn", "--benchmark", "lm-eval", "--model", "m", "--out", "o", "--set", "tasks=x"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_tasks_setting_forms():
    if not lm_eval_available():
        pytest.skip("lm-evaluation-harness not installed (extra obliviate[lm-eval])")
    from obliviate import api

    a = api.load_suite("lm-eval", settings={"tasks": "mmlu, arc_easy", "limit": 5})
    b = api.load_suite("lm-eval", settings={"tasks": ["mmlu", "arc_easy"], "limit": 5})
    assert a.tasks == b.tasks == ["mmlu", "arc_easy"] and a.limit == 5
    assert a.key("fp") == b.key("fp") and a.key("fp")["lm_eval"]


@needs_lm_eval
def test_local_task_on_the_tiny_model_matches_obliviates_own_scoring(
    tiny_models, monkeypatch, tmp_path
):
    from obliviate import api
    from obliviate.benchmarks.wmdp import evaluate_mcq
    from obliviate.data.wmdp import MCQItem
    from obliviate.models.loading import load_model, load_tokenizer

    monkeypatch.chdir(ROOT)  # the task's data_files path is relative to the repository root
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    settings = {"tasks": TASK, "include_path": str(TASKS), "batch_size": 16}
    res = api.evaluate(
        tiny_models["target"],
        benchmark="lm-eval",
        settings=settings,
        out=tmp_path / "run",
        progress=False,
    )
    values = res.values()
    assert set(values) == {f"lm_eval_{TASK}_acc", f"lm_eval_{TASK}_acc_norm"}
    rows = [json.loads(x) for x in (TASKS / f"{TASK}.jsonl").read_text().splitlines()]
    items = [MCQItem(r["question"], tuple(r["choices"]), r["answer"]) for r in rows]
    model, tok = load_model(tiny_models["target"]), load_tokenizer(tiny_models["target"])
    own = evaluate_mcq(model, tok, {"x": items}, mode="cloze").values()
    print("lm-eval", values, "obliviate cloze", own)
    # same prompt ("Question: ...\nAnswer:"), same continuations (" choice"), same argmax
    assert values[f"lm_eval_{TASK}_acc"] == pytest.approx(own["x_accuracy"])
    # (acc_norm differs by design: lm-eval divides by the choice's characters, obliviate by the
    # UTF-8 bytes of " choice")
    assert 0.0 <= values[f"lm_eval_{TASK}_acc_norm"] <= 1.0
    assert values[f"lm_eval_{TASK}_acc"] > 0.25  # the trained model knows some world facts
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert f"lm_eval_{TASK}_acc" in json.dumps(saved)
    task_row = [s for s in res.samples if s["split"] == "lm_eval"]
    assert task_row[0]["task"] == TASK and "acc_stderr,none" in task_row[0]
