"""The only code that runs a model for evaluation.

One teacher-forced pass per (model, split, answer variant) yields, per sample, the per-token
log-probabilities of the answer tokens and the statistics every metric needs (argmax hits for
EM/ES, the Min-K%++ mean/variance of log p). Metrics are pure functions over these arrays.
Generation is batched, left-padded, greedy, with KV cache (:mod:`obliviate.generation`).

A "model" here is a :class:`~obliviate.models.protocol.CausalLM` that also has
``model.generate(...)`` (an HF model, a PEFT model, an obliviate inference wrapper or the SISA
ensemble, whose ``generate`` is the loop of :mod:`obliviate.decoding`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from obliviate.data.collate import pad_batch, pad_id_of
from obliviate.data.templates import IGNORE, Encoded, PromptTemplate, encode
from obliviate.models.protocol import CausalLM


@dataclass
class TokenScores:
    """Teacher-forced statistics over one sample's answer tokens (EOS last when ``has_eos``)."""

    token_logprobs: np.ndarray  # log p(y_t | x, y_<t), shape (n,)
    correct: np.ndarray  # argmax_v z_t == y_t, bool (n,)
    mu: np.ndarray  # sum_v p_v log p_v (n,)
    sigma2: np.ndarray  # sum_v p_v (log p_v)^2 - mu^2 (n,)
    has_eos: bool
    cut: int = 0  # tokens dropped to fit ``max_length`` (:func:`obliviate.data.templates.encode`)
    predicted: np.ndarray | None = None  # argmax_v z_t, the id greedy decoding picks here (n,)

    @property
    def n(self) -> int:
        return int(self.token_logprobs.shape[0])

    def without_eos(self) -> TokenScores:
        if not self.has_eos or self.n == 0:
            return self
        return TokenScores(
            self.token_logprobs[:-1],
            self.correct[:-1],
            self.mu[:-1],
            self.sigma2[:-1],
            False,
            self.cut,
            None if self.predicted is None else self.predicted[:-1],
        )

    def nll_avg(self, include_eos: bool = True) -> float:
        """Mean token NLL over the answer (EOS included by default, docs/metrics.md)."""
        s = self if include_eos else self.without_eos()
        if s.n == 0:
            return float("nan")
        return float(-s.token_logprobs.mean())


def model_device(model: CausalLM) -> Any:
    import torch

    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError, TypeError):
        return torch.device("cpu")


def context_length(model: Any, max_length: int) -> int:
    """``max_length`` capped at the model's context (``config.max_position_embeddings``):
    nothing is scored beyond the positions the model has."""
    cfg = getattr(model, "config", None)
    positions = getattr(cfg, "max_position_embeddings", None) if cfg is not None else None
    return (
        min(max_length, positions) if isinstance(positions, int) and positions > 0 else max_length
    )


def _progress(iterable: Any, desc: str, total: int | None, show: bool) -> Any:
    if not show:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


def _bar(desc: str, show: bool) -> Callable[[list[int]], Iterable[int]] | None:
    """A progress bar over the batches one process runs (:func:`obliviate.parallel_eval.map_batches`)."""
    if not show:
        return None
    return lambda todo: _progress(todo, desc, len(todo), True)


def score_pairs(
    model: CausalLM,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    template: PromptTemplate,
    batch_size: int = 32,
    max_length: int = 512,
    progress: bool = True,
    desc: str = "scoring",
    truncate: str = "answer",
    share_prompts: bool = False,
) -> list[TokenScores]:
    """Teacher-forced scores of (question, answer) pairs, one forward pass per batch.

    Over-long pairs are cut to ``max_length`` as :func:`obliviate.data.templates.encode` does
    (``truncate``: "answer" cuts the answer's tail, "left" the prompt's head; ``cut`` records it).
    Identical pairs are scored once. Batches are built from length-sorted items to minimise
    padding; results come back in input order. In a data-parallel evaluation each rank scores
    its share of the batches (:mod:`obliviate.parallel_eval`). ``share_prompts``: the answers
    to one question continue one run of its prompt (:mod:`obliviate.shared_prompts`).
    """
    unique: dict[tuple[str, str], int] = {}
    for pair in pairs:
        unique.setdefault(pair, len(unique))
    encoded = [
        encode(tokenizer, q, a, template, max_length=max_length, truncate=truncate)
        for q, a in unique
    ]
    results = score_encoded(model, tokenizer, encoded, batch_size, progress, desc, share_prompts)
    return [results[unique[p]] for p in pairs]


