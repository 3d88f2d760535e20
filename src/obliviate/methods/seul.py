"""SeUL, span-level selective unlearning (Wang+ 2024, arXiv 2402.05813; docs/methods.md, "SeUL").

Gradient ascent on the tokens of the sensitive spans of each forget answer only
(:func:`obliviate.methods.span_losses.seul_loss`, the paper's L_UL of §3), composed with any retain
term like every forget term; the ``seul`` preset adds NLL on the retain set.

Where the spans come from, per forget item:

1. **Given in the data**: the item's ``sensitive_spans`` field (a list of substrings of the
   answer, a JSON string holding such a list, or one plain string; rename another column with
   ``--map pii=sensitive_spans``). Every occurrence of each substring in the answer is sensitive;
   a substring that is not in the answer is an error naming the item. For plain-text documents
   (cut into windows) the substrings of all forget items are looked up in every window.
2. **Found by the scorer** when an item has none: the paper's online selection scores tokens by
   language-model probability; here the scoring model is the target itself before unlearning,
   and the ``span_fraction`` answer tokens of highest surprisal ``-log p`` (at least one per
   item) are the sensitive ones. Why surprisal: template words, function words and EOS are
   predictable from the context alone, while the tokens that carry the private fact (a name, a
   place, a number) are the least predictable ones; no second model is needed.
"""

from __future__ import annotations

from typing import Any

from obliviate.config import TrainConfig
from obliviate.data.spans import SPANS_FIELD, given_span_mask, item_spans
from obliviate.data.templates import IGNORE, Encoded
from obliviate.methods.base import MethodPreset, Term, UnlearnJob
from obliviate.methods.gradient import TINY_TRAIN
from obliviate.methods.span_losses import seul_loss, top_surprisal_mask

SEUL_PAPER = "Wang+ 2024, arXiv 2402.05813 (SeUL)"


def scored_span_masks(
    job: UnlearnJob, encoded: list[Encoded], fraction: float, batch_size: int
) -> list[list[bool]]:
    """The scorer's masks (see the module docstring): per item, the ``fraction`` answer tokens
    of highest surprisal under the model as it is now (EOS excluded when the answer has more)."""
    import torch

    from obliviate.data.collate import pad_id_of
    from obliviate.methods import functional as F
    from obliviate.scoring import model_device
    from obliviate.training import collate_encoded

    model, pad = job.model, pad_id_of(job.tokenizer)
    device, eos = model_device(model), job.tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    masks: list[list[bool]] = []
    with torch.no_grad():
        for s in range(0, len(encoded), batch_size):
            chunk = encoded[s : s + batch_size]
            b = collate_encoded(chunk, list(range(len(chunk))), pad)
            logits = model(
                input_ids=b["input_ids"].to(device), attention_mask=b["attention_mask"].to(device)
            ).logits
            lp, _ = F.token_logprobs(logits, b["labels"].to(device))
            for row, enc in enumerate(chunk):
                pos = [i for i, y in enumerate(enc.labels) if y != IGNORE and i > 0]
                if len(pos) > 1 and enc.labels[pos[-1]] == eos:
                    pos = pos[:-1]
                surprisal = [-float(lp[row, i - 1]) for i in pos]
                out = [False] * len(enc.input_ids)
                for i, hit in zip(pos, top_surprisal_mask(surprisal, fraction)):
                    out[i] = hit
                masks.append(out)
    model.train(was_training)
    return masks


class SeULTerm(Term):
    """SeUL (Wang+ 2024, arXiv 2402.05813, §3, L_UL): ``L_f = -(1/|S|)·Σ_{t∈S} ℓ_t`` over the
    tokens ``S`` of the sensitive spans (given by the data, else the ``span_fraction`` answer
    tokens of highest surprisal under the target before unlearning)."""

    name = "seul"
    description = "SeUL: gradient ascent on the sensitive-span tokens only (data or scorer)"
    paper = SEUL_PAPER

    def __init__(self, span_fraction: float = 0.3, spans_field: str = SPANS_FIELD) -> None:
        top_surprisal_mask([0.0], span_fraction)  # checks the range
        self.span_fraction, self.spans_field = span_fraction, spans_field
        self.masks: list[list[bool]] = []

    def setup(self, job: UnlearnJob, forget: list[Encoded], cfg: TrainConfig) -> None:
        items = job.request.forget
        given = []
        for k, it in enumerate(items):
            try:
                given.append(item_spans(it.meta, self.spans_field))
            except ValueError as exc:
                raise ValueError(f"forget item {k + 1}: {exc}") from None
        per_item = len(forget) == len(items) and not any(it.is_document for it in items)
        if not per_item:  # document windows: every item's substrings in every window
            union = tuple(dict.fromkeys(s for g in given for s in g))
            given = [union] * len(forget)
        masks: list[list[bool] | None] = []
        for k, (enc, subs) in enumerate(zip(forget, given)):
            if not subs:
                masks.append(None)
                continue
            try:  # a document window need not hold every document's spans
                masks.append(given_span_mask(job.tokenizer, enc, subs, missing_ok=not per_item))
            except ValueError as exc:
                raise ValueError(
                    f"forget item {k + 1}: {exc}; give substrings of the answer in "
                    f"{self.spans_field!r}"
                ) from None
        todo = [k for k, m in enumerate(masks) if m is None]
        if todo:
            scored = scored_span_masks(
                job, [forget[k] for k in todo], self.span_fraction, cfg.batch_size
            )
            for k, m in zip(todo, scored):
                masks[k] = m
        self.masks = [m or [] for m in masks]

    def batch_mask(self, batch: dict[str, Any]) -> Any:
        """The ``(B, T)`` span mask of a right-padded batch, from its ``index``."""
        import torch

        ids = batch["input_ids"]
        out = torch.zeros(ids.shape, dtype=torch.bool, device=ids.device)
        for row, idx in enumerate(batch["index"].tolist()):
            m = self.masks[idx][: ids.shape[1]]
            out[row, : len(m)] = torch.tensor(m, dtype=torch.bool, device=ids.device)
        return out

    def loss_from_logits(self, logits: Any, batch: dict, job: UnlearnJob) -> Any:
        return seul_loss(logits, batch["labels"], self.batch_mask(batch))


SEUL = MethodPreset(
    "seul",
    "SeUL: ascent on the sensitive spans of the forget answers only + NLL on retain",
    SEUL_PAPER,
    forget="seul",
    retain="nll",
    train=TINY_TRAIN,
)
