"""A self-contained HTML page of sample portraits with each model's answers before and after
unlearning (the demo's ``samples.html``)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

from obliviate.data.types import QAItem


def sample_items(
    eval_sets: Mapping[str, Sequence[QAItem]], n_retain_people: int = 2
) -> list[QAItem]:
    """The name question (image+text) and the birthplace question (text-only) of every forget
    person and of the first ``n_retain_people`` retain people."""
    out: list[QAItem] = []
    for name, limit in (("forget", None), ("retain", n_retain_people)):
        people: list[Any] = []
        for it in eval_sets.get(name, []):
            person = it.meta.get("person")
            if person not in people:
                if limit is not None and len(people) >= limit:
                    continue
                people.append(person)
            wanted = (it.meta.get("mode"), it.meta.get("fact"))
            if it.meta.get("task") == "qa" and wanted in (
                ("image", "name"),
                ("text", "birthplace"),
            ):
                out.append(it)
    return out


def _portrait(image: Any, scale: int = 4) -> str:
    from PIL import Image

    buf = io.BytesIO()
    big = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    big.save(buf, format="PNG")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="portrait" src="data:image/png;base64,{data}">'


def sample_page(items: Sequence[QAItem], answers: Mapping[str, Sequence[str]]) -> str:
    """One row per item (portrait or "text only", question, gold answer), one column per model
    with its answer; a model's answer that contains the gold one is marked."""
    for model, given in answers.items():
        if len(given) != len(items):
            raise ValueError(f"{len(given)} answers of {model!r} for {len(items)} items")
    esc = html.escape
    head = "".join(f"<th>{esc(m)}</th>" for m in answers)
    rows = []
    for i, it in enumerate(items):
        image = it.meta.get("image")
        cells = [
            _portrait(image) if image is not None else "text only",
            esc(it.question),
            esc(it.answer),
        ]
        for given in answers.values():
            hit = it.answer.lower() in given[i].lower()
            cells.append(f'<span class="{"hit" if hit else "miss"}">{esc(given[i]) or "-"}</span>')
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>multimodal samples</title>"
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px}"
        ".hit{color:#060;font-weight:bold}.miss{color:#900}</style></head><body>"
        "<h1>Sample answers before and after unlearning</h1>"
        "<p>Forget people first, then retain people; green: the answer contains the gold one."
        "</p><table><tr><th>portrait</th><th>question</th><th>gold</th>"
        f"{head}</tr>{''.join(rows)}</table></body></html>"
    )
