"""Teacher-forced scoring that runs each distinct prompt once.

An evaluation scores every question with several answers (TOFU: the answer, its paraphrase and
five perturbed answers; multiple choice: every option). Scored one pair at a time, the prompt
goes through the model once per answer. Here the distinct prompts of a batch go through it
once, left-padded, into a KV cache; the cache rows are repeated for the answers of each prompt,
and one more pass over the answers (right-padded, positions continuing after their prompt's
real tokens) gives the logits of every answer token after the first. The first answer token is
predicted by the prompt's last position, the only position of the prompt pass whose logits are
computed. One prompt pass serves up to :data:`ANSWER_PASSES` answer passes of ``batch_size``
rows, the answers sorted by length across the prompts of the pass: on the TOFU forget10
evaluation that pads the answer tokens by 5 % instead of 25 %. The numbers are those of one
pass over prompt + answer up to float rounding (the same sums in another order);
:func:`obliviate.scoring.answer_scores` turns the logits into the same statistics.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from obliviate.data.collate import pad_batch, pad_id_of
from obliviate.data.templates import Encoded
from obliviate.decoding import cache_argument, hf_select, positions

ANSWER_PASSES = 8  # answer passes (of batch_size rows) per prompt pass


def can_share(model: Any, encoded: Sequence[Encoded]) -> bool:
    """A plain HF model (its KV cache can be cut and repeated by rows), every item with a
    prompt and an answer token, and at least one prompt shared by two items."""
    from obliviate.generation import is_plain_hf

    if not is_plain_hf(model) or any(
        e.prompt_len < 1 or len(e.input_ids) <= e.prompt_len for e in encoded
    ):
        return False
    return len({tuple(e.input_ids[: e.prompt_len]) for e in encoded}) < len(encoded)


def prompt_groups(
    encoded: Sequence[Encoded], batch_size: int, rows: int | None = None
) -> list[list[list[int]]]:
    """Batches of prompt groups: each group the indices of the items with one prompt, groups
    ordered by their longest item (longest first, least padding), a batch as many consecutive
    groups as keep it within ``batch_size`` prompts and ``rows`` answer rows (default
    ``batch_size``); at least one group: a group is never split."""
    limit = rows or batch_size
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, e in enumerate(encoded):
        groups.setdefault(tuple(e.input_ids[: e.prompt_len]), []).append(i)
    ordered = sorted(
        groups.values(), key=lambda g: max(len(encoded[i].input_ids) for i in g), reverse=True
    )
    batches: list[list[list[int]]] = []
    n = 0
    for g in ordered:
        if batches and n + len(g) <= limit and len(batches[-1]) < batch_size:
            batches[-1].append(g)
            n += len(g)
        else:
            batches.append([g])
            n = len(g)
    return batches


def score_shared(
    model: Any,
    tokenizer: Any,
    encoded: Sequence[Encoded],
    batch_size: int,
    progress: Callable[[list[int]], Iterable[int]] | None = None,
) -> list[Any]:
    """:func:`obliviate.scoring.score_encoded` with each distinct prompt run once (module
    docstring); results in input order."""
    import torch

    from obliviate.parallel_eval import map_batches
    from obliviate.scoring import answer_scores, model_device

    pad = pad_id_of(tokenizer)
    device = model_device(model)
    cache_name = cache_argument(model)
    forward: Any = getattr(model, "forward", model)
    last = (
        {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(forward).parameters else {}
    )
    batches = prompt_groups(encoded, batch_size, ANSWER_PASSES * batch_size)

    def answer_pass(out: Any, mask: Any, rows: Any, items: list[int], cache: Any) -> list[Any]:
        """The scores of ``items``, whose prompts are the rows ``rows`` of the prompt pass
        ``out`` (``cache``: its KV cache, cut to those rows here)."""
        answers = [encoded[i].input_ids[encoded[i].prompt_len :] for i in items]
        counts = [len(a) for a in answers]
        width = max(counts)
        logits = out.logits[:, -1][rows][:, None]  # (R, 1, V): each answer's first token
        if width > 1:
            ab = pad_batch([a[:-1] for a in answers], pad)
            amask = ab["attention_mask"].to(device)
            start = mask.sum(1)[rows][:, None]  # the answer's first position
            more = model(
                input_ids=ab["input_ids"].to(device),
                attention_mask=torch.cat([mask[rows], amask], 1),
                position_ids=start + torch.arange(width - 1, device=device)[None],
                use_cache=True,
                **{cache_name: hf_select(cache, rows)},  # a row per answer
            ).logits
            logits = torch.cat([logits, more], 1)
        targets = pad_batch(answers, pad)["input_ids"].to(device)
        keep = (
            torch.arange(width, device=device)[None] < torch.tensor(counts, device=device)[:, None]
        )
        return answer_scores(logits[keep], targets[keep], counts, [encoded[i] for i in items])

    def run(batch: list[list[int]]) -> list[Any]:
        prompts = [encoded[g[0]].input_ids[: encoded[g[0]].prompt_len] for g in batch]
        pb = pad_batch(prompts, pad, side="left")
        ids, mask = pb["input_ids"].to(device), pb["attention_mask"].to(device)
        out = model(
            input_ids=ids, attention_mask=mask, position_ids=positions(mask), use_cache=True, **last
        )
        items = [i for g in batch for i in g]
        prompt_row = {i: k for k, g in enumerate(batch) for i in g}
        length = {i: len(encoded[i].input_ids) - encoded[i].prompt_len for i in items}
        by_length = sorted(items, key=length.__getitem__, reverse=True)  # least padding
        chunks = [by_length[c : c + batch_size] for c in range(0, len(items), batch_size)]
        scored: dict[int, Any] = {}
        cache = getattr(out, cache_name)
        for n, chunk in enumerate(chunks):
            rows = torch.tensor([prompt_row[i] for i in chunk], device=device)
            own = cache if n == len(chunks) - 1 else copy.deepcopy(cache)  # cut in place
            scored.update(zip(chunk, answer_pass(out, mask, rows, chunk, own)))
        return [scored[i] for i in items]

    costs = [sum(len(encoded[i].input_ids) for g in b for i in g) for b in batches]
    with torch.no_grad():
        done = map_batches(batches, costs, run, progress)
    results: list[Any] = [None] * len(encoded)
    for batch, scores in zip(batches, done):
        for i, s in zip((i for g in batch for i in g), scores):
            results[i] = s
    return results
