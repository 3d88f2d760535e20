"""SeUL (Wang+ 2024, arXiv 2402.05813): the span loss, span finding, the scorer, the term's setup
and the span metrics S-MA / S-EL, against hand-computed values on tiny inputs."""

from __future__ import annotations

import math
from typing import ClassVar

import pytest
import torch

from obliviate.config import TrainConfig
from obliviate.data.files import parse_qa_row
from obliviate.data.spans import char_spans_to_token_mask, find_char_spans, given_span_mask
from obliviate.data.templates import Encoded
from obliviate.data.types import QAItem, UnlearningRequest
from obliviate.methods import functional as F
from obliviate.methods.base import UnlearnJob
from obliviate.methods.seul import SeULTerm
from obliviate.methods.span_losses import seul_loss, top_surprisal_mask
from obliviate.metrics.span import (
    ngram_overlap,
    span_extraction_likelihood,
    span_memorisation_accuracy,
    span_positions,
    span_runs,
)
from obliviate.span_eval import span_scores

LN = math.log
T_, F_ = True, False


def _batch():
    """Row 0: labels at positions 1, 2; only position 1 is sensitive. Row 1: one answer token
    then padding, the mask True on the padding too (must not count)."""
    logits = torch.zeros(2, 3, 2)
    logits[0, 0] = torch.tensor([0.0, LN(3)])  # predicts labels[0, 1] = 1: p = 3/4
    logits[0, 1] = float("nan")  # predicts labels[0, 2], not sensitive: never read
    logits[1, 0] = torch.tensor([LN(4), 0.0])  # predicts labels[1, 1] = 0: p = 4/5
    logits[1, 1] = float("nan")  # padding
    labels = torch.tensor([[-100, 1, 0], [-100, 0, -100]])
    span = torch.tensor([[False, True, False], [False, True, True]])
    return logits.requires_grad_(), labels, span


def test_seul_loss_is_ascent_on_the_span_tokens_only():
    logits, labels, span = _batch()
    loss = seul_loss(logits, labels, span)
    # -(l_a + l_b)/2 with l = -log p: (log 3/4 + log 4/5) / 2
    assert loss.item() == pytest.approx((LN(3 / 4) + LN(4 / 5)) / 2)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert F.seul_loss is seul_loss


def test_seul_loss_differs_from_plain_ascent_and_empty_span_is_zero_with_graph():
    logits, labels, span = _batch()
    clean = torch.nan_to_num(logits.detach())
    assert seul_loss(clean, labels, span).item() != pytest.approx(F.ga_loss(clean, labels).item())
    z = torch.zeros(1, 3, 2, requires_grad=True)
    empty = seul_loss(z, torch.tensor([[-100, 1, 0]]), torch.zeros(1, 3, dtype=torch.bool))
    assert empty.item() == 0.0
    empty.backward()
    assert z.grad is not None and float(z.grad.abs().sum()) == 0.0


def test_seul_loss_rejects_a_misshaped_or_non_bool_mask():
    logits, labels, span = _batch()
    with pytest.raises(ValueError, match="shape of labels"):
        seul_loss(logits, labels, span[:, :2])
    with pytest.raises(ValueError, match="bool"):
        seul_loss(logits, labels, span.long())


def test_find_char_spans_and_token_mask():
    text = " born in Lima, Peru; Lima again"
    assert find_char_spans(text, ["Lima", "Peru", ""]) == [(9, 13), (15, 19), (21, 25)]
    with pytest.raises(ValueError, match="'Paris' does not occur"):
        find_char_spans(text, ["Paris"])
    offsets = [(0, 4), (4, 7), (7, 12), (12, 12)]
    assert char_spans_to_token_mask(offsets, [(5, 9)]) == [False, True, True, False]
    assert char_spans_to_token_mask(offsets, []) == [False] * 4


def test_top_surprisal_mask_takes_the_least_predictable_tokens():
    s = [0.1, 2.0, 0.5, 2.0, 0.2]
    assert top_surprisal_mask(s, 0.3) == [False, True, False, True, False]  # ceil(1.5) = 2
    assert top_surprisal_mask(s, 0.01) == [False, True, False, False, False]  # >= 1, tie: first
    assert top_surprisal_mask(s, 1.0) == [True] * 5
    assert top_surprisal_mask([], 0.5) == []
    with pytest.raises(ValueError, match="span_fraction"):
        top_surprisal_mask(s, 0.0)


