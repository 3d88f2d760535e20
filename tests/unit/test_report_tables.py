"""Hand-computed checks of the reporting table logic (formatting, best cells, deltas)."""

from __future__ import annotations

from pathlib import Path

import pytest

from obliviate.reporting.tables import (
    Goal,
    best_cells,
    best_indices,
    display_names,
    format_delta,
    format_seconds,
    format_value,
    goal_of,
    goal_text,
    headline_metrics,
    leaderboard,
    metric_deltas,
    most_changed,
    sample_deltas,
    split_means,
    to_csv,
    to_markdown,
)
from obliviate.runs import Metric, Run


def run(
    name: str,
    role: str = "unlearned",
    group: str | None = "g",
    timing=None,
    **metrics: tuple[float | None, str],
) -> Run:
    return Run(
        path=Path(f"/r/{group}/{name}"),
        name=name,
        role=role,
        method=None if role != "unlearned" else name,
        benchmark="b",
        split="s",
        metrics={k: Metric(v, d) for k, (v, d) in metrics.items()},
        timing=timing or {},
        info={"seed": 0},
        group=group,
    )


@pytest.mark.parametrize(
    "value, text",
    [
        (None, "—"),
        (3, "3"),
        (2100000, "2,100,000"),
        (0.0, "0"),
        (0.012, "0.012"),
        (0.123456, "0.1235"),
        (-12.0, "-12"),
        (1.5e-20, "1.50e-20"),
        (123456.7, "123,457"),
        (float("nan"), "NaN"),
        (float("inf"), "∞"),
        (True, "True"),
        ("x", "x"),
    ],
)
def test_format_value(value, text):
    assert format_value(value) == text


def test_format_delta_and_seconds():
    assert format_delta(0.25) == "+0.25"
    assert format_delta(-3.4e-5) == "−3.40e-05"
    assert format_delta(0) == "0"
    assert format_delta(None) == "—"
    assert format_seconds(21.5) == "21.5 s"
    assert format_seconds(96.2) == "1 min 36 s"
    assert format_seconds(3599.7) == "1 h 00 min"  # rounds up without a "60 s"
    assert format_seconds(3725) == "1 h 02 min"
    assert format_seconds(None) == "—"


def test_best_indices_directions_ties_and_missing():
    vals = [0.2, None, 0.9, float("nan"), 0.9]
    assert best_indices(vals, Goal("higher")) == {2, 4}  # ties both win
    assert best_indices(vals, Goal("lower")) == {0}
    assert best_indices([-12.0, 3.0, -2.0], Goal("zero")) == {2}  # |−2| is closest to 0
    assert best_indices([0.1, 0.62, 0.45, 0.9], Goal("lower", ideal=0.5)) == {2}  # |0.45−0.5|
    assert best_indices([None, float("nan")], Goal("higher")) == set()
    assert best_indices([1.0, 2.0], None) == set()


def test_best_cells_ignores_references_and_mia_auc():
    runs = [
        run("target", "target", forget_quality=(1e-5, "higher"), mia_loss_auc=(1.0, "zero")),
        run("retain", "retain", forget_quality=(1.0, "higher"), mia_loss_auc=(0.5, "zero")),
        run("ga", forget_quality=(1e-3, "higher"), mia_loss_auc=(0.0, "zero")),
        run("npo", forget_quality=(0.4, "higher"), mia_loss_auc=(0.6, "zero")),
    ]
    best = best_cells(runs, ["forget_quality", "mia_loss_auc"])
    assert best["forget_quality"] == {3}  # retain's 1.0 is a reference, not a winner
    assert best["mia_loss_auc"] == set()  # no ideal given: not ranked (0.0 is not "best")
    assert goal_of(runs, "mia_loss_auc") is None
    assert goal_text(runs, "mia_loss_auc").startswith("no best value")
    assert best_cells(runs[:3], ["forget_quality"])["forget_quality"] == set()  # one contestant


def test_ideal_in_metrics_json_ranks_mia_auc():
    runs = [run(n) for n in ("ga", "npo")]
    runs[0].metrics["mia_loss_auc"] = Metric(0.05, "lower", ideal=0.5)
    runs[1].metrics["mia_loss_auc"] = Metric(0.7, "lower", ideal=0.5)
    assert goal_of(runs, "mia_loss_auc") == Goal("lower", 0.5)
    assert goal_text(runs, "mia_loss_auc") == "closest to 0.5 is best"
    assert best_cells(runs, ["mia_loss_auc"])["mia_loss_auc"] == {1}
    assert goal_of(runs, "train_s") == Goal("lower") and goal_of(runs, "missing") is None