def answer_scores(
    logits: Any, targets: Any, counts: Sequence[int], items: Sequence[Encoded]
) -> list[TokenScores]:
    """The :class:`TokenScores` of ``items`` from the logits that predict their answer tokens:
    ``logits`` (N, V) and ``targets`` (N,) hold every item's answer tokens in turn, ``counts[j]``
    of them for item ``j``."""
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    tok_lp = logp.gather(-1, targets[:, None])[:, 0]
    top = logp.argmax(-1)
    correct = top == targets
    p = logp.exp()
    mu = (p * logp).sum(-1)
    sigma2 = ((p * logp * logp).sum(-1) - mu * mu).clamp_min(0.0)
    stats = (tok_lp.cpu(), correct.cpu(), mu.cpu(), sigma2.cpu(), top.cpu())
    chunks = [t.split(list(counts)) for t in stats]
    return [
        TokenScores(
            chunks[0][j].numpy().astype(np.float64),
            chunks[1][j].numpy().astype(bool),
            chunks[2][j].numpy().astype(np.float64),
            chunks[3][j].numpy().astype(np.float64),
            e.has_eos,
            e.cut,
            chunks[4][j].numpy().astype(np.int64),
        )
        for j, e in enumerate(items)
    ]


def score_encoded(
    model: CausalLM,
    tokenizer: Any,
    encoded: Sequence[Encoded],
    batch_size: int = 32,
    progress: bool = False,
    desc: str = "scoring",
    share_prompts: bool = False,
) -> list[TokenScores]:
    """Teacher-forced scores of encoded items (labels ``IGNORE`` outside the answer), one forward
    pass per batch of length-sorted items; results in input order. ``share_prompts``: items
    that share a prompt run it once (:mod:`obliviate.shared_prompts`, plain HF models)."""
    import torch

    from obliviate.parallel_eval import map_batches
    from obliviate.shared_prompts import can_share, score_shared

    if share_prompts and can_share(model, encoded):
        return score_shared(model, tokenizer, encoded, batch_size, _bar(desc, progress))
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids), reverse=True)
    pad = pad_id_of(tokenizer)
    device = model_device(model)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

    def run(idx: list[int]) -> list[TokenScores]:
        batch = pad_batch(
            [encoded[i].input_ids for i in idx], pad, [encoded[i].labels for i in idx]
        )
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        targets = batch["labels"][:, 1:]
        mask = targets != IGNORE
        counts = mask.sum(1).tolist()
        return answer_scores(logits[:, :-1][mask], targets[mask], counts, [encoded[i] for i in idx])

    results: list[TokenScores | None] = [None] * len(encoded)
    costs = [len(idx) * len(encoded[idx[0]].input_ids) for idx in batches]  # longest first
    with torch.no_grad():
        done = map_batches(batches, costs, run, _bar(desc, progress))
    for idx, scores in zip(batches, done):
        for i, s in zip(idx, scores):
            results[i] = s
    return results  # type: ignore[return-value]


def generate(
    model: CausalLM,
    tokenizer: Any,
    questions: Sequence[str],
    template: PromptTemplate,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    max_length: int = 512,
    progress: bool = True,
    desc: str = "generating",
    stop_strings: Sequence[str] = (),
    backend: str = "auto",
    known: Mapping[str, Sequence[int]] | None = None,
) -> list[str]:
    """Greedy generations for questions: each distinct prompt generated once, by one backend of
    :mod:`obliviate.generation` (``auto``: obliviate's decode loop for a plain HF model, the
    model's ``generate`` otherwise; both in left-padded, length-sorted batches with a KV cache).

    ``known`` maps a question to the first tokens its greedy answer is known to start with
    (:func:`greedy_prefixes`, read off a teacher-forced pass of the same model). With the
    ``loop`` backend those tokens are taken as they are and only the rest is decoded, from the
    prompt followed by them: an answer known up to its EOS costs no decoding at all.

    The text is decoded from the new tokens only, cut at EOS (and at any ``stop_strings``), and
    stripped (docs/metrics.md).
    """
    from obliviate.generation import GenerationJob, generate_ids, resolve_backend

    unique: dict[str, int] = {}
    for q in questions:
        unique.setdefault(q, len(unique))
    keys = list(unique)
    prompts = [template.prompt_ids(tokenizer, q)[-max_length:] for q in keys]
    use_known = known is not None and resolve_backend(backend, model) == "loop"
    heads = [list(known.get(q, ())) for q in keys] if use_known and known is not None else None
    job = GenerationJob(
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        pad_token_id=pad_id_of(tokenizer),
        eos_token_id=tokenizer.eos_token_id,
        device=model_device(model),
        progress=progress,
        desc=desc,
    )
    ids = generate_ids(model, prompts, job, backend, heads)
    out: list[str] = []
    for row in ids:
        text = tokenizer.decode(row, skip_special_tokens=True)
        for s in stop_strings:
            text = text.split(s)[0]
        out.append(text.strip())
    return [out[unique[q]] for q in questions]


def greedy_prefix(scores: TokenScores) -> list[int]:
    """The first tokens of the greedy answer, read off a teacher-forced pass over a prompt and a
    reference answer: greedy decoding from the same prompt emits the answer tokens that are the
    model's argmax in turn, then, at the first one that is not, the argmax there. The whole
    answer when every token is the argmax (its EOS included when it has one); empty without
    the predicted ids."""
    if scores.predicted is None:
        return []
    missed = np.flatnonzero(~scores.correct)
    n = int(missed[0]) + 1 if missed.size else scores.n
    return [int(t) for t in scores.predicted[:n]]


