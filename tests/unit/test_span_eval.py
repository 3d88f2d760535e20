"""S-MA / S-EL in `evaluate_model` (SeUL, arXiv 2402.05813): the values written for forget items
that name sensitive spans equal a plain recomputation (one forward pass per item for S-MA, a
greedy loop without cache for S-EL), spans are part of the data key, and a span that is not in
its answer is one error naming the item."""

from __future__ import annotations

import pytest
import torch
from micro_models import micro_llama  # tests/unit/micro_models.py

from obliviate.data.spans import given_span_mask
from obliviate.data.templates import IGNORE, PromptTemplate, encode
from obliviate.data.types import QAItem, UnlearningRequest
from obliviate.evaluation import EvalSettings, data_hash, evaluate_model
from obliviate.metrics.span import ngram_overlap, span_runs


@pytest.fixture(scope="module")
def trained() -> dict:
    """The micro Llama after 30 Adam steps on its robot QA: it reproduces part of the answers,
    so the span metrics are neither all 0 nor all 1."""
    m = micro_llama(n_items=8)
    tok, model, tpl = m["tok"], m["model"], PromptTemplate()
    enc = [encode(tok, it.question, it.answer, tpl) for it in m["items"]]
    width = max(len(e.input_ids) for e in enc)
    ids = torch.tensor([e.input_ids + [tok.pad_token_id] * (width - len(e.input_ids)) for e in enc])
    labels = torch.tensor([e.labels + [IGNORE] * (width - len(e.labels)) for e in enc])
    mask = torch.arange(width)[None] < torch.tensor([len(e.input_ids) for e in enc])[:, None]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for _ in range(30):
        loss = model(input_ids=ids, attention_mask=mask.long(), labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    spans = ["boats", "kites", "clocks", "lamps"]
    items = [
        QAItem(it.question, it.answer, meta={"sensitive_spans": [spans[i % 4]]} if i < 6 else {})
        for i, it in enumerate(m["items"])
    ]
    return {"tok": tok, "model": model, "items": items, "tpl": tpl}


def _by_hand(model, tok, items, tpl) -> tuple[list[float], list[float]]:
    """Per item S-MA, and every span run's bigram overlap, without the evaluation's code."""
    s_ma, overlaps = [], []
    with torch.no_grad():
        for it in items:
            if not it.meta:
                continue
            enc = encode(tok, it.question, it.answer, tpl)
            mask = given_span_mask(tok, enc, tuple(it.meta["sensitive_spans"]))
            x = torch.tensor([enc.input_ids])
            pred = model(input_ids=x).logits[0].argmax(-1)
            pos = [t for t, m in enumerate(mask) if m]
            s_ma.append(sum(int(pred[t - 1]) == enc.input_ids[t] for t in pos) / len(pos))
            for a, b in span_runs(mask):
                cur = x[:, :a]
                for _ in range(b - a):
                    cur = torch.cat([cur, model(input_ids=cur).logits[:, -1:].argmax(-1)], 1)
                gen = [t for t in cur[0, a:].tolist()]
                if tok.eos_token_id in gen:
                    gen = gen[: gen.index(tok.eos_token_id)]
                overlaps.append(ngram_overlap(gen, enc.input_ids[a:b], 2))
    return s_ma, overlaps


def test_span_metrics_of_the_evaluation_equal_a_plain_recomputation(trained):
    tok, model, items, tpl = trained["tok"], trained["model"], trained["items"], trained["tpl"]
    request = UnlearningRequest(items, [], eval={"forget": items})
    settings = EvalSettings(generate=False, batch_size=3)
    res = evaluate_model(model, tok, request, tpl, settings, progress=False)
    s_ma, overlaps = _by_hand(model, tok, items, tpl)
    # neither metric is degenerate on this model
    assert 0 < sum(s_ma) / len(s_ma) < 1 and 0 < sum(overlaps) / len(overlaps) < 1
    assert res.values()["forget_s_ma"] == pytest.approx(sum(s_ma) / len(s_ma), abs=1e-12)
    assert res.values()["forget_s_el"] == pytest.approx(sum(overlaps) / len(overlaps), abs=1e-12)
    rows = [r for r in res.samples if r["split"] == "forget"]
    assert [r["s_ma"] for r in rows[:6]] == pytest.approx(s_ma, abs=1e-12)
    assert all("s_ma" not in r and "s_el" not in r for r in rows[6:])  # items without spans
    assert res.metrics["forget_s_ma"]["direction"] == "lower"


def test_no_spans_no_span_metrics_and_spans_key_the_data(trained):
    tok, model, items, tpl = trained["tok"], trained["model"], trained["items"], trained["tpl"]
    plain = [QAItem(it.question, it.answer) for it in items]
    res = evaluate_model(
        model,
        tok,
        UnlearningRequest(plain, [], eval={"forget": plain}),
        tpl,
        EvalSettings(generate=False),
        progress=False,
    )
    assert "forget_s_ma" not in res.values() and "forget_s_el" not in res.values()
    other = [QAItem(it.question, it.answer, meta={"sensitive_spans": ["Robot"]}) for it in items]
    hashes = {
        data_hash(UnlearningRequest(x, [], eval={"forget": x})) for x in (items, plain, other)
    }
    assert len(hashes) == 3  # a change of spans is a change of data: no stale S-MA reused


def test_a_span_missing_from_its_answer_is_one_error_naming_the_item(trained):
    tok, model, tpl = trained["tok"], trained["model"], trained["tpl"]
    bad = [
        QAItem(
            "What does robot 0 build?", "Robot 0 builds boats.", meta={"sensitive_spans": ["kites"]}
        )
    ]
    with pytest.raises(ValueError, match=r"forget item 0 .*'kites' does not occur"):
        evaluate_model(
            model,
            tok,
            UnlearningRequest(bad, [], eval={"forget": bad}),
            tpl,
            EvalSettings(generate=False),
            progress=False,
        )