def test_headline_metrics_text_diffusion_and_fallback():
    text = [
        run(
            "a",
            forget_rouge=(0.1, "lower"),
            model_utility=(0.5, "higher"),
            retain_prob=(0.5, "higher"),
        )
    ]
    assert headline_metrics(text) == ["model_utility", "forget_rouge"]
    diff = [run("e", fid=(20.0, "lower"), unlearning_accuracy=(0.9, "higher"))]
    assert headline_metrics(diff) == ["unlearning_accuracy", "fid"]
    other = [run("c", zeta=(1.0, "higher"), alpha=(2.0, "lower"))]
    assert headline_metrics(other) == ["alpha", "zeta"]


def test_display_names_prefix_group_only_on_clash():
    runs = [run("npo", group="g1"), run("npo", group="g2"), run("ga", group="g1")]
    assert display_names(runs) == ["g1/npo", "g2/npo", "ga"]


def _board_runs() -> list[Run]:
    return [
        run(
            "npo", forget_quality=(0.4, "higher"), privleak=(-5.0, "zero"), timing={"train_s": 30.0}
        ),
        run("retain", "retain", forget_quality=(1.0, "higher"), privleak=(0.0, "zero")),
        run(
            "ga", forget_quality=(None, "higher"), privleak=(80.0, "zero"), timing={"train_s": 20.0}
        ),
        run("simnpo", forget_quality=(0.7, "higher"), privleak=(12.5, "zero")),
        run("target", "target", forget_quality=(1e-5, "higher"), privleak=(-99.8, "zero")),
    ]


def test_leaderboard_order_references_first_then_ranked():
    board = leaderboard(_board_runs())
    assert [r["run"] for r in board.rows] == ["target", "retain", "simnpo", "npo", "ga"]
    assert board.columns == [
        "run",
        "role",
        "method",
        "forget_quality",
        "privleak",
        "train_s",
        "trainable_params",
        "seed",
        "path",
    ]
    assert board.best["forget_quality"] == {2}
    assert board.best["privleak"] == {3}  # npo's −5 is closest to 0
    assert board.best["train_s"] == {4}  # ga 20 s; simnpo has no timing


def test_leaderboard_markdown_and_csv_exact():
    board = leaderboard(_board_runs()[:3])  # npo, retain, ga
    md = to_markdown(board)
    assert md.splitlines() == [
        (
            "| run | role | method | Forget quality | PrivLeak (%) | Train time (s) "
            "| trainable_params | seed |"
        ),
        "| --- | --- | --- | ---: | ---: | ---: | --- | --- |",
        "| retain | retain |  | 1 | 0 | — | — | 0 |",
        "| npo | unlearned | npo | **0.4** | **-5** | 30 | — | 0 |",
        "| ga | unlearned | ga | — | 80 | **20** | — | 0 |",
    ]
    lines = to_csv(board).splitlines()
    assert lines[0] == (
        "run,role,method,forget_quality,privleak,train_s,trainable_params,seed,path"
    )
    assert lines[1] == "retain,retain,,1.0,0.0,,,0,/r/g/retain"
    assert lines[3] == "ga,unlearned,ga,,80.0,20.0,,0,/r/g/ga"


def test_markdown_escapes_pipes():
    r = run("a|b", forget_quality=(0.5, "higher"))
    assert "| a\\|b |" in to_markdown(leaderboard([r]))


def test_metric_deltas_verdicts():
    a = run(
        "a",
        forget_quality=(0.1, "higher"),
        forget_rouge=(0.4, "lower"),
        privleak=(-10.0, "zero"),
        mia_loss_auc=(0.9, "zero"),
        timing={"train_s": 10.0},
    )
    a.metrics["mia_zlib_auc"] = Metric(0.9, "lower", ideal=0.5)
    b = run(
        "b",
        forget_quality=(0.3, "higher"),
        forget_rouge=(0.5, "lower"),
        privleak=(5.0, "zero"),
        timing={"train_s": 10.0},
    )
    b.metrics["mia_zlib_auc"] = Metric(0.2, "lower", ideal=0.5)
    d = {x.metric: x for x in metric_deltas(a, b)}
    assert d["forget_quality"].delta == pytest.approx(0.2)
    assert d["forget_quality"].verdict == "better"
    assert d["forget_rouge"].verdict == "worse"  # lower is better, it rose
    assert d["privleak"].delta == 15.0 and d["privleak"].verdict == "better"  # |5| < |−10|
    assert d["mia_loss_auc"].b is None and d["mia_loss_auc"].verdict is None
    assert d["mia_loss_auc"].goal is None
    assert d["mia_zlib_auc"].verdict == "better"  # |0.2 − 0.5| < |0.9 − 0.5|
    assert d["train_s"].verdict == "same"
    assert list(d)[-1] == "train_s"


