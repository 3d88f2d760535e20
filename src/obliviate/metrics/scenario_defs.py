"""Rows of the metric catalogue for the scenario benchmarks (TruthfulQA, CounterFact, zsRE,
harmful-response removal; docs/scenarios.md). Data only: :mod:`obliviate.metrics.catalogue`
registers each row once, like its own entries; the functions live in
:mod:`obliviate.metrics.truthfulqa`, :mod:`obliviate.metrics.counterfact` and
:mod:`obliviate.metrics.harm`."""

from __future__ import annotations

TRUTHFULQA = "Lin+ 2022, arXiv 2109.07958 (TruthfulQA)"
ROME = "Meng+ 2022, arXiv 2202.05262 (ROME)"
ZSRE = f"{ROME}, zsRE table; Levy+ 2017, arXiv 1706.04115; De Cao+ 2021, arXiv 2104.08164"
HARM = "Yao+ 2023, arXiv 2310.10683 (harmful rate on held-out PKU-SafeRLHF prompts)"
KAPPA = "Cohen 1960, Educ. Psychol. Meas. 20(1), eq. 1"
_T = ":truthfulqa:"
_C = ":counterfact:"

# (name, direction, description, paper, function, per_item)
SCENARIO_ROWS: tuple[tuple[str, str, str, str, str, str], ...] = (
    (
        "truthfulqa_mc1",
        "higher",
        "share of questions whose one true choice has strictly the highest summed log-likelihood",
        f"{TRUTHFULQA}, MC1",
        f"{_T}mc1",
        f"{_T}mc1_hit",
    ),
    (
        "truthfulqa_mc2",
        "higher",
        "mean normalised probability mass on the true choices, p = exp(summed log-likelihood)",
        f"{TRUTHFULQA}, MC2",
        f"{_T}mc2",
        f"{_T}mc2_score",
    ),
    (
        "counterfact_efficacy_score",
        "higher",
        "ES: share of rewritten facts where P(new) > P(true) on the rewrite prompt",
        f"{ROME}, CounterFact efficacy score",
        f"{_C}aggregate",
        f"{_C}rewrite_hit",
    ),
    (
        "counterfact_efficacy_magnitude",
        "higher",
        "EM: mean P(new) - P(true) on the rewrite prompt",
        f"{ROME}, CounterFact efficacy magnitude",
        f"{_C}aggregate",
        f"{_C}rewrite_hit",
    ),
    (
        "counterfact_paraphrase_score",
        "higher",
        "PS: share of paraphrase prompts where P(new) > P(true), averaged per record",
        f"{ROME}, CounterFact paraphrase score",
        f"{_C}aggregate",
        f"{_C}rewrite_hit",
    ),
    (
        "counterfact_paraphrase_magnitude",
        "higher",
        "PM: mean P(new) - P(true) on the paraphrase prompts",
        f"{ROME}, CounterFact paraphrase magnitude",
        f"{_C}aggregate",
        f"{_C}rewrite_hit",
    ),
    (
        "counterfact_neighborhood_score",
        "higher",
        "NS: share of neighbourhood prompts (other subjects) where P(true) > P(new)",
        f"{ROME}, CounterFact neighborhood score",
        f"{_C}aggregate",
        f"{_C}neighborhood_hit",
    ),
    (
        "counterfact_neighborhood_magnitude",
        "higher",
        "NM: mean P(true) - P(new) on the neighbourhood prompts",
        f"{ROME}, CounterFact neighborhood magnitude",
        f"{_C}aggregate",
        f"{_C}neighborhood_hit",
    ),
    (
        "counterfact_true_prob",
        "lower",
        "mean P(true) = exp(mean token log p) of the true object on the rewrite prompt",
        f"{ROME}, CounterFact probabilities (forgetting view: the drop of P(true))",
        ":base:mean_score",
        f"{_C}true_probability",
    ),
    (
        "zsre_efficacy",
        "higher",
        "mean top-1 token accuracy of the new answer after the question",
        f"{ZSRE}, efficacy",
        ":base:mean_score",
        f"{_C}token_accuracy",
    ),
    (
        "zsre_paraphrase",
        "higher",
        "mean top-1 token accuracy of the new answer after the rephrased question",
        f"{ZSRE}, paraphrase",
        ":base:mean_score",
        f"{_C}token_accuracy",
    ),
    (
        "zsre_specificity",
        "higher",
        "mean top-1 token accuracy of the unrelated question's answer (loc, loc_ans)",
        f"{ZSRE}, specificity",
        ":base:mean_score",
        f"{_C}token_accuracy",
    ),
    (
        "zsre_true_accuracy",
        "lower",
        "mean top-1 token accuracy of the true answer after the question (forgetting view)",
        f"{ZSRE}, accuracy of the true answer",
        ":base:mean_score",
        f"{_C}token_accuracy",
    ),
    (
        "harmful_rate",
        "lower",
        "share of greedy answers to held-out harmful prompts that the judge calls harmful",
        HARM,
        ":harm:harmful_rate",
        ":harm:harmful_flags",
    ),
    (
        "judge_accuracy",
        "higher",
        "share of the labelled examples where the LLM judge's verdict matches the label",
        f"{KAPPA} (observed agreement p_o)",
        ":harm:agreement",
        ":harm:agreement",
    ),
    (
        "judge_kappa",
        "higher",
        "Cohen's kappa of the LLM judge's verdicts against the labelled examples",
        KAPPA,
        ":harm:agreement",
        ":harm:agreement",
    ),
)

# the metric names each family reports (the benchmark entries list them)
TRUTHFULQA_METRICS = tuple(r[0] for r in SCENARIO_ROWS if r[0].startswith("truthfulqa_"))
COUNTERFACT_METRICS = tuple(r[0] for r in SCENARIO_ROWS if r[0].startswith("counterfact_"))
ZSRE_METRICS = tuple(r[0] for r in SCENARIO_ROWS if r[0].startswith("zsre_"))
HARM_METRICS = ("harmful_rate",)  # judge_accuracy / judge_kappa: only with an LLM judge
# lm-evaluation-harness metrics recorded by obliviate.benchmarks.harness, by direction
LM_EVAL_HIGHER = ("acc", "acc_norm", "exact_match", "f1", "mcc", "bleu", "rouge1", "rougeL")
LM_EVAL_LOWER = ("perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte")
