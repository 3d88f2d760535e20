"""HTML helpers (escaping, cells, page) and plot helpers (bins, colours, PNG output)."""

from __future__ import annotations

import base64
import math
import re

import pytest

from obliviate.reporting import html as H
from obliviate.reporting import plots


def test_esc_and_attrs():
    assert H.esc('<script>"x" & y</script>') == "&lt;script&gt;&quot;x&quot; &amp; y&lt;/script&gt;"
    assert H.esc(None) == ""
    assert H.attrs(class_="a", data_v="1.0", title=None) == ' class="a" data-v="1.0"'


def test_td_sort_values_and_alignment():
    assert H.td("x") == "<td>x</td>"  # text cell: no data-v, sorted by content
    assert H.td("0.5", v=0.5) == '<td class="num" data-v="0.5">0.5</td>'
    assert H.td("—", v=None) == '<td class="num" data-v="">—</td>'  # missing: sorted last
    assert H.td("—", v=float("nan")) == '<td class="num" data-v="">—</td>'
    assert H.td("g", v=0.3, cls="gen", num=False) == '<td class="gen" data-v="0.3">g</td>'
    assert H.sort_value(True) == "" and H.sort_value(3) == "3.0"


def test_table_and_filter_bar():
    t = H.table([H.th("A")], [H.tr([H.td("1", v=1)], split="forget")], id_="t")
    assert t == (
        '<table id="t" class="sortable"><thead><tr><th>A</th></tr></thead><tbody>'
        '<tr data-split="forget"><td class="num" data-v="1.0">1</td></tr></tbody></table>'
    )
    bar = H.filter_bar("t", ["forget", "retain"])
    assert 'data-for="t"' in bar and '<option value="retain">' in bar
    assert "<select" not in H.filter_bar("t", ["forget"])  # one split: no selector


def test_page_is_self_contained():
    page = H.page("T <1>", "sub", [("a", "Sec", "<p>body</p>")], created="now")
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>T &lt;1&gt;</title>" in page
    assert "default-src 'none'" in page  # CSP: the browser may fetch nothing
    assert '<a href="#a">Sec</a>' in page and '<section id="a">' in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)


def test_finite_and_bins():
    assert plots.finite([1, None, float("nan"), float("inf"), "2", True, 2.5]) == [1.0, 2.5]
    bins = plots.log_bins([0.1, 10.0, -1.0, 0.0], n=4)
    assert bins[0] == pytest.approx(0.1) and bins[-1] == pytest.approx(10.0)
    assert bins[2] == pytest.approx(1.0)  # log-spaced: geometric middle
    narrow = plots.log_bins([2.0, 2.0], n=2)  # widened to one decade around the value
    assert math.log10(narrow[-1] / narrow[0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive"):
        plots.log_bins([0.0, -1.0])
    assert plots.linear_bins([3.0, 3.0], n=2) == [2.5, 3.0, 3.5]
    assert plots.linear_bins([0.0, 1.0], n=4) == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_bin_count():
    assert [plots.bin_count(n) for n in (0, 6, 16, 100, 400)] == [6, 6, 8, 20, 30]


def test_colours_by_role():
    assert plots.colours(["target", "unlearned", "retain", "unlearned"]) == [
        "#d62728",
        plots.PALETTE[0],
        "#2ca02c",
        plots.PALETTE[1],
    ]


def _png(uri: str) -> bytes:
    assert uri.startswith("data:image/png;base64,")
    data = base64.b64decode(uri.split(",", 1)[1])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return data


def test_plots_render_png_and_none_when_empty():
    pts = [
        plots.Point("target", "target", 1e-5, 0.8, "#d62728"),
        plots.Point("ga", "unlearned", 0.0, 0.1, "#1f77b4"),
    ]  # 0 on a log axis: drawn at edge
    _png(plots.tradeoff_scatter(pts, "FQ", "MU", "higher", "higher", log_x=True))
    assert plots.tradeoff_scatter([], "x", "y", None, None) is None
    assert plots.histograms([plots.HistPanel("a", [], "#000")], "x", "ref") is None
    assert plots.mia_grid([], ["LOSS"], ["a"]) is None
    assert plots.training_curves({"loss": []}) is None
    assert plots.paired_scatter({"forget": []}, "k", "a", "b") is None


def test_label_offsets_stack_coinciding_points():
    # three points on top of each other, one far away: labels 0, 11, 22 points up; far one 0
    assert plots.label_offsets([0.0, 0.0, 0.001, 1.0], [0.5, 0.5, 0.5, 0.9]) == [0, 11, 22, 0]
    assert plots.label_offsets([1.0], [1.0]) == [0]


def test_training_section_keeps_fine_tuning_logs_apart():
    from pathlib import Path

    from obliviate.reporting.report import training_section
    from obliviate.runs import Run

    def run(name: str, role: str, steps: int) -> Run:
        log = [{"step": s, "loss": 1.0 / s, "lr": 1e-4} for s in range(1, steps + 1)]
        return Run(Path(name), name, role, None, "b", "s", {}, {}, {}, train_log=log)

    both = training_section(
        [run("target", "target", 100), run("ga", "unlearned", 5)],
        ["target", "ga"],
        ["#d62728", "#1f77b4"],
    )
    assert both.count("<img") == 2
    assert both.index("training curves") < both.index("<details><summary>Fine-tuning curves")
    only_refs = training_section([run("target", "target", 100)], ["target"], ["#d62728"])
    assert only_refs.count("<img") == 1 and "<details>" not in only_refs
    assert training_section([run("x", "unlearned", 0)], ["x"], ["#000"]) == ""
