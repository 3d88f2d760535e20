"""Methods run with several seeds in the comparison table and the leaderboard: ranked by the
mean, shown as mean ± sd, rows within noise of the best marked, sd/CI columns in the CSV."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from obliviate.recipes.seeds import aggregate_doc, seeds_markdown
from obliviate.recipes.tofu import columns_for, comparison_doc, rank_by_mean
from obliviate.reporting.render import comparison_markdown
from obliviate.reporting.tables import leaderboard, to_csv, to_markdown
from obliviate.runs import load_run


def _seed_doc(seed: int, fq: float | None, mu: float) -> dict:
    metrics = {"model_utility": {"value": mu, "direction": "higher", "version": 1}}
    if fq is not None:
        metrics["forget_quality"] = {"value": fq, "direction": "higher", "version": 1}
    return {
        "name": f"seed-{seed}",
        "role": "unlearned",
        "benchmark": "builtin",
        "split": "forget10",
        "metrics": metrics,
        "unavailable": {} if fq is not None else {"forget_quality": "no retain model"},
        "timing": {"train_s": 10.0 + seed},
        "trainable_params": 100,
        "seed": seed,
    }


def _aggregate(name: str, fqs: list[float], mus: list[float]) -> dict:
    docs = [_seed_doc(i, fq, mu) for i, (fq, mu) in enumerate(zip(fqs, mus))]
    return aggregate_doc(docs, list(range(len(docs))), {"name": name, "role": "unlearned"})


def test_aggregate_document_is_the_statistics_of_the_seeds() -> None:
    doc = _aggregate("npo", [0.2, 0.6], [0.5, 0.7])
    fq = doc["metrics"]["forget_quality"]
    assert fq["value"] == pytest.approx(0.4) and fq["direction"] == "higher"
    assert fq["sd"] == pytest.approx(0.08**0.5)
    assert (fq["ci_low"], fq["ci_high"], fq["n"]) == (pytest.approx(0.2), pytest.approx(0.6), 2)
    assert fq["per_seed"] == [0.2, 0.6]
    assert doc["seeds"] == [0, 1] and doc["runs"] == ["seed-0", "seed-1"]
    assert doc["timing"] == {"train_s": 10.5} and doc["split"] == "forget10"
    table = seeds_markdown(doc)
    assert "| forget_quality | 0.4 ± 0.2828 | [0.2, 0.6] | 2 |" in table
    assert table.startswith("seeds 0, 1\n")


def test_a_metric_missing_in_one_seed_keeps_the_others() -> None:
    docs = [_seed_doc(0, 0.3, 0.5), _seed_doc(1, None, 0.7)]
    doc = aggregate_doc(docs, [0, 1], {"name": "x", "role": "unlearned"})
    fq = doc["metrics"]["forget_quality"]
    assert (fq["n"], fq["value"], fq["sd"], fq["per_seed"]) == (1, 0.3, None, [0.3, None])
    assert "forget_quality" not in doc["unavailable"]
    assert "| forget_quality | 0.3 (n=1) | — | 1 |" in seeds_markdown(doc)


def test_the_aggregate_loads_as_a_run_and_its_spread_reaches_the_leaderboard(
    tmp_path: Path,
) -> None:
    agg = _aggregate("npo", [0.2, 0.6], [0.5, 0.7])
    (tmp_path / "npo").mkdir()
    (tmp_path / "npo" / "metrics.json").write_text(json.dumps(agg))
    single = {**_seed_doc(0, 0.9, 0.4), "name": "ga"}
    (tmp_path / "ga").mkdir()
    (tmp_path / "ga" / "metrics.json").write_text(json.dumps(single))
    runs = [load_run(tmp_path / "npo"), load_run(tmp_path / "ga")]
    assert runs[0].value("forget_quality") == pytest.approx(0.4)
    board = leaderboard(runs)
    assert [r["run"] for r in board.rows] == ["ga", "npo"]
    md = to_markdown(board)
    assert "0.4 ± 0.2828" in md and "0.6 ± 0.1414" in md
    assert "| 0,1 |" in md  # the seeds
    lines = list(csv.reader(io.StringIO(to_csv(board))))
    head = lines[0]
    assert head[-8:] == [
        "forget_quality_sd",
        "forget_quality_ci_low",
        "forget_quality_ci_high",
        "forget_quality_n",
        "model_utility_sd",
        "model_utility_ci_low",
        "model_utility_ci_high",
        "model_utility_n",
    ]
    npo = dict(zip(head, lines[2]))
    assert npo["seed"] == "0,1"
    assert float(npo["forget_quality_sd"]) == pytest.approx(0.08**0.5)
    assert float(npo["forget_quality_ci_low"]) == pytest.approx(0.2)
    assert npo["forget_quality_n"] == "2"
    ga = dict(zip(head, lines[1]))
    assert ga["forget_quality_sd"] == "" and ga["forget_quality"] == "0.9"


def test_comparison_ranks_by_mean_and_marks_rows_within_noise() -> None:
    results = {
        "retain": _seed_doc(0, 1.0, 0.6),
        "target": _seed_doc(0, 1e-4, 0.6),
        "ga": _aggregate("ga", [0.10, 0.12], [0.5, 0.5]),  # CI [0.10, 0.12]: disjoint
        "npo": _aggregate("npo", [0.5, 0.7], [0.5, 0.5]),  # CI [0.5, 0.7]: the best
        "simnpo": _aggregate("simnpo", [0.4, 0.55], [0.5, 0.5]),  # CI [0.4, 0.55]: overlaps
    }
    roles = {"retain": "retain", "target": "target", "ga": "unlearned"}
    roles |= {"npo": "unlearned", "simnpo": "unlearned"}
    cols = columns_for(None)
    doc = rank_by_mean(comparison_doc(results, roles, {}, {}, "builtin", "forget10", cols), cols)
    assert doc["runs"] == ["retain", "target", "npo", "simnpo", "ga"]
    assert doc["rank_by"] == "forget_quality"
    by = {r["name"]: r for r in doc["rows"]}
    assert by["npo"]["best"] is True
    assert (by["simnpo"]["within_noise"], by["ga"]["within_noise"]) == (True, False)
    assert by["npo"]["stats"]["forget_quality"]["ci_high"] == pytest.approx(0.7)
    assert "stats" not in by["target"]
    md = comparison_markdown(doc)
    assert "| npo | unlearned | 0.600 ± 0.141 |" in md
    rows = {line.split(" | ")[0].strip("| "): line for line in md.splitlines() if "|" in line}
    assert rows["npo"].endswith("| best |")
    assert rows["simnpo"].endswith("| within noise |")
    assert rows["ga"].endswith("| worse |")
    assert "ranked by their mean FQ" in md
    assert json.loads(json.dumps(doc)) == doc  # comparison.json carries the stats


def test_group_report_headline_shows_mean_and_sd(tmp_path: Path) -> None:
    from obliviate.reporting import write_report

    for name, doc in (
        ("npo", _aggregate("npo", [0.2, 0.6], [0.5, 0.7])),
        ("ga", {**_seed_doc(0, 0.9, 0.4), "name": "ga"}),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(doc))
    page = write_report([tmp_path]).read_text()
    headline = page[
        page.index('id="headline"') : page.index("</table>", page.index('id="headline"'))
    ]
    assert "0.4 ± 0.2828" in headline and "0.6 ± 0.1414" in headline
    assert "0.9 ±" not in headline  # a single run keeps its plain value
