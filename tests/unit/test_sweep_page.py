"""The sweep page (``obliviate report STUDY``): Pareto front of the forget/utility plane, eta
squared against hand-computed values, Optuna's importance when ``study.db`` exists, the page
itself on the synthetic study of tests/fixtures/sweep."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from obliviate.cli import main
from obliviate.reporting.sweep_page import (
    eta_squared,
    front_of,
    importances,
    is_sweep_dir,
    plane,
    write_sweep_report,
)

STUDY = Path(__file__).resolve().parents[1] / "fixtures" / "sweep" / "npo"


def _t(number: int, value: float, **params: object) -> dict:
    return {"number": number, "state": "COMPLETE", "params": params, "values": [value]}


def test_eta_squared_by_value_groups() -> None:
    # groups a: {1, 3} (mean 2), b: {5, 7} (mean 6); grand mean 4
    # total = 9 + 1 + 1 + 9 = 20; between = 2 * 4 + 2 * 4 = 16
    trials = [_t(0, 1, p="a"), _t(1, 3, p="a"), _t(2, 5, p="b"), _t(3, 7, p="b")]
    assert eta_squared(trials, "p") == pytest.approx(0.8)


def test_eta_squared_by_rank_groups_for_many_numeric_values() -> None:
    # six distinct values -> three rank groups {1, 2}, {3, 4}, {5, 6} of y = 0, 0, 1, 1, 5, 7
    ys = [0, 0, 1, 1, 5, 7]
    trials = [_t(i, y, lr=float(i + 1)) for i, y in enumerate(ys)]
    trials.append({"number": 9, "state": "FAIL", "params": {"lr": 9.0}, "values": None})
    mean = sum(ys) / 6  # 14 / 6
    total = sum((y - mean) ** 2 for y in ys)
    between = 2 * ((0 - mean) ** 2 + (1 - mean) ** 2 + (6 - mean) ** 2)
    assert eta_squared(trials, "lr") == pytest.approx(between / total)


def test_eta_squared_edge_cases() -> None:
    assert eta_squared([_t(0, 1.0, p=1)], "p") is None  # one trial
    assert eta_squared([_t(0, 2.0, p=1), _t(1, 2.0, p=2)], "p") == 0.0  # no variance
    assert eta_squared([_t(0, 2.0, p=1), _t(1, 3.0, q=2)], "p") is None


def test_front_of_the_plane() -> None:
    pts = [(0.1, 0.5), (0.2, 0.4), (0.05, 0.45), (0.2, 0.4), (0.3, 0.1)]
    assert front_of(pts, "higher", "higher") == [0, 1, 3, 4]  # (0.05, 0.45) is beaten by 0
    assert front_of(pts, "lower", "higher") == [0, 2]


def test_plane_picks_the_first_axes_the_trials_have() -> None:
    trials = [
        {"number": 0, "state": "COMPLETE", "metrics": {"forget_prob": 0.3, "retain_prob": 0.9}},
        {"number": 1, "state": "FAIL", "metrics": {}},
    ]
    x, y, log_x, have = plane(trials)
    assert (x, y, log_x, [t["number"] for t in have]) == ("forget_prob", "retain_prob", False, [0])
    with pytest.raises(ValueError, match="no finished trial"):
        plane(trials[1:])


def test_page_of_the_fixture_study(tmp_path: Path) -> None:
    assert is_sweep_dir(STUDY) and not is_sweep_dir(STUDY / "target")
    page = write_sweep_report(STUDY, tmp_path).read_text()
    assert page.count("data:image/png;base64,") == 1
    body = page[page.index('id="sweep-trials"') :]
    rows = re.findall(r"<tr><td[^>]*>(\d+)</td><td>(\w+)</td><td>(\w*)</td><td>(\w*)</td>", body)
    assert [r[0] for r in rows] == [str(i) for i in range(8)]
    assert {int(r[0]) for r in rows if r[3] == "yes"} == {0, 2, 4, 5}  # 1, 3 are dominated
    assert {int(r[0]) for r in rows if r[2] == "yes"} == {0}  # the selected trial
    assert "Eta squared" in page  # no study.db: the simple estimate
    assert re.search(r"<td>train\.lr</td><td class=\"num\"[^>]*>", page)


def test_optuna_importance_from_the_study_db(tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    import json

    study_dir = tmp_path / "study"
    shutil.copytree(STUDY, study_dir)
    summary = json.loads((study_dir / "summary.json").read_text())
    study = optuna.create_study(
        study_name="sweep", storage=f"sqlite:///{study_dir / 'study.db'}", direction="maximize"
    )
    dists = {
        "train.lr": optuna.distributions.FloatDistribution(1e-5, 1e-3, log=True),
        "alpha": optuna.distributions.FloatDistribution(0.5, 2.0),
    }
    for t in summary["trials"]:
        if t["state"] == "COMPLETE":
            study.add_trial(
                optuna.trial.create_trial(
                    params=t["params"], distributions=dists, value=t["values"][0]
                )
            )
    values, how = importances(study_dir, summary)
    assert set(values) == {"train.lr", "alpha"}
    assert sum(values.values()) == pytest.approx(1.0)
    assert "fANOVA" in how


def test_report_command_renders_a_sweep_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study_dir = tmp_path / "sweep-npo"
    shutil.copytree(STUDY, study_dir)
    assert main(["report", str(study_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(study_dir / "report.html")
    assert "Trials on the forget/utility plane" in (study_dir / "report.html").read_text()
