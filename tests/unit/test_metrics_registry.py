"""Metric definitions: registered under the run-format names, directions, lazy and cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

from obliviate.metrics import DEFINITIONS, MetricDef, MetricResult, metric_result
from obliviate.registry import METRICS, Entry

# docs/run-format.md, "Metric names of the TOFU suite"
RUN_FORMAT_DIRECTIONS = {
    "forget_quality": "higher",
    "model_utility": "higher",
    "forget_prob": "lower",
    "retain_prob": "higher",
    "forget_rouge": "lower",
    "retain_rouge": "higher",
    "forget_paraphrased_rouge": "lower",
    "forget_truth_ratio": "higher",
    "retain_truth_ratio": "higher",
    "real_authors_prob": "higher",
    "real_authors_rouge": "higher",
    "real_authors_truth_ratio": "higher",
    "world_facts_prob": "higher",
    "world_facts_rouge": "higher",
    "world_facts_truth_ratio": "higher",
    "forget_exact_memorisation": "lower",
    "forget_extraction_strength": "lower",
    "forget_s_ma": "lower",
    "forget_s_el": "lower",
    "privleak": "zero",
}
MIA_AUCS = ["mia_loss_auc", "mia_zlib_auc", "mia_min_k_auc", "mia_min_k_plus_plus_auc"]
# every other registration of the catalogue (TOFU extras, audit, MUSE, multiple choice, diffusion)
OTHER_NAMES = [
    "forget_paraphrased_prob",
    "privleak_loss",
    "privleak_zlib",
    "privleak_min_k_plus_plus",
    "mia_gradnorm_auc",
    "mia_reference_auc",
    "privleak_gradnorm",
    "privleak_reference",
    "audit_{attack}_{metric}_recoverability",
    "forget_perplexity",
    "retain_perplexity",
    "fluency_{split}_perplexity",
    "fluency_{split}_repetition_rate",
    "fluency_{split}_unique_token_ratio",
    "forget_verbmem",
    "forget_knowmem",
    "retain_knowmem",
    *(
        f"{s}_accuracy{norm}"
        for s in (
            "wmdp_bio",
            "wmdp_cyber",
            "wmdp_chem",
            "forget",
            "retain",
            "wmdp_forget",
            "wmdp_retain",
            "mmlu",
            "mmlu_{subject}",
            "{subset}_retain",
            "retain_{subset}",
            "{prefix}_retain_{suffix}",
            "{subset}",
        )
        for norm in ("", "_norm")
    ),
    "unlearning_accuracy",
    "in_domain_retain_accuracy",
    "cross_domain_retain_accuracy",
    "cross_domain_accuracy_forget_prompts",
    "cross_domain_accuracy_retain_prompts",
    "fid",
    "kid",
    # docs/scenarios.md
    "truthfulqa_mc1",
    "truthfulqa_mc2",
    *(
        f"counterfact_{kind}_{what}"
        for kind in ("efficacy", "paraphrase", "neighborhood")
        for what in ("score", "magnitude")
    ),
    "counterfact_true_prob",
    "zsre_efficacy",
    "zsre_paraphrase",
    "zsre_specificity",
    "zsre_true_accuracy",
    "harmful_rate",
    "judge_accuracy",
    "judge_kappa",
    *(
        f"lm_eval_{{task}}_{metric}{suffix}"
        for metric in (
            "acc",
            "acc_norm",
            "exact_match",
            "f1",
            "mcc",
            "bleu",
            "rouge1",
            "rougeL",
            "perplexity",
            "word_perplexity",
            "byte_perplexity",
            "bits_per_byte",
        )
        for suffix in ("", "_{filter}")
    ),
    # docs/multimodal.md: MLLMU-Bench tasks per set and mode, gaps to the retain model
    *(
        f"{s}_{mode}_{task}{gap}"
        for s in ("forget", "test", "retain", "real")
        for mode in ("image", "text")
        for task in ("mcq_acc", "rouge_l", "cloze_acc")
        for gap in ("", "_retain_gap")
        if not (gap and s in ("retain", "real"))
    ),
]


def test_every_run_format_metric_is_registered_with_its_direction():
    for name, direction in RUN_FORMAT_DIRECTIONS.items():
        entry = METRICS.entry(name)
        assert entry.meta["direction"] == direction, name
        assert entry.meta["version"] == 1
        assert entry.description and entry.paper, name
    for name in MIA_AUCS:
        assert METRICS.entry(name).meta["ideal"] == 0.5


def test_definitions_are_unique_and_their_functions_resolve():
    names = [d.name for d in DEFINITIONS]
    assert len(names) == len(set(names))
    assert sorted(names) == sorted([*RUN_FORMAT_DIRECTIONS, *MIA_AUCS, *OTHER_NAMES])
    for d in DEFINITIONS:
        assert METRICS.get(d.name) is d
        for ref in filter(None, (d.function, d.per_item)):
            assert callable(Entry("x", ref).load()), ref


def test_metric_result_to_dict_matches_run_format():
    r = metric_result("privleak", -12.0)
    assert r.to_dict() == {"value": -12.0, "direction": "zero", "version": 1}
    r = metric_result("mia_min_k_auc", 0.7, n=40, settings={"k": 0.4, "include_eos": False})
    assert r.to_dict() == {
        "value": 0.7,
        "direction": "lower",
        "version": 1,
        "n": 40,
        "settings": {"k": 0.4, "include_eos": False},
        "ideal": 0.5,
    }


def test_bad_direction_rejected():
    with pytest.raises(ValueError, match="direction"):
        MetricResult(1.0, "up", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="direction"):
        MetricDef("x", "d", "p", "sideways", "m:f")  # type: ignore[arg-type]


def test_registry_lookup_loads_metrics_lazily_without_heavy_imports():
    code = (
        "import sys; from obliviate.registry import METRICS; "
        "assert 'obliviate.metrics' not in sys.modules; "
        "names = METRICS.names(); assert 'forget_quality' in names, names; "
        "heavy = [m for m in ('torch', 'scipy', 'rouge_score', 'sklearn') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
