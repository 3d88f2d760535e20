"""The metric catalogue's lookups and the shared MIA / PrivLeak helpers, on hand-computed values."""

from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from obliviate.metrics import (
    DEFINITIONS,
    UnknownMetricError,
    direction_of,
    metric_def,
    metric_result,
    mia,
)
from obliviate.registry import METRICS, Entry

# ----------------------------------------------------------------------------- lookups


def test_unregistered_name_is_one_clear_error_not_higher():
    with pytest.raises(UnknownMetricError) as err:
        metric_result("forget_rogue", 0.5)
    msg = str(err.value)
    assert msg.startswith("metric 'forget_rogue' is not registered (did you mean 'forget_rouge'?)")
    assert "obliviate/metrics/catalogue.py" in msg and msg.count(".") <= 3
    assert isinstance(err.value, KeyError)
    with pytest.raises(KeyError, match="not registered"):
        direction_of("no_such_metric")


def test_patterns_resolve_and_exact_names_win():
    assert direction_of("fluency_forget_perplexity") == "lower"
    assert direction_of("fluency_retain_unique_token_ratio") == "higher"
    assert direction_of("audit_quant8_rouge_recoverability") == "lower"
    # multiple choice: retain sets and MMLU keep accuracy, every other set aims at chance
    assert (
        direction_of("retain_accuracy") == "higher" and direction_of("forget_accuracy") == "lower"
    )
    assert direction_of("mmlu_college_biology_accuracy_norm") == "higher"
    assert direction_of("bio_retain_set_accuracy") == "higher"
    assert direction_of("my_hazard_set_accuracy") == "lower"
    assert metric_def("my_hazard_set_accuracy").name == "{subset}_accuracy"
    # exact entries win over {subset}_accuracy
    assert direction_of("in_domain_retain_accuracy") == "higher"
    assert direction_of("unlearning_accuracy") == "higher"
    assert metric_def("wmdp_bio_accuracy").name == "wmdp_bio_accuracy"


def test_shared_definitions_and_ideals():
    # one entry for TOFU's, MUSE's and the audit's Min-K% AUC and PrivLeak
    names = [d.name for d in DEFINITIONS]
    assert names.count("mia_min_k_auc") == 1 and names.count("privleak") == 1
    for attack in ("loss", "zlib", "min_k", "min_k_plus_plus", "gradnorm", "reference"):
        d = metric_def(f"mia_{attack}_auc")
        assert (d.direction, d.ideal) == ("lower", 0.5)
        assert metric_def(mia.privleak_name(attack)).direction == "zero"
    assert metric_def("privleak").ideal is None  # "zero" already says 0 is best


def test_every_definition_has_paper_inputs_and_resolving_functions():
    for d in DEFINITIONS:
        assert d.description and d.paper and d.inputs and d.version >= 1, d.name
        assert "arXiv" in d.paper or "docs/" in d.paper or "19" in d.paper, d.name  # a year
        for ref in filter(None, (d.function, d.per_item)):
            assert callable(Entry("x", ref).load()), (d.name, ref)
        assert METRICS.entry(d.name).meta["inputs"] == d.inputs


def test_metric_result_builds_the_metrics_json_entry():
    assert metric_result("forget_verbmem", 0.25, n=3).to_dict() == {
        "value": 0.25,
        "direction": "lower",
        "version": 1,
        "n": 3,
    }
    assert metric_result("audit_relearn_prob_recoverability", 0.5, control=0.1).to_dict() == {
        "value": 0.5,
        "direction": "lower",
        "version": 1,
        "control": 0.1,
    }
    assert metric_result("fid", None).to_dict() == {
        "value": None,
        "direction": "lower",
        "version": 1,
    }
    with pytest.raises(ValueError, match="come from the catalogue"):
        metric_result("fid", 1.0, direction="higher")


