"""`obliviate eval`: the benchmark's metric suite on one model."""

from __future__ import annotations

import argparse
from typing import Any

from obliviate.cli._common import add_data_args, add_set_arg, data_kwargs

EPILOG = """\
examples:
  obliviate eval --model runs/npo --retain-model runs/retain --split forget10 --out runs/npo
  obliviate eval --model runs/target --forget forget.jsonl --retain retain.jsonl --set generate=false
  obliviate eval --benchmark builtin-muse --model runs/npo --set max_items=4
  obliviate eval --model runs/npo --retain-results saves/eval/retain/TOFU_EVAL.json
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a model with a benchmark's metric suite",
        description="Any registered benchmark (--benchmark NAME, see `obliviate ls "
        "benchmarks`; default tofu). Writes metrics.json and "
        "samples.jsonl to --out. With "
        "--retain-model, forget quality and privleak are computed "
        "against it (its evaluation is cached inside its run folder, under evals/). "
        "An evaluation in --out is reused only when the model (every weight byte and the "
        "tokenizer), the data and the settings are unchanged. A metric that cannot be "
        "computed is printed as n/a with the reason (docs/run-format.md). Under `torchrun "
        "--nproc_per_node N` the processes share the scoring and generation and rank 0 writes "
        "(docs/scale-out.md).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="model folder, run folder or hub name")
    ref = p.add_mutually_exclusive_group()
    ref.add_argument("--retain-model", help="the retain (gold-standard) model")
    ref.add_argument(
        "--retain-results",
        metavar="FILE",
        help="the retain model's results instead of the model: an open-unlearning log "
        "(TOFU_EVAL.json, MUSE_EVAL.json) or an obliviate run folder (docs/run-format.md)",
    )
    p.add_argument("--out", help="run folder for the results")
    p.add_argument(
        "--no-reuse", action="store_true", help="recompute even if results with the same key exist"
    )
    p.add_argument(
        "--role",
        choices=["target", "retain", "unlearned"],
        help="the model's role in reports (default: from the model's run: unlearn -> "
        "unlearned, finetune on retainNN -> retain, otherwise target)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an evaluation of another model that --out already holds",
    )
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bars, no library warnings"
    )
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow a model that ships its own Python code (only if you trust its author)",
    )
    add_data_args(p)
    add_set_arg(
        p, "evaluation (batch_size, max_new_tokens, min_k, ...)", "batch_size=8 or generate=false"
    )
    p.set_defaults(func=run)


def goal_text(name: str, record: dict[str, Any]) -> str:
    """What "better" means for a recorded metric: ``ideal 0.5`` when the record or the
    catalogue gives an ideal value (MIA AUCs: the retain model's level), else its direction."""
    ideal = record.get("ideal")
    if ideal is None:
        from obliviate.registry import METRICS

        entry = METRICS.find(name)
        ideal = getattr(entry.load(), "ideal", None) if entry is not None else None
    if ideal is not None:
        return f"ideal {ideal:g}"
    if record["direction"] == "zero":
        return "closest to 0 is best"
    return f"{record['direction']} is better"


def print_metrics(metrics: dict[str, Any], unavailable: dict[str, str] | None = None) -> None:
    """One line per metric (value and goal), then one per metric that could not be computed,
    with the reason (docs/run-format.md, ``unavailable``)."""
    unavailable = unavailable or {}
    width = max((len(k) for k in [*metrics, *unavailable]), default=0)
    for k in sorted(metrics):
        m = metrics[k]
        print(f"{k:<{width}}  {m['value']:.4g}  ({goal_text(k, m)})")
    for k in sorted(unavailable):
        print(f"{k:<{width}}  n/a  ({unavailable[k]})")
    for k in sorted(metrics):
        m = metrics[k]
        if m.get("truncated_inputs"):
            print(
                f"note: {k}: {m['truncated_inputs']} of {m.get('n', '?')} inputs were longer "
                f"than the model's context ({m.get('context')} tokens) and were left-truncated"
            )
        if m.get("tokens_dropped"):
            print(f"note: {k}: {m['tokens_dropped']} tokens beyond the context were not scored")


def print_result(result: Any) -> None:
    """:func:`print_metrics` of an evaluation, then its notes on the inputs."""
    print_metrics(result.metrics, getattr(result, "unavailable", None))
    for note in getattr(result, "notes", []):
        print(f"note: {note}")


def run(args: argparse.Namespace) -> int:
    from obliviate import api
    from obliviate.config import parse_overrides
    from obliviate.parallel_eval import launched

    with launched() as main:  # under torchrun: the ranks share the work, rank 0 writes
        result = api.evaluate(
            args.model,
            retain_model=args.retain_model,
            retain_results=args.retain_results,
            out=args.out,
            settings=parse_overrides(args.overrides),
            progress=not args.no_progress,
            reuse=not args.no_reuse,
            overwrite=args.overwrite,
            meta={"role": args.role} if args.role else None,
            trust_remote_code=args.trust_remote_code,
            **data_kwargs(args),
        )
        if main:
            print_result(result)
    return 0
