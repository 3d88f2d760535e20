"""OpenUnlearning's evaluation logs (docs/run-format.md, "OpenUnlearning logs"): a hand-written
log (tests/fixtures/open_unlearning/retain, written from the documented schema: 5 forget and 5
holdout samples) is the retain model's results for forget quality and privleak, giving the same
values as obliviate's own retain evaluation of the same numbers; export then import is
lossless; a malformed log is one line naming the file and what is wrong."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from obliviate.data.types import DataError
from obliviate.evaluation import EvalResult, add_reference_metrics
from obliviate.interop.open_unlearning import ENTRIES, read_log, to_log, write_log
from obliviate.metrics import metric_result
from obliviate.runs import load_run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LOG = FIXTURES / "open_unlearning" / "retain" / "TOFU_EVAL.json"
DEMO = FIXTURES / "runs" / "demo"

RETAIN_TR = [0.5, 0.6, 0.7, 0.8, 0.9]  # the log's forget_truth_ratio value_by_index
MODEL_TR = [0.1, 0.2, 0.3, 0.65, 0.95]
# KS by hand: the ECDFs differ most after 0.3 (3/5 of the model's ratios, none of the
# retain's): D = 3/5. For two samples of n = 5, P(D >= 3/5) = 2 C(10, 5 - 3) / C(10, 5)
# = 2 * 45 / 252 = 5/14.
KS_P = 5 / 14
KEY = {"eval_version": 2, "data": "sha256:x", "template": {}, "settings": {}}


def _model(trs: list[float], auc: float = 0.9) -> EvalResult:
    samples = [{"split": "forget", "index": i, "truth_ratio": t} for i, t in enumerate(trs)]
    metrics = {"mia_min_k_auc": metric_result("mia_min_k_auc", auc).to_dict()}
    return EvalResult(metrics, samples, dict(KEY))


def test_the_log_as_retain_reference_gives_obliviates_forget_quality_and_privleak() -> None:
    ours = _model(RETAIN_TR, auc=0.64)  # obliviate's retain evaluation of the same numbers
    with_ours, with_log = _model(MODEL_TR), _model(MODEL_TR)
    add_reference_metrics(with_ours, ours)
    add_reference_metrics(with_log, read_log(LOG))
    assert with_log.values()["forget_quality"] == with_ours.values()["forget_quality"]
    assert with_log.values()["forget_quality"] == pytest.approx(KS_P, abs=1e-12)
    # privleak of the Min-K% AUC 0.9 against the log's retain AUC 0.64 (its mia_min_k)
    expected = ((1 - 0.9) - (1 - 0.64)) / (1 - 0.64) * 100
    assert with_log.values()["privleak"] == pytest.approx(expected, abs=1e-9)
    assert with_log.values()["privleak"] == with_ours.values()["privleak"]


def test_the_log_is_read_under_obliviates_names() -> None:
    log = read_log(LOG.parent)  # the folder open-unlearning wrote works too
    assert log.column("forget", "truth_ratio") == RETAIN_TR
    assert log.column("holdout", "mia_min_k") == [1.2, 2.2, 2.4, 2.7, 3.5]
    assert log.values()["mia_min_k_auc"] == 0.64
    assert log.values()["forget_truth_ratio"] == 0.7
    assert log.column("forget", "answer")[0] == "Anna Berg was born in Paris."
    assert "forget_quality" not in log.metrics  # null there: no retain logs when it ran
    assert "null" in log.unavailable["forget_quality"]
    assert not any(k.startswith("forget_Q_A_PERT") for k in log.metrics)  # not ours: left out


def test_a_log_of_another_forget_split_is_refused_in_one_sentence() -> None:
    with pytest.raises(ValueError) as err:
        add_reference_metrics(_model(MODEL_TR[:4]), read_log(LOG))
    msg = str(err.value)
    assert "5 forget samples" in msg and "has 4" in msg and "TOFU_EVAL.json" in msg
    assert "\n" not in msg


def _exported(run: str) -> tuple[dict, list]:
    r = load_run(DEMO / run)
    return {k: r.info["metrics"][k] for k in r.metrics}, r.samples


@pytest.mark.parametrize("run", ["target", "retain", "graddiff", "npo"])
def test_export_then_import_is_lossless(run: str, tmp_path: Path) -> None:
    metrics, samples = _exported(run)
    eval_path, summary_path = write_log(tmp_path, metrics, samples, "builtin-tofu")
    back = read_log(eval_path)
    values = {k: v["value"] for k, v in metrics.items() if v.get("value") is not None}
    assert back.values() == values  # every exported metric, exactly
    summary = json.loads(summary_path.read_text())
    assert sorted(summary.values()) == sorted(values.values())
    rows = {(s["split"], s["index"]): s for s in back.samples}
    checked = 0
    for e in ENTRIES["TOFU"]:
        for split in (e.split, e.holdout):
            for s in (s for s in samples if s["split"] == split):
                for _, key in e.fields:
                    if s.get(key) is not None and e.ours in metrics:
                        assert rows[(split, s["index"])][key] == s[key], (e.ou, key)
                        checked += 1
    assert checked > 100


def test_the_export_uses_open_unlearnings_names_and_fields() -> None:
    metrics, samples = _exported("retain")
    log = to_log(metrics, samples, "TOFU")
    tr = log["forget_truth_ratio"]["value_by_index"]
    assert tr["0"] == {"score": samples[0]["truth_ratio"]}
    assert log["forget_Q_A_Prob"]["value_by_index"]["0"] == {"prob": samples[0]["prob"]}
    row = {"split": "forget", "index": 3, "prob": 0.5, "nll": math.log(2)}  # nll: since v2
    one = to_log({"forget_prob": {"value": 0.5}}, [row], "TOFU")
    assert one["forget_Q_A_Prob"]["value_by_index"] == {"3": {"prob": 0.5, "avg_loss": math.log(2)}}
    assert log["mia_min_k"]["agg_value"] == log["mia_min_k"]["auc"]
    assert set(log["mia_min_k"]) >= {"forget", "holdout"}
    assert "forget_prob" not in log and "forget_Q_A_Prob" in log


def test_export_refuses_to_replace_files_unless_overwrite(tmp_path: Path) -> None:
    metrics, samples = _exported("npo")
    write_log(tmp_path, metrics, samples, "builtin-tofu")
    with pytest.raises(ValueError, match="already exists; pass --overwrite"):
        write_log(tmp_path, metrics, samples, "builtin-tofu")
    write_log(tmp_path, metrics, samples, "builtin-tofu", overwrite=True)
    with pytest.raises(ValueError, match="TOFU and MUSE"):
        write_log(tmp_path / "x", {"wmdp_bio_accuracy": {"value": 0.3}}, [], "wmdp")


def _broken(tmp_path: Path, edit: object) -> Path:
    doc = json.loads(LOG.read_text())
    doc = edit(copy.deepcopy(doc)) if callable(edit) else edit
    path = tmp_path / "TOFU_EVAL.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def _set(path: list, value: object) -> Callable[[dict], dict]:
    def edit(doc: dict) -> dict:
        node = doc
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
        return doc

    return edit


@pytest.mark.parametrize(
    "edit, expected",
    [
        ('{"forget_truth_ratio": ', "invalid JSON at line 1"),
        ("[1, 2]", "expected a JSON object"),
        ({"forget_truth_ratio": 0.5, "mia_min_k": 0.6}, "this is a summary"),
        ({"something_else": {"agg_value": 1}}, "none of the open-unlearning TOFU metrics"),
        (_set(["forget_truth_ratio"], 0.7), "forget_truth_ratio must be an object"),
        (_set(["forget_truth_ratio", "agg_value"], "high"), "agg_value must be a number"),
        (_set(["model_utility"], {"value": 0.4}), "model_utility has no agg_value"),
        (_set(["forget_truth_ratio", "value_by_index"], [0.5]), "value_by_index must be an object"),
        (_set(["forget_truth_ratio", "value_by_index", "x"], {"score": 1}), "'x' is not a sample"),
        (_set(["forget_truth_ratio", "value_by_index", "2"], 0.7), "['2'] must be an object"),
        (_set(["forget_truth_ratio", "value_by_index", "2", "score"], "0.7"), "must be a number"),
        (_set(["forget_Q_A_ROUGE", "value_by_index", "0", "generation"], 3), "must be a string"),
        (_set(["mia_min_k", "holdout"], {"agg_value": 1}), "mia_min_k: value_by_index must be"),
    ],
)
def test_a_malformed_log_is_one_line_naming_the_file(
    tmp_path: Path, edit: object, expected: str
) -> None:
    path = _broken(tmp_path, edit)
    with pytest.raises(DataError) as err:
        read_log(path)
    msg = str(err.value)
    assert expected in msg and str(path) in msg and "\n" not in msg


def test_missing_files_and_summaries_say_which_file_to_give(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_log(tmp_path / "TOFU_EVAL.json")
    with pytest.raises(DataError, match=r"no \*_EVAL.json"):
        read_log(tmp_path)
    with pytest.raises(DataError, match="give the per-sample log next to it"):
        read_log(LOG.parent / "TOFU_SUMMARY.json")


def test_nan_survives_the_round_trip(tmp_path: Path) -> None:
    metrics = {"forget_prob": metric_result("forget_prob", math.nan).to_dict()}
    path, _ = write_log(tmp_path, metrics, [], "tofu")
    assert math.isnan(read_log(path).values()["forget_prob"])


def test_a_privleak_the_log_cannot_give_is_listed_with_the_reason() -> None:
    model = _model(MODEL_TR)
    model.metrics["mia_loss_auc"] = metric_result("mia_loss_auc", 0.8).to_dict()
    add_reference_metrics(model, read_log(LOG))  # the log has mia_min_k, not mia_loss
    assert "privleak" in model.metrics
    assert model.unavailable["privleak_loss"].endswith("TOFU_EVAL.json has no mia_loss")
