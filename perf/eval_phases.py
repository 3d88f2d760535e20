"""Where a full TOFU forget10 evaluation spends its time, and how far each phase is from its floor.

Runs obliviate's evaluation (every metric, with generation) on a model and prints, per phase,
its wall time and its ratio to a floor on exactly the same inputs:

- scoring: one bare forward pass (no grad, logits only) over the very token batches the scoring
  pass builds;
- generation: one bare batched greedy decode (a minimal loop with a dynamic KV cache, the whole
  batch kept until its last row ends) over the same prompts in the same batches;

then times the generation paths against each other on the same prompts, alternating them
(A/B/A/B over ``--repeats`` rounds: median and best wall time, median CPU time), and checks
that all return the same token ids: the model's ``generate`` (the path before), obliviate's loop
keeping finished rows, the loop dropping them, the same in one wide batch
(:func:`obliviate.generation.cache_rows`), and the wide loop that takes each answer's greedy
head from the scoring pass and decodes only the rest (the evaluation's default).

    .venv/bin/python perf/eval_phases.py                 # trains a tiny target first (~1-2 min)
    .venv/bin/python perf/eval_phases.py --model runs/demo/target/model
    .venv/bin/python perf/eval_phases.py --data ../shared/data/tofu --model DIR
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any


def capture(module: Any, name: str, store: list) -> Callable[[], None]:
    """Wrap ``module.name`` so that each call's arguments are kept; returns the undo."""
    original = getattr(module, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        store.append((args, kwargs))
        return original(*args, **kwargs)

    setattr(module, name, wrapped)
    return lambda: setattr(module, name, original)


def scoring_floor(model: Any, tok: Any, pairs: list, template: Any, kw: dict) -> float:
    """One bare forward over the batches ``score_pairs`` builds (same dedupe, order, padding)."""
    import torch

    from obliviate.data.collate import pad_batch, pad_id_of
    from obliviate.data.templates import encode

    keys = list(dict.fromkeys(pairs))
    enc = [encode(tok, q, a, template, max_length=kw["max_length"]).input_ids for q, a in keys]
    order = sorted(range(len(enc)), key=lambda i: len(enc[i]), reverse=True)
    bs = kw["batch_size"]
    batches = [pad_batch([enc[i] for i in order[j : j + bs]], pad_id_of(tok)) for j in
               range(0, len(order), bs)]  # fmt: skip
    t0 = time.perf_counter()
    with torch.no_grad():
        for b in batches:
            model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
    return time.perf_counter() - t0


def scoring_paths(model: Any, tok: Any, pairs: list, template: Any, kw: dict, repeats: int):
    """Median wall time of the scoring pass with one forward pass per pair (before) and with
    each distinct prompt run once (now), alternating, and the largest difference between
    their per-token log-probabilities."""
    import numpy as np

    from obliviate.scoring import score_pairs

    times: dict[str, list[float]] = {"before": [], "now": []}
    out: dict[str, list] = {}
    for _ in range(repeats):
        for name, share in (("before", False), ("now", True)):
            t0 = time.perf_counter()
            out[name] = score_pairs(model, tok, pairs, template, batch_size=kw["batch_size"],
                                    max_length=kw["max_length"], progress=False,
                                    share_prompts=share)  # fmt: skip
            times[name].append(time.perf_counter() - t0)
    diff = max(
        float(np.abs(a.token_logprobs - b.token_logprobs).max(initial=0.0))
        for a, b in zip(out["before"], out["now"])
    )
    return {**{k: statistics.median(v) for k, v in times.items()}, "diff": diff}


def bare_decode(model: Any, job: Any) -> Callable[[Any, Any], Any]:
    """The minimal greedy loop: prompt once into a dynamic cache, one token per step, the whole
    batch until every row has emitted EOS."""
    import torch

    from obliviate.decoding import cache_argument, positions

    name = cache_argument(model)

    def run(ids: Any, mask: Any) -> Any:
        out, cache, done = [], None, torch.zeros(ids.shape[0], dtype=torch.bool)
        pos = positions(mask)
        x = ids
        for _ in range(job.max_new_tokens):
            o = model(input_ids=x, attention_mask=mask, position_ids=pos, use_cache=True,
                      logits_to_keep=1, **{name: cache})  # fmt: skip
            cache = getattr(o, name)
            nxt = o.logits[:, -1].argmax(-1).masked_fill(done, job.pad_token_id)
            out.append(nxt)
            done |= nxt == job.eos_token_id
            if bool(done.all()):
                break
            x, pos = nxt[:, None], pos[:, -1:] + 1
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        return torch.cat([ids, torch.stack(out, 1)], 1)

    return run


def generation_paths(
    model: Any, job: Any, wide: Any, heads: Callable[[], list]
) -> dict[str, Callable[[list], list]]:
    """Each generation path as ``prompts -> new token ids``; ``wide`` is the job with the
    evaluation's default batch width, ``heads()`` reads the greedy heads off the scores."""
    from obliviate.decoding import greedy_generate, hf_step
    from obliviate.generation import generate_ids, hf_backend, loop_backend, run_batches

    step = hf_step(model)

    def keep_rows(ids: Any, mask: Any) -> Any:
        return greedy_generate(
            step, ids, mask, job.max_new_tokens, job.pad_token_id, job.eos_token_id
        )

    b, w = job.batch_size, wide.batch_size
    return {
        f"bare loop, batch {b} (floor)": lambda p: run_batches(p, job, bare_decode(model, job)),
        f"bare loop, batch {w} (floor)": lambda p: run_batches(p, wide, bare_decode(model, wide)),
        f"HF generate, batch {b} (before)": lambda p: hf_backend(model, p, job),
        f"loop, batch {b}, finished rows kept": lambda p: run_batches(p, job, keep_rows),
        f"loop, batch {b}, finished rows dropped": lambda p: loop_backend(model, p, job),
        f"loop, batch {w}, rows dropped": lambda p: loop_backend(model, p, wide),
        f"loop, batch {w}, heads from scoring (now)": lambda p: generate_ids(
            model, p, wide, "loop", heads()
        ),
    }


def main() -> None:
    import torch

    from obliviate import api, scoring
    from obliviate.data.templates import PromptTemplate
    from obliviate.evaluation import EvalSettings, evaluate_model
    from obliviate.generation import GenerationJob, cache_rows
    from obliviate.models.loading import load_model, load_tokenizer

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="a model folder (default: train a tiny one)")
    ap.add_argument("--data", default="builtin", help="builtin, or a TOFU folder")
    ap.add_argument("--people", type=int, default=30, help="built-in data: authors")
    ap.add_argument("--size", default="xs", help="tiny model size when training (xs, s, m, l)")
    ap.add_argument("--max-new-tokens", type=int, default=EvalSettings.max_new_tokens)
    ap.add_argument("--batch-size", type=int, default=EvalSettings.batch_size)
    ap.add_argument("--repeats", type=int, default=3, help="alternating rounds per path")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    builtin = {"n_people": args.people} if args.data == "builtin" else None
    path = args.model
    if path is None:
        print(f"training a tiny {args.size} target on {args.data} ...", flush=True)
        path = str(
            api.finetune(
                data=args.data, split="full", out=tempfile.mkdtemp(), size=args.size,
                builtin=builtin, progress=False,
            ).path
        )  # fmt: skip
    tok, model = load_tokenizer(path), load_model(path)
    model.eval()
    request = api.load_request(args.data, "forget10", builtin=builtin)
    template = PromptTemplate()
    settings = EvalSettings(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)

    warm = {k: v[:4] for k, v in request.eval.items()}  # first calls pay one-time costs
    scoring.score_pairs(model, tok, [(i.question, i.answer) for i in warm["forget"]], template,
                        progress=False)  # fmt: skip
    scoring.generate(model, tok, [i.question for i in warm["forget"]], template, progress=False)
    scored: list = []
    generated: list = []
    undo = [capture(scoring, "score_pairs", scored), capture(scoring, "generate", generated)]
    try:
        t0 = time.perf_counter()
        result = evaluate_model(model, tok, request, template, settings, progress=False)
        total = time.perf_counter() - t0
    finally:
        for u in undo:
            u()
    t_score, t_gen = result.timing["score_s"], result.timing["generate_s"]
    (s_args, s_kw), (g_args, _) = scored[0], generated[0]
    pairs, questions = s_args[2], g_args[2]
    floor_score = scoring_floor(model, tok, list(pairs), template, s_kw)
    shared = scoring_paths(model, tok, list(pairs), template, s_kw, args.repeats)
    prompts = [
        template.prompt_ids(tok, q)[-settings.max_length :] for q in dict.fromkeys(questions)
    ]
    job = GenerationJob(
        max_new_tokens=settings.max_new_tokens,
        batch_size=settings.batch_size,
        pad_token_id=scoring.pad_id_of(tok),
        eos_token_id=tok.eos_token_id,
    )
    width = cache_rows(model, settings.max_length + settings.max_new_tokens, settings.batch_size)
    wide = replace(job, batch_size=width)
    scores = dict(zip(pairs, scoring.score_pairs(model, tok, pairs, template, progress=False)))
    keys = list(dict.fromkeys(questions))
    asked = set(keys)

    def heads() -> list:
        pairs_asked = (p for p in scores if p[0] in asked)
        known = scoring.greedy_prefixes(tok, template, pairs_asked, scores, settings.max_length)
        return [known.get(q, []) for q in keys]

    paths = generation_paths(model, job, wide, heads)
    times: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    outputs: dict[str, list] = {}
    for _ in range(args.repeats):  # alternate the paths: contention hits all of them alike
        for name, fn in paths.items():
            t0, c0 = time.perf_counter(), time.process_time()
            outputs[name] = fn(prompts)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    med = {name: statistics.median(v) for name, v in times.items()}
    best = {name: min(v) for name, v in times.items()}
    cpu_med = {name: statistics.median(v) for name, v in cpu.items()}
    names = list(paths)
    floor_gen = min(med[names[0]], med[names[1]])
    before, previous, now = names[2], names[4], names[-1]

    n_tok = sum(len(p) for p in prompts)
    n_new = sum(len(o) for o in outputs[before])
    print(
        f"model {path}\nthreads {args.threads}; {len(set(pairs))} unique scored pairs, "
        f"{len(prompts)} unique prompts ({n_tok} prompt tokens, {n_new} generated tokens, "
        f"max_new_tokens {settings.max_new_tokens}, scoring batch {settings.batch_size}, "
        f"generation batch {width})\n"
    )
    print(f"{'phase':<12}{'time (s)':>10}{'floor (s)':>11}{'x floor':>9}")
    print(f"{'scoring':<12}{t_score:>10.2f}{floor_score:>11.2f}{t_score / floor_score:>9.2f}")
    print(
        f"  scoring, one pass per pair (before) {shared['before']:.2f} s, each prompt once (now) "
        f"{shared['now']:.2f} s: {shared['before'] / shared['now']:.2f}x; largest log-prob "
        f"difference {shared['diff']:.1e}"
    )
    print(f"{'generation':<12}{t_gen:>10.2f}{floor_gen:>11.2f}{t_gen / floor_gen:>9.2f}")
    print(f"{'rest':<12}{total - t_score - t_gen:>10.2f}")
    print(f"{'total':<12}{total:>10.2f}\n")
    print(
        f"generation paths, {args.repeats} alternating rounds: median and best wall time, median "
        "CPU time (all threads; less sensitive to other processes than wall time)"
    )
    ref = outputs[before]
    print(
        f"{'path':<44}{'median s':>9}{'best s':>8}{'CPU s':>8}{'vs before':>11}{'vs floor':>9}"
        "  same ids"
    )
    for name in paths:
        same = "yes" if outputs[name] == ref else "NO"
        speed = med[before] / med[name]
        print(
            f"{name:<44}{med[name]:>9.2f}{best[name]:>8.2f}{cpu_med[name]:>8.2f}{speed:>10.2f}x"
            f"{med[name] / floor_gen:>9.2f}  {same}"
        )
    for label, old in (("before", before), ("the previous default", previous)):
        print(
            f"now vs {label}: {med[old] / med[now]:.2f}x median wall, "
            f"{best[old] / best[now]:.2f}x best wall, {cpu_med[old] / cpu_med[now]:.2f}x CPU"
        )


if __name__ == "__main__":
    main()