class WordTokenizer:
    """Decodes ids through a fixed table; id 5 is EOS (a special token)."""

    eos_token_id, pad_token_id, bos_token_id = 5, 0, None
    table: ClassVar[dict] = {
        0: "Q:",
        1: " born",
        2: " in",
        3: " Li",
        4: "ma",
        5: "</s>",
        6: " Peru",
    }

    def decode(self, ids, skip_special_tokens=False):
        return "".join(self.table[i] for i in ids if not (skip_special_tokens and i == 5))


class Bigram(torch.nn.Module):
    """logits[b, t] = table[input_ids[b, t]]: p(next | current)."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.nn.Parameter(torch.as_tensor(table, dtype=torch.float))

    def forward(self, input_ids, attention_mask=None):
        return type("Out", (), {"logits": self.table[input_ids]})()


def _enc(ids):
    return Encoded(ids, [-100] + ids[1:], 1, ids[-1] == 5)


def test_given_span_mask_covers_every_token_of_the_substring():
    enc = _enc([0, 1, 2, 3, 4, 5])
    assert given_span_mask(WordTokenizer(), enc, ("Lima",)) == [F_, F_, F_, T_, T_, F_]
    assert given_span_mask(WordTokenizer(), enc, ("in Li",)) == [F_, F_, T_, T_, F_, F_]


def _job(items, table):
    tok = WordTokenizer()
    return UnlearnJob(Bigram(table), tok, UnlearningRequest(items, []))


def test_term_setup_uses_the_data_spans_and_else_the_scorer():
    # bigram model over 7 tokens: from 1 (" born") the next token 2 has p = 1/2, from 2 the
    # next token 6 (" Peru") has p = 1/8; EOS after 6 is certain: surprisals log 2, log 8, ~0
    table = torch.full((7, 7), -1e4)
    table[0, 1] = 0.0
    table[1] = torch.tensor([-1e4, -1e4, 0.0, -1e4, -1e4, -1e4, 0.0])
    table[2] = torch.tensor([-1e4, -1e4, -1e4, -1e4, -1e4, LN(7), 0.0])
    table[6, 5] = 0.0
    table[3, 4] = 0.0
    table[4, 5] = 0.0
    items = [
        QAItem("q1", "born in Lima", meta={"sensitive_spans": ("Lima",)}),
        QAItem("q2", "born in Peru"),
    ]
    forget = [_enc([0, 1, 2, 3, 4, 5]), _enc([0, 1, 2, 6, 5])]
    term = SeULTerm(span_fraction=0.25)
    term.setup(_job(items, table), forget, TrainConfig())
    assert term.masks[0] == [F_, F_, F_, T_, T_, F_]
    # answer tokens " born"(-log 1=0), " in"(log 2), " Peru"(log 8); EOS left out:
    # ceil(0.25 * 3) = 1 token, the highest surprisal: " Peru"
    assert term.masks[1] == [F_, F_, F_, T_, F_]
    batch = {"input_ids": torch.zeros(2, 6, dtype=torch.long), "index": torch.tensor([1, 0])}
    expected = torch.tensor([[F_, F_, F_, T_, F_, F_], [F_, F_, F_, T_, T_, F_]])
    assert torch.equal(term.batch_mask(batch), expected)


def test_term_setup_looks_up_every_documents_spans_in_every_window():
    items = [
        QAItem("", "born in Lima", meta={"sensitive_spans": ("Lima",)}),
        QAItem("", "born in Peru", meta={"sensitive_spans": ("Peru",)}),
    ]
    windows = [_enc([0, 1, 2, 3, 4]), _enc([0, 1, 2, 6]), _enc([0, 1, 2])]
    term = SeULTerm()
    term.setup(_job(items, torch.zeros(7, 7)), windows, TrainConfig())
    assert term.masks == [[F_, F_, F_, T_, T_], [F_, F_, F_, T_], [F_, F_, F_]]


def test_term_setup_names_the_item_whose_span_is_not_in_its_answer():
    items = [QAItem("q", "born in Lima", meta={"sensitive_spans": ("Paris",)})]
    with pytest.raises(ValueError, match="forget item 1: the sensitive span 'Paris'"):
        SeULTerm().setup(_job(items, torch.zeros(7, 7)), [_enc([0, 1, 2, 3, 4, 5])], TrainConfig())
    with pytest.raises(ValueError, match="span_fraction"):
        SeULTerm(span_fraction=1.5)


def test_files_keep_sensitive_spans_as_a_list_json_string_or_one_string():
    row = {"question": "q", "answer": "a b", "sensitive_spans": ["a", "b"]}
    assert parse_qa_row(row, "x").meta["sensitive_spans"] == ("a", "b")
    row["sensitive_spans"] = '["a"]'  # a CSV cell
    assert parse_qa_row(row, "x").meta["sensitive_spans"] == ("a",)
    row["sensitive_spans"] = "b"
    assert parse_qa_row(row, "x").meta["sensitive_spans"] == ("b",)
    row["sensitive_spans"] = ""
    assert "sensitive_spans" not in parse_qa_row(row, "x").meta
    doc = parse_qa_row({"text": "a doc", "sensitive_spans": ["doc"]}, "x")
    assert doc.meta["sensitive_spans"] == ("doc",)


# ----------------------------------------------------------------------------- S-MA, S-EL


def test_span_memorisation_accuracy_counts_span_tokens_only():
    assert span_memorisation_accuracy([T_, F_, T_, T_], [F_, T_, T_, F_]) == 0.5
    assert span_memorisation_accuracy([T_, F_], [F_, F_]) is None  # empty span
    with pytest.raises(ValueError, match="align"):
        span_memorisation_accuracy([T_], [T_, F_])


def test_ngram_overlap_and_span_extraction_likelihood():
    assert ngram_overlap([1, 2, 3], [1, 2, 4], 2) == 0.5  # (1,2) of (1,2),(2,3)
    assert ngram_overlap([1, 1, 1], [1, 2, 3], 1) == pytest.approx(1 / 3)  # clipped
    assert ngram_overlap([7], [7], 2) == 1.0  # n cut to the span's length
    assert ngram_overlap([], [1], 2) == 0.0
    assert ngram_overlap([1], [], 2) is None
    spans, gens = [[1, 2, 4], [7], []], [[1, 2, 3], [8], [5]]
    assert span_extraction_likelihood(gens, spans, 2) == pytest.approx((0.5 + 0.0) / 2)
    assert span_extraction_likelihood([], [], 2) is None
    assert span_runs([F_, T_, T_, F_, T_]) == [(1, 3), (4, 5)]


def test_span_positions_align_with_the_scored_answer_tokens():
    # labels scored from position 1 on; the prompt (-100) never counts, even under the mask
    labels, mask = [-100, -100, 7, 8, 9, 5], [F_, T_, T_, T_, F_, T_]
    answer_mask, runs = span_positions(labels, mask)
    assert answer_mask == [T_, T_, F_, T_]  # positions 2, 3, 4, 5
    assert runs == [(2, 4), (5, 6)]
    assert span_positions([-100, 3], [T_, F_]) == ([F_], [])
    with pytest.raises(ValueError, match="mask entries"):
        span_positions([-100, 3], [T_])


class GreedyBigram(Bigram):
    """The bigram model with a greedy ``generate`` (the next token depends on the last only)."""

    def generate(self, input_ids, attention_mask=None, max_new_tokens=1, **_):
        x = input_ids
        for _ in range(max_new_tokens):
            x = torch.cat([x, self.table[x[:, -1]].argmax(-1)[:, None]], dim=1)
        return x


def test_span_scores_on_a_bigram_model():
    # greedy from 0 goes 1, 2, 3, 4: item [0, 1, 2, 6, 5] with span {2, 6}: teacher-forced
    # argmax hits at 2 (after 1) yes, at 6 (after 2 the argmax is 3) no -> S-MA 1/2; the run
    # (2, 4) continued greedily from [0, 1] gives [2, 3] vs [2, 6]: bigram overlap 0
    table = torch.full((7, 7), -5.0)
    for a, b in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]:
        table[a, b] = 5.0
    model, tok = GreedyBigram(table), WordTokenizer()
    items = [_enc([0, 1, 2, 6, 5]), _enc([0, 1])]
    masks = [[F_, F_, T_, T_, F_], [F_, F_]]
    rows, agg = span_scores(model, tok, items, masks, backend="hf")
    assert agg == {"s_ma": 0.5, "s_el": 0.0}
    assert rows == [{"s_ma": 0.5, "s_el": 0.0}, {}]
    # the span {1, 2} is reproduced: continuing [0] gives [1, 2]
    rows, agg = span_scores(model, tok, [_enc([0, 1, 2, 6])], [[F_, T_, T_, F_]], backend="hf")
    assert agg == {"s_ma": 1.0, "s_el": 1.0}
    # hits given by the caller (the evaluation's scoring pass) are used as they are
    _, agg = span_scores(model, tok, items[:1], masks[:1], correct=[[T_, F_, F_, F_]], backend="hf")
    assert agg["s_ma"] == 0.0
    assert span_scores(model, tok, [_enc([0, 1])], [[F_, F_]], backend="hf") == ([{}], {})
