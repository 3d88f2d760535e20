"""Every comparison table is rendered by obliviate.reporting.render: exact Markdown output."""

from __future__ import annotations

from obliviate.reporting import render

QA_DOC = {
    "benchmark": "builtin",
    "split": "forget10",
    "rows": [
        {
            "name": "target",
            "role": "target",
            "forget_quality": 1.2e-5,
            "model_utility": 0.61234,
            "retain_prob": 0.95,
            "forget_rouge": 0.9,
            "forget_prob": None,
            "retain_rouge": 0.8,
            "privleak": -99.5,
            "train_s": 12.0,
            "trainable_params": 123456,
        },
        {
            "name": "npo",
            "role": "unlearned",
            "forget_quality": 0.5,
            "model_utility": 0.0,
            "forget_rouge": 150.0,
            "forget_prob": 0.1,
            "retain_rouge": 0.8,
            "privleak": 3.0,
            "train_s": None,
            "trainable_params": None,
        },
    ],
}


def test_qa_comparison_table():
    assert render.comparison_markdown(QA_DOC) == (
        "benchmark: builtin  split: forget10\n\n"
        "| run | role | FQ | MU | retain prob | retain ROUGE | forget ROUGE | forget prob | privleak "
        "| time (s) | trainable |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
        "| target | target | 1.20e-05 | 0.612 | 0.950 | 0.800 | 0.900 | - | -99.500 | 12.000 "
        "| 123456 |\n"
        "| npo | unlearned | 0.500 | 0.000 | - | 0.800 | 150.0 | 0.100 | 3.000 | - | - |\n"
    )


def test_a_benchmark_entry_table_uses_its_own_metric_labels():
    doc = {
        "benchmark": "documents",
        "split": "forget",
        "labels": {"forget_verbmem": ["forget_verbmem", "lower"]},
        "rows": [{"name": "target", "role": "target", "forget_verbmem": 0.25}],
    }
    assert "| run | role | forget_verbmem | time (s) | trainable |" in render.comparison_markdown(
        doc
    )
    assert "| target | target | 0.250 | - | - |" in render.comparison_markdown(doc)


def test_diffusion_table():
    doc = {
        "columns": [
            "unlearning_accuracy",
            "in_domain_retain_accuracy",
            "cross_domain_retain_accuracy",
            "fid",
            "kid",
        ],
        "rows": [
            {
                "name": "original",
                "unlearning_accuracy": 0.1,
                "in_domain_retain_accuracy": 0.95,
                "cross_domain_retain_accuracy": 0.9,
                "fid": 12.3,
                "kid": 0.0123,
                "train_s": None,
            },
            {
                "name": "uce",
                "unlearning_accuracy": 0.8,
                "in_domain_retain_accuracy": None,
                "cross_domain_retain_accuracy": 0.9,
                "fid": 12.3,
                "kid": 0.0123,
                "train_s": 3.4,
            },
        ],
    }
    assert render.diffusion_markdown(doc) == (
        "| model | UA | IRA | CRA | FID | KID | erase s |\n|---|---|---|---|---|---|---|\n"
        "| original | 0.10 | 0.95 | 0.90 | 12.30 | 0.012 | - |\n"
        "| uce | 0.80 | - | 0.90 | 12.30 | 0.012 | 3 |\n"
    )


def test_the_recipes_render_through_reporting():
    from obliviate.recipes import diffusion, tofu

    assert tofu.comparison_markdown is render.comparison_markdown
    assert diffusion.comparison_markdown is render.diffusion_markdown


def test_tuned_rows_are_explained_under_the_table():
    doc = {
        **QA_DOC,
        "tuned": {
            "trials": 4,
            "objective": "oracle",
            "methods": {
                "npo": {
                    "run": "tuned/npo/trials/0002",
                    "trial": 2,
                    "params": {"train.lr": 0.000123456, "train.epochs": 8},
                    "feasible": True,
                },
                "graddiff": {
                    "run": "tuned/graddiff/trials/0000",
                    "trial": 0,
                    "params": {},
                    "feasible": False,
                },
            },
        },
    }
    text = render.comparison_markdown(doc)
    assert (
        "\n\nTuned rows: the trial a sweep of 4 trials per method selected (objective oracle); "
        "`!` = no trial met the objective's constraints.\n"
        "- npo: `tuned/npo/trials/0002`: train.lr=0.000123, train.epochs=8\n"
        "- graddiff !: `tuned/graddiff/trials/0000`: the preset\n"
    ) in text
    assert "Tuned rows" not in render.comparison_markdown(QA_DOC)


def test_tuned_notes_compare_the_two_selections() -> None:
    metrics = {"forget_quality": 0.25, "model_utility": 0.5, "retain_prob": 0.9}
    npo = {"run": "tuned/npo/trials/0002", "trial": 2, "params": {}, "feasible": True}
    tuned = {
        "trials": 4,
        "objective": "oracle",
        "compare": "mia",
        "methods": {
            "npo": {
                **npo,
                "metrics": metrics,
                "compare": {
                    **npo,
                    "trial": 3,
                    "feasible": False,
                    "metrics": {"model_utility": 0.4},
                },
            },
            "ga": {**npo, "run": "tuned/ga/trials/0001", "trial": 1, "metrics": metrics},
        },
    }
    lines = render.tuned_notes(tuned)
    at = lines.index(
        "Selected by oracle and by mia among the same trials of each method "
        "(`!` = misses that objective's constraints):"
    )
    assert lines[at + 2 :] == [
        "| method | oracle: trial | FQ | MU | retain prob | mia: trial | FQ | MU | retain prob |",
        "|---|---|---|---|---|---|---|---|---|",
        "| npo | 2 | 0.250 | 0.500 | 0.900 | 3 ! | - | 0.400 | - |",
        "| ga | 1 | 0.250 | 0.500 | 0.900 | - | - | - | - |",
    ]
    assert not any("mia" in line for line in render.tuned_notes({**tuned, "compare": None}))
