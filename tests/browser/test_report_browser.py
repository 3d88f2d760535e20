"""Open the reports in headless Chromium: plots decode, tables render, the inline JS (search,
split filter, sorting) works, no script error or blocked request, and a screenshot is saved.

Needs Debian's ``chromium`` (``apt-get install -y chromium chromium-driver``). The page is
driven by a probe script appended to a copy of the report (the page's CSP allows inline
scripts); Chromium's ``--dump-dom`` returns the DOM after the load event, probe results
included. The screenshot goes to ``tests/artifacts/report-screenshot.png`` (or
``$OBLIVIATE_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from obliviate.reporting import write_comparison, write_leaderboard, write_report
from obliviate.runs import load_run

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "tests" / "fixtures" / "runs" / "demo"
SWEEP = REPO / "tests" / "fixtures" / "sweep" / "npo"
ARTIFACTS = Path(os.environ.get("OBLIVIATE_TEST_ARTIFACTS", REPO / "tests" / "artifacts"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="/usr/bin/chromium is absent: install it "
        "with apt-get install -y chromium chromium-driver",
    ),
]

# Runs after the report's own script, on load: records what rendered, then drives the page.
PROBE = """<script>
window.addEventListener('load', function () {
  var out = {ready: document.body.getAttribute('data-report-ready'), images: [], tables: {}};
  Array.prototype.forEach.call(document.images, function (im) {
    out.images.push([im.naturalWidth, im.naturalHeight, im.getBoundingClientRect().width]);
  });
  document.querySelectorAll('table[id]').forEach(function (t) {
    out.tables[t.id] = t.tBodies[0].rows.length;
  });
  function visible(id) {
    var n = 0, rows = document.getElementById(id).tBodies[0].rows;
    for (var i = 0; i < rows.length; i++) { if (rows[i].style.display !== 'none') { n++; } }
    return n;
  }
  function firstColumn(id) {
    return Array.prototype.map.call(document.getElementById(id).tBodies[0].rows, function (r) {
      return r.cells[0].childNodes[0].textContent.trim();
    });
  }
  var bar = document.querySelector('.filters[data-for]');
  if (bar) {
    var id = bar.getAttribute('data-for'), input = bar.querySelector('input');
    var select = bar.querySelector('select');
    input.value = 'KAZAKHSTAN';
    input.dispatchEvent(new Event('input'));
    out.search = visible(id);
    out.count_text = bar.querySelector('.count').textContent;
    input.value = '';
    input.dispatchEvent(new Event('input'));
    if (select) {
      select.value = 'retain';
      select.dispatchEvent(new Event('change'));
      out.split_retain = visible(id);
      select.value = '';
      select.dispatchEvent(new Event('change'));
    }
    out.after_clear = visible(id);
  }
  var sortable = document.querySelector('table.sortable[id="%(sort_table)s"]');
  if (sortable) {
    var th = Array.prototype.filter.call(sortable.tHead.rows[0].cells, function (c) {
      return c.textContent.indexOf('%(sort_header)s') === 0;
    })[0];
    th.click();
    out.sorted_asc = firstColumn(sortable.id);
    th.click();
    out.sorted_desc = firstColumn(sortable.id);
    out.aria = th.getAttribute('aria-sort');
  }
  document.body.setAttribute('data-probe', JSON.stringify(out));
});
</script>"""


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={profile}",
        *args,
    ]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=180)
    shutil.rmtree(profile, ignore_errors=True)
    return proc


def _probe(tmp_path: Path, page: Path, sort_table: str, sort_header: str) -> tuple[dict, str]:
    probed = page.with_name("probe-" + page.name)
    probe = PROBE % {"sort_table": sort_table, "sort_header": sort_header}
    probed.write_text(
        page.read_text(encoding="utf-8").replace("</body>", probe + "</body>"), encoding="utf-8"
    )
    proc = _chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    m = re.search(r'data-probe="([^"]*)"', proc.stdout)
    assert m, f"the probe did not run; chromium said:\n{proc.stderr[-3000:]}"
    return json.loads(html.unescape(m.group(1))), proc.stderr


def _assert_clean_console(stderr: str) -> None:
    assert "Uncaught" not in stderr, stderr  # a JS error on the page
    assert "Refused to" not in stderr, stderr  # something blocked by the CSP (e.g. a fetch)


def _assert_plots_rendered(result: dict, count: int) -> None:
    assert result["ready"] == "1"
    assert len(result["images"]) == count
    for width, height, shown in result["images"]:
        assert width > 50 and height > 50 and shown > 50  # decoded and laid out


@pytest.fixture(scope="module")
def group_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report([DEMO], tmp_path_factory.mktemp("browser") / "report.html")


def test_group_report_in_chromium(tmp_path: Path, group_report: Path):
    page = group_report
    result, stderr = _probe(tmp_path, page, "headline", "Forget quality")
    _assert_clean_console(stderr)
    _assert_plots_rendered(result, 4)
    assert result["tables"]["headline"] == 4 and result["tables"]["samples-table"] == 16
    # search: rows whose question, answer or any generation mentions Kazakhstan
    runs = [load_run(DEMO / n) for n in ("target", "retain", "graddiff", "npo")]
    hits = {
        (s["split"], s["index"])
        for r in runs
        for s in r.samples
        if any(
            "kazakhstan" in (s.get(k) or "").lower() for k in ("question", "answer", "generation")
        )
    }
    assert result["search"] == len(hits) > 0
    assert result["count_text"] == f"{len(hits)} of 16 rows"
    assert result["split_retain"] == sum(1 for s in runs[0].samples if s["split"] == "retain")
    assert result["after_clear"] == 16
    # sorting the headline by forget quality, ascending then descending
    by_fq = sorted(runs, key=lambda r: r.value("forget_quality"))
    assert result["sorted_asc"] == [r.name for r in by_fq]
    assert result["sorted_desc"] == [r.name for r in reversed(by_fq)]
    assert result["aria"] == "descending"


def test_comparison_and_leaderboard_in_chromium(tmp_path: Path):
    cmp_page = write_comparison(DEMO / "graddiff", DEMO / "npo", tmp_path / "cmp.html")
    result, stderr = _probe(tmp_path, cmp_page, "metric-deltas", "Metric")
    _assert_clean_console(stderr)
    _assert_plots_rendered(result, 3)  # paired scatter, truth ratio, training curves
    assert result["tables"]["changed-table"] == 10
    assert result["tables"]["compare-samples"] == 16
    assert result["sorted_asc"][0] == "Eval time (s)"  # alphabetical by label
    files = write_leaderboard([DEMO], tmp_path / "lb")
    result, stderr = _probe(tmp_path, files["html"], "leaderboard-table", "Model utility")
    _assert_clean_console(stderr)
    _assert_plots_rendered(result, 1)
    mu = {
        n: load_run(DEMO / n).value("model_utility")
        for n in ("target", "retain", "graddiff", "npo")
    }
    assert result["sorted_asc"] == sorted(mu, key=mu.get)


def test_sweep_page_in_chromium(tmp_path: Path):
    from obliviate.reporting.sweep_page import write_sweep_report

    page = write_sweep_report(SWEEP, tmp_path / "sweep.html")
    result, stderr = _probe(tmp_path, page, "sweep-trials", "train.lr")
    _assert_clean_console(stderr)
    _assert_plots_rendered(result, 1)  # the forget/utility plane
    assert result["tables"]["sweep-trials"] == 8
    assert result["tables"]["sweep-importance"] == 2
    lr = {
        t["number"]: t["params"]["train.lr"]
        for t in json.loads((SWEEP / "summary.json").read_text())["trials"]
    }
    assert result["sorted_asc"] == [str(n) for n in sorted(lr, key=lr.get)]


def test_screenshot(tmp_path: Path, group_report: Path):
    from PIL import Image

    page = group_report
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report-screenshot.png"
    shot.unlink(missing_ok=True)
    proc = _chromium(
        tmp_path,
        "--window-size=1400,2000",
        f"--screenshot={shot}",
        "--virtual-time-budget=10000",
        page.as_uri(),
    )
    assert shot.is_file(), proc.stderr[-3000:]
    with Image.open(shot) as im:
        assert im.size == (1400, 2000)
        colours = im.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 200  # text, tables and plots, not a blank page