A = [
    {
        "split": "forget",
        "index": 0,
        "question": "q0",
        "answer": "a0",
        "generation": "a0",
        "rouge_l_recall": 1.0,
        "prob": 0.9,
    },
    {
        "split": "forget",
        "index": 1,
        "question": "q1",
        "answer": "a1",
        "generation": "x",
        "rouge_l_recall": 0.5,
        "prob": float("nan"),
    },
    {
        "split": "forget",
        "index": 2,
        "question": "q2",
        "answer": "a2",
        "generation": "same",
        "rouge_l_recall": 0.2,
        "prob": 0.1,
    },
    {
        "split": "retain",
        "index": 0,
        "question": "r0",
        "answer": "b0",
        "generation": "b0",
        "rouge_l_recall": 1.0,
        "prob": 0.8,
    },
    {"split": "holdout", "index": 0, "question": "h0", "answer": "c0", "mia_loss": 2.0},
]
B = [
    {"split": "forget", "index": 0, "generation": "nothing", "rouge_l_recall": 0.1, "prob": 0.2},
    {"split": "forget", "index": 1, "generation": "y", "rouge_l_recall": 0.5, "prob": 0.3},
    {"split": "forget", "index": 2, "generation": "same ", "rouge_l_recall": 0.2, "prob": 0.1},
    {"split": "retain", "index": 0, "generation": "b0", "rouge_l_recall": 0.7, "prob": 0.6},
    {"split": "retain", "index": 9, "generation": "z", "rouge_l_recall": 0.0, "prob": 0.0},
]


def test_sample_deltas_match_by_split_and_index():
    comp = sample_deltas(A, B)
    assert comp.keys == ["rouge_l_recall", "prob"]  # mia_loss only in A
    assert comp.primary == "rouge_l_recall"
    assert (comp.only_a, comp.only_b) == (1, 1)  # holdout 0 / retain 9
    rows = {(r.split, r.index): r for r in comp.rows}
    assert rows[("forget", 0)].question == "q0"  # taken from A when B has none
    assert rows[("forget", 0)].delta("rouge_l_recall") == pytest.approx(-0.9)
    assert rows[("forget", 1)].values["prob"] == (None, 0.3)  # NaN -> None
    assert rows[("forget", 1)].delta("prob") is None
    assert not rows[("forget", 2)].generation_changed  # whitespace only
    assert rows[("forget", 1)].generation_changed


def test_most_changed_ranking_ties_and_unchanged():
    comp = sample_deltas(A, B)
    top = most_changed(comp, n=10)
    # |Δ|: forget0 0.9, retain0 0.3, forget1 0 but generation changed; forget2 unchanged
    assert [(r.split, r.index) for r in top] == [("forget", 0), ("retain", 0), ("forget", 1)]
    assert [(r.split, r.index) for r in most_changed(comp, n=1)] == [("forget", 0)]
    by_prob = most_changed(comp, n=2, key="prob")
    assert [(r.split, r.index) for r in by_prob] == [("forget", 0), ("retain", 0)]


def test_split_means_hand_values():
    comp = sample_deltas(A, B)
    m = {(x["split"], x["key"]): x for x in split_means(comp)}
    f = m[("forget", "rouge_l_recall")]
    assert f["n"] == 3 and f["generations_changed"] == 2
    assert f["mean_a"] == pytest.approx((1.0 + 0.5 + 0.2) / 3)
    assert f["mean_b"] == pytest.approx((0.1 + 0.5 + 0.2) / 3)
    assert f["mean_delta"] == pytest.approx(-0.9 / 3)
    p = m[("forget", "prob")]  # A's NaN left out of A's mean and of the deltas
    assert p["mean_a"] == pytest.approx(0.5)
    assert p["mean_delta"] == pytest.approx(((0.2 - 0.9) + 0.0) / 2)


def test_sample_deltas_empty():
    comp = sample_deltas([], [])
    assert comp.rows == [] and comp.primary is None and most_changed(comp) == []
    assert split_means(comp) == []
