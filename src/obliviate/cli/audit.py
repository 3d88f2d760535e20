"""`obliviate audit`: robustness attacks on an unlearned model (docs/audit.md)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="robustness attacks on an unlearned model (relearning, quantisation, probes)",
        description="Attacks the unlearned model (relearning on half the forget set, 8/4-bit "
        "quantisation, paraphrased and jailbreak-wrapped questions, a linear probe on "
        "hidden states) and scores each by its recoverability against the target and "
        "retain models; also runs all six membership-inference attacks and fluency "
        "checks. Writes an 'audit' section into OUT/metrics.json and OUT/audit.md.",
    )
    p.add_argument("--model", required=True, help="the unlearned model: model folder or run folder")
    p.add_argument(
        "--target",
        "--target-model",
        dest="target_model",
        required=True,
        help="the model before unlearning (model or run folder)",
    )
    p.add_argument(
        "--retain",
        "--retain-model",
        dest="retain_model",
        required=True,
        help="the retain (gold-standard) model, never trained on the forget set",
    )
    p.add_argument(
        "--out",
        help="run folder for the results (default: --model when it is a run "
        "folder, i.e. holds model/)",
    )
    p.add_argument(
        "--attacks",
        help="comma-separated subset of relearn, quantise, paraphrase, "
        "jailbreak, probe, embedding, mia, fluency (default: all that the data allows)",
    )
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        default="builtin",
        help="'builtin', a folder of TOFU <config>.jsonl files, or locuslab/TOFU",
    )
    g.add_argument("--split", default="forget10", help="forget split (default: forget10)")
    g.add_argument("--forget-file", help="your own forget file instead of a benchmark")
    g.add_argument("--retain-file", help="your own retain file")
    g.add_argument("--holdout-file", help="your own holdout file (MIA non-members)")
    g.add_argument("--people", type=int, help="built-in benchmark: number of fictitious people")
    g.add_argument(
        "--template", default="qa", choices=["qa", "chat", "raw"], help="prompt template"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="audit setting, e.g. relearn_steps=20, relearn_lr=1e-4, quant_bits=[8,4], "
        "max_new_tokens=64 (repeatable; see docs/audit.md)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from obliviate.audits.report import audit_markdown
    from obliviate.audits.runner import run_audit
    from obliviate.config import parse_overrides
    from obliviate.parallel_eval import launched

    settings = parse_overrides(args.overrides)
    if args.attacks:
        settings["attacks"] = [a.strip() for a in args.attacks.split(",") if a.strip()]
    out = args.out
    if out is None:
        if not (Path(args.model) / "model").is_dir():
            raise ValueError("--out is required when --model is not a run folder (one with model/)")
        out = args.model
    builtin = {"n_people": args.people} if args.data == "builtin" and args.people else None
    with launched() as main:  # under torchrun: the ranks share the scoring, rank 0 writes
        result = run_audit(
            args.model,
            args.target_model,
            args.retain_model,
            data=args.data,
            split=args.split,
            forget=args.forget_file,
            retain=args.retain_file,
            holdout=args.holdout_file,
            out=out,
            template=args.template,
            settings=settings,
            builtin=builtin,
            progress=not args.no_progress,
        )
    if main:
        print(audit_markdown(result))
        print(f"wrote {Path(out) / 'metrics.json'} and {Path(out) / 'audit.md'}")
    return 0
