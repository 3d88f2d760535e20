"""Greedy generation backends for evaluation: prompts (token ids) in, new token ids out.

:func:`obliviate.scoring.generate` dedupes the prompts, hands them to one backend and decodes
what it returns. A backend gets every prompt at once and returns, per prompt, the greedy
continuation up to (without) the first EOS, at most ``max_new_tokens`` tokens
(docs/metrics.md, "Generation"):

- ``loop``: obliviate's decode loop (:mod:`obliviate.decoding`) over a plain Hugging Face model:
  length-sorted batches, the prompt run once into a KV cache, one token per row per step, and a
  row that emitted EOS leaves the batch (its cache rows too). No per-step logits processors or
  stopping criteria; only the last position's logits are computed.
- ``hf``: the model's own ``generate(do_sample=False)`` on the same batches (the path before
  ``loop``; PEFT models, inference wrappers and the SISA ensemble use it, their ``generate``
  being their own loop).
- ``vllm``: vLLM's offline engine on the model's folder (extra ``obliviate[vllm]``, a CUDA GPU).
- ``auto`` (default): ``loop`` for a plain Hugging Face model whose generation config changes
  nothing in greedy decoding (:func:`greedy_changers`), ``hf`` for anything else.

A backend is a function ``backend(model, prompts, job) -> list[list[int]]``; register another
one in :data:`GENERATION_BACKENDS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from obliviate.decoding import eos_ids, greedy_generate, hf_select, hf_step


@dataclass(frozen=True)
class GenerationJob:
    """What every backend needs besides the model and the prompts."""

    max_new_tokens: int
    batch_size: int
    pad_token_id: int
    eos_token_id: Any  # None, an id or a list of ids
    device: Any = None
    progress: bool = False
    desc: str = "generating"


Backend = Callable[[Any, Sequence[Sequence[int]], GenerationJob], list[list[int]]]
GENERATION_BACKENDS: dict[str, Backend] = {}


def register_backend(name: str) -> Callable[[Backend], Backend]:
    """Decorator: make ``fn`` the generation backend called ``name``."""

    def wrap(fn: Backend) -> Backend:
        GENERATION_BACKENDS[name] = fn
        return fn

    return wrap


def is_plain_hf(model: Any) -> bool:
    """A transformers model itself (not a PEFT model, inference wrapper or ensemble)."""
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - transformers is a dependency
        return False
    return isinstance(model, PreTrainedModel)


# generation-config fields that change greedy tokens in ``generate``, with their neutral values
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "repetition_penalty": (None, 1.0),
    "encoder_repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "min_length": (None, 0),
    "min_new_tokens": (None, 0),
    "bad_words_ids": (None, []),
    "suppress_tokens": (None, []),
    "begin_suppress_tokens": (None, []),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "sequence_bias": (None, {}),
    "exponential_decay_length_penalty": (None,),
}


def greedy_changers(model: Any) -> list[str]:
    """The fields of the model's generation config that make HF ``generate`` differ from plain
    greedy decoding (a repetition penalty, suppressed tokens...); ``auto`` leaves such models
    to ``generate``."""
    cfg = getattr(model, "generation_config", None)
    if cfg is None:
        return []
    return [k for k, neutral in _NEUTRAL.items() if getattr(cfg, k, None) not in neutral]


def resolve_backend(name: str, model: Any) -> str:
    """The backend that ``name`` means for ``model`` (``auto`` picks one); a one-sentence
    ValueError for an unknown name or a backend that cannot run this model."""
    if name == "auto":
        return "loop" if is_plain_hf(model) and not greedy_changers(model) else "hf"
    if name not in GENERATION_BACKENDS:
        known = ", ".join(["auto", *sorted(GENERATION_BACKENDS)])
        raise ValueError(f"unknown generation_backend {name!r}; choose one of {known}")
    if name == "loop" and not is_plain_hf(model):
        raise ValueError(
            f"generation_backend=loop runs plain Hugging Face models only, not a "
            f"{type(model).__name__}; use generation_backend=auto (or hf)"
        )
    return name


KV_CACHE_BUDGET = 1 << 30  # bytes of KV cache a generation batch may fill by default
MAX_ROWS = 1024


def cache_rows(model: Any, positions: int, floor: int) -> int:
    """Rows per generation batch: as many as fit ``positions`` KV-cache positions each into
    :data:`KV_CACHE_BUDGET` (keys and values of every layer, in the model's dtype), at least
    ``floor`` and at most :data:`MAX_ROWS`; ``floor`` for a model whose config does not give
    its layer sizes. On a small model the decode step costs about the same for one row as for
    hundreds, so one wide batch with finished rows dropped needs far fewer steps than many
    narrow ones; on a large one the cache bounds the batch."""
    cfg = getattr(model, "config", None)
    cfg = getattr(cfg, "text_config", None) or cfg
    sizes = [
        getattr(cfg, k, None) for k in ("num_hidden_layers", "num_attention_heads", "hidden_size")
    ]
    if not all(isinstance(v, int) and v > 0 for v in sizes):
        return floor
    layers, heads, hidden = (int(v) for v in sizes)  # type: ignore[arg-type]
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or hidden // heads
    size = getattr(getattr(model, "dtype", None), "itemsize", 4)  # of the activations
    per_row = 2 * layers * kv_heads * head_dim * size * max(positions, 1)
    return max(floor, min(MAX_ROWS, KV_CACHE_BUDGET // per_row))


def cut_at_eos(ids: Sequence[int], eos_token_id: Any) -> list[int]:
    """``ids`` up to (without) the first EOS id."""
    stops = set(eos_ids(eos_token_id))
    out: list[int] = []
    for t in ids:
        if int(t) in stops:
            break
        out.append(int(t))
    return out


def generate_ids(
    model: Any,
    prompts: Sequence[Sequence[int]],
    job: GenerationJob,
    backend: str = "auto",
    heads: Sequence[Sequence[int]] | None = None,
) -> list[list[int]]:
    """Greedy continuations (new tokens before the first EOS) of each prompt, in order.

    ``heads[i]``, when given, are tokens the greedy continuation of prompt ``i`` is known to
    start with (:func:`obliviate.scoring.greedy_prefix`): they are taken as they are, a head
    that holds EOS or fills ``max_new_tokens`` ends the row without decoding, and the rest
    are decoded from the prompt followed by their head."""
    from obliviate.parallel_eval import current

    name = resolve_backend(backend, model)
    if name == "vllm" and current() is not None:
        raise ValueError(
            "generation_backend=vllm runs its own engine in one process: evaluate with it "
            "without torchrun, or use generation_backend=auto under torchrun"
        )
    fn = GENERATION_BACKENDS[name]
    if not prompts:
        return []
    if heads is None:
        return fn(model, prompts, job)
    n = job.max_new_tokens
    stops = set(eos_ids(job.eos_token_id))
    cut = [list(h)[:n] for h in heads]
    out = [cut_at_eos(h, job.eos_token_id) for h in cut]
    todo = [i for i, h in enumerate(cut) if len(h) < n and not stops.intersection(h)]
    budgets = [n - len(cut[i]) for i in todo]
    rest = replace(job, max_new_tokens=max(budgets, default=0))
    # greedy decoding is deterministic per row: decoded past its budget and cut, a row equals
    # the row decoded to its budget
    new = fn(model, [list(prompts[i]) + cut[i] for i in todo], rest) if todo else []
    for i, b, ids in zip(todo, budgets, new):
        out[i] = cut[i] + ids[:b]
    return out


def run_batches(
    prompts: Sequence[Sequence[int]],
    job: GenerationJob,
    run: Callable[[Any, Any], Any],
) -> list[list[int]]:
    """Length-sorted (longest first), left-padded batches through ``run(input_ids, mask)``,
    which returns prompt + new tokens; results in input order, cut at EOS. In a data-parallel
    evaluation each rank runs its share of the batches (:mod:`obliviate.parallel_eval`)."""
    import torch

    from obliviate.data.collate import pad_batch
    from obliviate.parallel_eval import map_batches

    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
    batches = [order[i : i + job.batch_size] for i in range(0, len(order), job.batch_size)]

    def one(idx: list[int]) -> list[list[int]]:
        batch = pad_batch([list(prompts[i]) for i in idx], job.pad_token_id, side="left")
        if job.device is not None:
            batch = {k: v.to(job.device) for k, v in batch.items()}
        gen = run(batch["input_ids"], batch["attention_mask"])
        new = gen[:, batch["input_ids"].shape[1] :].tolist()
        return [cut_at_eos(row, job.eos_token_id) for row in new]

    def bar(todo: list[int]) -> Any:
        from tqdm.auto import tqdm

        return tqdm(todo, desc=job.desc, total=len(todo), leave=False)

    # the work of a batch: its rows times the longest prompt (the first) plus the new tokens
    costs = [len(idx) * (len(prompts[idx[0]]) + job.max_new_tokens) for idx in batches]
    out: list[list[int]] = [[] for _ in prompts]
    with torch.no_grad():
        done = map_batches(batches, costs, one, bar if job.progress else None)
    for idx, rows in zip(batches, done):
        for i, ids in zip(idx, rows):
            out[i] = ids
    return out


@register_backend("loop")
def loop_backend(
    model: Any, prompts: Sequence[Sequence[int]], job: GenerationJob
) -> list[list[int]]:
    """obliviate's decode loop with finished rows dropped from the batch."""
    step = hf_step(model)

    def run(input_ids: Any, mask: Any) -> Any:
        return greedy_generate(
            step,
            input_ids,
            mask,
            job.max_new_tokens,
            job.pad_token_id,
            job.eos_token_id,
            select=hf_select,
        )

    return run_batches(prompts, job, run)


@register_backend("hf")
def hf_backend(model: Any, prompts: Sequence[Sequence[int]], job: GenerationJob) -> list[list[int]]:
    """The model's own ``generate(do_sample=False)`` per batch."""

    def run(input_ids: Any, mask: Any) -> Any:
        return model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=job.max_new_tokens,
            do_sample=False,
            use_cache=True,
            pad_token_id=job.pad_token_id,
            eos_token_id=job.eos_token_id,
        )

    return run_batches(prompts, job, run)


@register_backend("vllm")
def vllm_backend(
    model: Any, prompts: Sequence[Sequence[int]], job: GenerationJob
) -> list[list[int]]:
    """vLLM's offline engine (:mod:`obliviate.generation_vllm`)."""
    from obliviate.generation_vllm import vllm_generate

    return vllm_generate(model, prompts, job)