def greedy_prefixes(
    tokenizer: Any,
    template: PromptTemplate,
    pairs: Iterable[tuple[str, str]],
    scores: Mapping[tuple[str, str], TokenScores],
    max_length: int = 512,
) -> dict[str, list[int]]:
    """``known`` for :func:`generate`: per question, the longest :func:`greedy_prefix` among its
    scored pairs (any reference answer gives a true start of the greedy answer; the longest
    leaves the least to decode), from the pairs whose scored prompt is token for token the
    prompt generation starts from (prompt and answer are tokenised together, and a token
    spanning both would make them differ)."""
    out: dict[str, list[int]] = {}
    prompts: dict[str, list[int]] = {}
    for q, a in pairs:
        if (q, a) not in scores:
            continue
        if q not in prompts:
            prompts[q] = template.prompt_ids(tokenizer, q)
        head = greedy_prefix(scores[(q, a)])
        if len(head) <= len(out.get(q, ())) or len(prompts[q]) >= max_length:
            continue
        if template.pair_ids(tokenizer, q, a)[0] == prompts[q]:
            out[q] = head
    return out


def continue_ids(
    model: CausalLM,
    tokenizer: Any,
    prefixes: Sequence[Sequence[int]],
    lengths: Sequence[int],
    batch_size: int = 32,
    backend: str = "auto",
) -> list[list[int]]:
    """Greedy continuations of token-id prefixes, ``lengths[i]`` new tokens for prefix ``i``
    (fewer when the model emits EOS first), batched by one backend of
    :mod:`obliviate.generation` like :func:`generate`. Greedy decoding is deterministic per row,
    so a row decoded further than its length and cut equals one decoded to its length."""
    from obliviate.generation import GenerationJob, generate_ids

    if len(prefixes) != len(lengths):
        raise ValueError(f"{len(prefixes)} prefixes for {len(lengths)} lengths")
    if not prefixes:
        return []
    job = GenerationJob(
        max_new_tokens=max(lengths),
        batch_size=batch_size,
        pad_token_id=pad_id_of(tokenizer),
        eos_token_id=tokenizer.eos_token_id,
        device=model_device(model),
    )
    return [ids[:n] for ids, n in zip(generate_ids(model, prefixes, job, backend), lengths)]


def score_documents(
    model: CausalLM,
    tokenizer: Any,
    texts: Sequence[str],
    window: int = 512,
    stride: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
    desc: str = "scoring documents",
) -> list[np.ndarray]:
    """log p of every token of each text, however long: the text is cut into windows of
    ``window`` tokens (BOS included; a new window every ``stride`` tokens, the overlap being
    context only, :func:`obliviate.data.muse.encode_documents`) and each token is scored once.
    Returns one array per text holding as many values as the text has tokens (without BOS, the
    first token is not scored: nothing precedes it)."""
    import torch

    from obliviate.data.muse import encode_documents
    from obliviate.data.types import QAItem

    pieces: list[tuple[int, Any]] = []
    for i, text in enumerate(texts):
        for enc in encode_documents(tokenizer, [QAItem("", text)], window, None, stride):
            pieces.append((i, enc))
    from obliviate.parallel_eval import map_batches

    pad = pad_id_of(tokenizer)
    device = model_device(model)
    batches = [pieces[i : i + batch_size] for i in range(0, len(pieces), batch_size)]

    def run(chunk: list[tuple[int, Any]]) -> list[np.ndarray]:
        batch = pad_batch([e.input_ids for _, e in chunk], pad, [e.labels for _, e in chunk])
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        targets = batch["labels"][:, 1:]
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        picked = logp.gather(-1, targets.clamp_min(0)[..., None])[..., 0]
        return [
            picked[row][targets[row] != IGNORE].cpu().numpy().astype(np.float64)
            for row in range(len(chunk))
        ]

    costs = [len(c) * max(len(e.input_ids) for _, e in c) for c in batches]
    with torch.no_grad():
        done = map_batches(batches, costs, run, _bar(desc, progress))
    per_text: list[list[np.ndarray]] = [[] for _ in texts]
    for chunk, arrays in zip(batches, done):
        for (i, _), a in zip(chunk, arrays):
            per_text[i].append(a)
    return [np.concatenate(p) if p else np.zeros(0) for p in per_text]


def score_continuations(
    model: CausalLM,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    batch_size: int = 16,
    max_length: int = 2048,
    progress: bool = False,
    desc: str = "scoring continuations",
) -> list[TokenScores]:
    """:func:`score_pairs` of (prompt, continuation) texts taken as they are (no template, EOS
    not scored), over-long inputs losing the prompt's head (``max_length`` capped by
    :func:`context_length`): the scoring of multiple-choice and fact-completion benchmarks."""
    scores = score_pairs(
        model,
        tokenizer,
        pairs,
        PromptTemplate("raw"),
        batch_size=batch_size,
        max_length=context_length(model, max_length),
        progress=progress,
        desc=desc,
        truncate="left",
    )
    return [s.without_eos() for s in scores]
