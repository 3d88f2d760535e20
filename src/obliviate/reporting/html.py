"""Self-contained HTML: the page skeleton, inline CSS and JS, and table/figure helpers.

Nothing is fetched at view time: the page's Content-Security-Policy forbids every network
request, scripts and styles are inline and images are ``data:`` URIs. All text from run
folders goes through :func:`esc`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

from obliviate import __version__

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

CSS = """
:root { --fg:#1d2330; --muted:#5f6b7a; --line:#d9dee5; --bg:#fff; --alt:#f6f8fa;
  --accent:#1f5fbf; --best:#dff3e4; --better:#137333; --worse:#b3261e; --hot:#fff1d6; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
  color:var(--fg); background:var(--bg); }
header.top { background:#16233b; color:#fff; padding:18px 32px 14px; }
header.top h1 { margin:0 0 4px; font-size:22px; font-weight:600; }
header.top .sub { color:#c5d0e3; font-size:13px; }
nav { position:sticky; top:0; z-index:5; background:#eef2f7; border-bottom:1px solid var(--line);
  padding:6px 32px; font-size:13px; }
nav a { color:var(--accent); text-decoration:none; margin-right:16px; white-space:nowrap; }
main { max-width:1320px; margin:0 auto; padding:8px 32px 48px; }
section { margin-top:26px; }
h2 { font-size:18px; margin:0 0 8px; padding-bottom:4px; border-bottom:2px solid var(--line); }
h3 { font-size:15px; margin:16px 0 6px; }
p.note, .note { color:var(--muted); font-size:12.5px; margin:4px 0 8px; }
.warn { background:#fdecea; border:1px solid #f4c7c3; color:#7a1c12; padding:8px 12px;
  border-radius:6px; margin:10px 0; }
table { border-collapse:collapse; font-size:13px; }
th, td { border-bottom:1px solid var(--line); padding:5px 9px; text-align:left;
  vertical-align:top; }
th { background:#f0f3f7; font-weight:600; white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
tbody tr:nth-child(even) { background:var(--alt); }
table.sortable th { cursor:pointer; user-select:none; }
table.sortable th::after { content:" \\2195"; color:#9aa5b4; font-size:11px; }
table.sortable th[aria-sort=ascending]::after { content:" \\25B2"; color:var(--accent); }
table.sortable th[aria-sort=descending]::after { content:" \\25BC"; color:var(--accent); }
td.best { background:var(--best); font-weight:700; }
tr.ref td { color:#4a5563; font-style:italic; }
.nowrap { white-space:nowrap; }
.role { white-space:nowrap; display:inline-block; font-size:11px; font-style:normal;
  padding:0 6px; border-radius:9px;
  background:#e3e8ef; color:#344054; margin-left:6px; }
.role.target { background:#fde2e1; color:#8a1c13; }
.role.retain { background:#dcf3e1; color:#14532d; }
.better { color:var(--better); font-weight:600; }
.worse { color:var(--worse); font-weight:600; }
tr.hot td { background:var(--hot); }
tr.hot td:first-child { box-shadow:inset 4px 0 0 #f29900; }
.scroll { max-height:70vh; overflow:auto; border:1px solid var(--line); border-radius:6px; }
.scroll thead th { position:sticky; top:0; z-index:1; }
.wide { overflow-x:auto; }
td.text { min-width:160px; max-width:360px; }
td.gen { min-width:180px; max-width:340px; font-size:12.5px; }
.score { display:block; color:var(--muted); font-size:11px; margin-top:2px; }
.filters { display:flex; gap:10px; align-items:center; margin:6px 0 8px; flex-wrap:wrap; }
.filters input { padding:5px 8px; width:320px; border:1px solid #b8c1cc; border-radius:5px; }
.filters select { padding:4px 6px; border:1px solid #b8c1cc; border-radius:5px; }
.filters .count { color:var(--muted); font-size:12.5px; }
figure { margin:8px 0; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:6px; }
figcaption { color:var(--muted); font-size:12.5px; }
.grids { display:flex; flex-wrap:wrap; gap:16px; }
.grids figure img { image-rendering:pixelated; min-width:240px; }
details summary { cursor:pointer; color:var(--accent); margin:8px 0; }
code { font-size:12px; background:#f0f3f7; padding:1px 4px; border-radius:3px; }
footer { color:var(--muted); font-size:12px; border-top:1px solid var(--line); margin-top:36px;
  padding-top:8px; }
"""

# Sorting (click a header; numeric cells carry data-v), search and split filters, and a
# data-report-ready marker with image counts that the browser test reads.
JS = """
(function () {
  function key(td) {
    var v = td.getAttribute('data-v');
    if (v !== null) { return v === '' ? null : parseFloat(v); }
    return td.textContent.trim().toLowerCase();
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener('click', function () {
        var asc = th.getAttribute('aria-sort') !== 'ascending';
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[col]), y = key(b.cells[col]);
          if (x === null || (typeof x === 'number' && isNaN(x))) { return 1; }
          if (y === null || (typeof y === 'number' && isNaN(y))) { return -1; }
          var c = (typeof x === 'number' && typeof y === 'number') ? x - y
            : String(x).localeCompare(String(y));
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  document.querySelectorAll('.filters[data-for]').forEach(function (bar) {
    var table = document.getElementById(bar.getAttribute('data-for'));
    var input = bar.querySelector('input');
    var select = bar.querySelector('select');
    var count = bar.querySelector('.count');
    function apply() {
      var q = input.value.trim().toLowerCase();
      var split = select ? select.value : '';
      var shown = 0, rows = table.tBodies[0].rows;
      for (var i = 0; i < rows.length; i++) {
        var ok = (!split || rows[i].getAttribute('data-split') === split) &&
          (!q || rows[i].textContent.toLowerCase().indexOf(q) !== -1);
        rows[i].style.display = ok ? '' : 'none';
        if (ok) { shown++; }
      }
      count.textContent = shown + ' of ' + rows.length + ' rows';
    }
    input.addEventListener('input', apply);
    if (select) { select.addEventListener('change', apply); }
    apply();
  });
  function ready() {
    var imgs = document.images, ok = 0;
    for (var i = 0; i < imgs.length; i++) {
      if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; }
    }
    document.body.setAttribute('data-images-total', String(imgs.length));
    document.body.setAttribute('data-images-ok', String(ok));
    document.body.setAttribute('data-report-ready', '1');
  }
  if (document.readyState === 'complete') { ready(); }
  else { window.addEventListener('load', ready); }
})();
"""


def esc(x: Any) -> str:
    """HTML-escape any value (``None`` -> empty)."""
    return "" if x is None else html.escape(str(x), quote=True)


def attrs(**kw: Any) -> str:
    """``key="value"`` pairs; ``None`` values are left out, ``_`` in keys becomes ``-``."""
    return "".join(
        f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"' for k, v in kw.items() if v is not None
    )


def sort_value(v: Any) -> str:
    """The ``data-v`` of a numeric cell ('' for missing, sorted last)."""
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return ""
    return "" if math.isnan(v) else repr(float(v))


def th(text: str, title: str | None = None, num: bool = False) -> str:
    return f"<th{attrs(title=title, class_='num' if num else None)}>{esc(text)}</th>"


_TEXT = object()


def td(
    content_html: str,
    *,
    v: Any = _TEXT,
    cls: str | None = None,
    title: str | None = None,
    num: bool | None = None,
) -> str:
    """A cell holding ``content_html`` (already escaped). ``v`` is the numeric sort value
    (``None`` = missing, sorted last); leave it out for a text cell sorted by its content.
    ``num`` (default: whether ``v`` is given) right-aligns the cell as a number."""
    data_v = None if v is _TEXT else sort_value(v)
    if num if num is not None else data_v is not None:
        cls = f"num {cls}" if cls else "num"
    return f"<td{attrs(class_=cls, title=title, data_v=data_v)}>{content_html}</td>"


def tr(cells: Iterable[str], cls: str | None = None, split: str | None = None) -> str:
    return f"<tr{attrs(class_=cls, data_split=split)}>{''.join(cells)}</tr>"


def table(
    head: Sequence[str],
    rows: Sequence[str],
    *,
    id_: str | None = None,
    sortable: bool = True,
    cls: str | None = None,
) -> str:
    """A table from ``th`` cells and ``tr`` rows; sortable by clicking a header."""
    classes = " ".join(c for c in ("sortable" if sortable else None, cls) if c) or None
    return (
        f"<table{attrs(id=id_, class_=classes)}><thead><tr>{''.join(head)}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def filter_bar(table_id: str, splits: Sequence[str] = (), placeholder: str = "Search") -> str:
    """Search box (and split selector) filtering the rows of table ``table_id``."""
    select = ""
    if len(splits) > 1:
        opts = "".join(f'<option value="{esc(s)}">{esc(s)}</option>' for s in splits)
        select = f'<select aria-label="split"><option value="">all splits</option>{opts}</select>'
    return (
        f'<div class="filters" data-for="{esc(table_id)}">'
        f'<input type="search" placeholder="{esc(placeholder)}" aria-label="search">'
        f'{select}<span class="count"></span></div>'
    )


def figure(data_uri: str, alt: str, caption: str | None = None) -> str:
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{data_uri}" alt="{esc(alt)}">{cap}</figure>'


def role_badge(role: str) -> str:
    text = {"target": "target · before", "retain": "retain · gold standard"}.get(role, role)
    return f'<span class="role {esc(role)}">{esc(text)}</span>'


def page(
    title: str, subtitle: str, sections: Sequence[tuple[str, str, str]], created: str | None = None
) -> str:
    """The whole document: header, navigation, ``(anchor, heading, body_html)`` sections."""
    nav = "".join(f'<a href="#{esc(a)}">{esc(h)}</a>' for a, h, _ in sections)
    body = "".join(
        f'<section id="{esc(a)}"><h2>{esc(h)}</h2>{content}</section>' for a, h, content in sections
    )
    made = f" · {esc(created)}" if created else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<header class="top"><h1>{esc(title)}</h1><div class="sub">{esc(subtitle)}</div>'
        f"</header><nav>{nav}</nav><main>{body}"
        f"<footer>Written by obliviate {esc(__version__)}{made}. Self-contained: no network "
        "access at view time.</footer></main>"
        f"<script>{JS}</script></body></html>\n"
    )