def test_catalogue_import_is_cheap():
    code = (
        "import sys; import obliviate.metrics.catalogue; "
        "heavy = [m for m in ('torch', 'scipy', 'rouge_score', 'sklearn', 'transformers') "
        "if m in sys.modules]; assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_reports_take_a_missing_ideal_from_the_catalogue():
    from obliviate.reporting.tables import Goal, goal_of
    from obliviate.reporting.tables import direction_of as table_direction
    from obliviate.runs import Metric, Run

    def run(**metrics: Metric) -> Run:
        return Run(Path("/r/x"), "x", "unlearned", "x", "b", "s", dict(metrics), {}, {})

    assert goal_of([run(mia_zlib_auc=Metric(0.7, "lower"))], "mia_zlib_auc") == Goal("lower", 0.5)
    assert goal_of([run(mia_zlib_auc=Metric(0.7, "zero"))], "mia_zlib_auc") is None  # legacy
    assert goal_of([run(privleak=Metric(-3.0, "zero"))], "privleak") == Goal("zero")
    assert goal_of([run(unknown_thing=Metric(1.0, "higher"))], "unknown_thing") == Goal("higher")
    assert table_direction([run()], "forget_knowmem") == "lower"  # not in any run: catalogue
    assert table_direction([run()], "unknown_thing") is None


# ----------------------------------------------------------------------------- MIA helpers


def test_token_attack_scores_hand_computed():
    # answer tokens [-1, -3, -0.5] then EOS -2; mu = -1, sigma2 = 4 at every position
    s = mia.token_attack_scores(
        0.5, "ab", [-1.0, -3.0, -0.5, -2.0], [-1.0] * 4, [4.0] * 4, k=0.4, has_eos=True
    )
    assert list(s) == list(mia.TOKEN_ATTACKS)
    assert s["loss"] == 0.5
    assert s["zlib"] == pytest.approx(0.5 / len(zlib.compress(b"ab")))
    # EOS excluded: 3 tokens, floor(0.4 * 3) = 1 lowest: -3 -> 3
    assert s["min_k"] == pytest.approx(3.0)
    # z = (lp + 1) / 2 = [0, -1, 0.25]; lowest -1 -> 1
    assert s["min_k_plus_plus"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no tokens"):
        mia.token_attack_scores(0.5, "", [], [], [], has_eos=False)


def test_attack_aucs_hand_computed_and_empty():
    # forget scores first: [1, 2] vs holdout [3, 4] -> every holdout above: 1.0;
    # [3, 1] vs [2, 2]: 2 of 4 pairs -> 0.5
    assert mia.attack_aucs({"a": [1, 2, 3, 4], "b": [3, 1, 2, 2]}, 2) == {"a": 1.0, "b": 0.5}
    assert mia.attack_aucs({}, 3) == {}
    with pytest.raises(ValueError, match="n_forget"):
        mia.attack_aucs({"a": [1.0]}, 0)
    with pytest.raises(ValueError, match="holdout"):
        mia.attack_aucs({"a": [1.0, 2.0]}, 2)  # no holdout score


def test_privleak_by_attack_hand_computed():
    aucs = {"loss": 0.75, "min_k": 0.5, "zlib": 0.9}
    retain = {"loss": 0.5, "min_k": 0.25}
    # loss: s = 0.25, r = 0.5 -> -50; min_k: s = 0.5, r = 0.75 -> -33.3; zlib: no retain AUC
    out = mia.privleak_by_attack(aucs, retain)
    assert out == pytest.approx({"loss": -50.0, "min_k": (0.5 - 0.75) / 0.75 * 100})
    assert list(out) == ["loss", "min_k"]
    assert mia.privleak_by_attack({}, {}) == {}
    undefined = {"loss": 1.0, "min_k": 0.25}
    with pytest.raises(ValueError, match="divides by 0"):
        mia.privleak_by_attack(aucs, undefined)
    assert mia.privleak_by_attack(aucs, undefined, undefined="none") == pytest.approx(
        {"loss": None, "min_k": (0.5 - 0.75) / 0.75 * 100}
    )
    with pytest.raises(ValueError, match="AUC in"):
        mia.privleak_by_attack({"loss": 0.5}, {"loss": 1.5}, undefined="none")
    with pytest.raises(ValueError, match="undefined"):
        mia.privleak_by_attack(aucs, retain, undefined="skip")
    assert mia.privleak_name("min_k") == "privleak"
    assert mia.privleak_name("loss") == "privleak_loss"
