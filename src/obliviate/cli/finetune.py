"""`obliviate finetune`: train a target (on full) or retain (on retainNN) model."""

from __future__ import annotations

import argparse

from obliviate.cli._common import add_prompt_and_map_args, add_set_arg, builtin_kwargs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune",
        help="fine-tune a target (split full) or retain (retainNN) model",
        description="Answer-only NLL fine-tuning. Without --model a tiny Llama is trained from "
        "scratch with a tokenizer trained on the benchmark text; pass --tokenizer "
        "with the target's folder when training its retain model.",
    )
    p.add_argument(
        "--data", default="builtin", help="builtin, a TOFU folder, a hub name, or a QA file"
    )
    p.add_argument(
        "--split", default="full", help="training config: full, retain90, retain95, retain99"
    )
    p.add_argument("--out", required=True, help="run folder; the model goes to OUT/model")
    p.add_argument("--model", help="hub name or folder to start from (default: tiny from scratch)")
    p.add_argument("--tokenizer", help="tokenizer folder (default: the model's, or train one)")
    p.add_argument("--size", default="s", choices=["xs", "s", "m", "l"], help="tiny model size")
    p.add_argument("--people", type=int, help="built-in benchmark: number of people")
    p.add_argument(
        "--variants",
        action="store_true",
        help="built-in benchmark: also train on every person QA asked and answered in other "
        "words and on the world facts 3 times, as demo and benchmark do (docs/metrics.md)",
    )
    p.add_argument("--template", default="qa", choices=["qa", "chat", "raw"])
    add_prompt_and_map_args(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run OUT already holds (its old files are removed first)",
    )
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    add_set_arg(p, "training (train.*)", "train.lr=1e-4 or train.epochs=3")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from obliviate import api
    from obliviate.config import parse_overrides
    from obliviate.data.fields import parse_field_map

    over = parse_overrides(args.overrides)
    train = over.pop("train", {})
    if over:
        raise ValueError(f"finetune takes only train.* overrides, not {sorted(over)}")
    builtin = builtin_kwargs(args)
    if args.variants:
        if args.data != "builtin":
            raise ValueError("--variants applies only to --data builtin")
        from obliviate.data.training_data import TINY_TRAINING_VARIANTS

        builtin = {**(builtin or {}), **TINY_TRAINING_VARIANTS}
    res = api.finetune(
        data=args.data,
        split=args.split,
        out=args.out,
        model=args.model,
        tokenizer=args.tokenizer,
        size=args.size,
        train=train,
        template=args.template,
        system_prompt=args.system_prompt,
        field_map=parse_field_map(args.field_map),
        builtin=builtin,
        seed=args.seed,
        progress=not args.no_progress,
        trust_remote_code=args.trust_remote_code,
        overwrite=args.overwrite,
    )
    last = res.train_log[-1]["loss"] if res.train_log else float("nan")
    print(
        f"saved {res.path} ({res.params:,} parameters, {res.wall_s:.0f} s, final loss {last:.4f})"
    )
    return 0
