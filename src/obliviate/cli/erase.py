"""`obliviate erase`: erase a concept from a text-to-image diffusion model and evaluate it."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "erase",
        help="erase a concept (object, colour, style) from a diffusion model",
        description="Erase a concept from a text-to-image diffusion model with ESD, Concept "
        "Ablation, UCE, SalUn, Forget-Me-Not, Selective Amnesia, EraseDiff or SPM, evaluate "
        "before and after (optionally under the UnlearnDiff attack), and write a run folder. The default model is the built-in tiny shapes model (trained "
        "on first use, about 11 minutes on 2 CPU cores, then cached); --model takes a "
        "Stable Diffusion pipeline folder or hub name. Needs the 'diffusion' extra.",
    )
    p.add_argument("--concept", help="the concept to erase, e.g. red or circle (built-in model)")
    p.add_argument("--method", default="esd-x", help="eraser (default: esd-x; see --list)")
    p.add_argument(
        "--model",
        default="builtin",
        help="'builtin' (default) or a diffusers pipeline folder / hub name",
    )
    p.add_argument(
        "--judge",
        help="judge folder for a shapes pipeline given by --model "
        "(default: the built-in judge with --model builtin)",
    )
    p.add_argument("--out", help="run folder (default: runs/erase-<concept>-<method>)")
    p.add_argument(
        "--anchor",
        help="replacement for the concept in CA's anchor, UCE's guide and "
        "SalUn's mismatched prompts; '' removes the word (default: "
        "built-in model, the next concept of the kind, red->green, "
        "circle->square; other pipelines, '')",
    )
    p.add_argument(
        "--prompt",
        dest="prompts",
        action="append",
        metavar="TEXT",
        help="an erase prompt containing the concept (repeatable; default: the "
        "built-in captions, or the concept itself)",
    )
    p.add_argument(
        "--preserve",
        action="append",
        metavar="TEXT",
        help="a prompt to preserve (repeatable; default: the built-in model's other "
        "captions, none for other models)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a hyper-parameter of the method, e.g. lr=1e-4 (repeatable)",
    )
    p.add_argument(
        "--preset",
        choices=["builtin", "paper"],
        help="hyper-parameter preset (default: builtin for the built-in model, paper otherwise)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--images-per-prompt", type=int, help="evaluation images per prompt (default 32)"
    )
    p.add_argument("--sampling-steps", type=int, help="DDIM steps for evaluation (default 25)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance (default 3.0)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smaller built-in model and fewer evaluation images (smoke test)",
    )
    p.add_argument(
        "--cache-dir",
        help="where the built-in model is cached (default: $OBLIVIATE_CACHE or ~/.cache/obliviate)",
    )
    p.add_argument(
        "--attack",
        choices=["unlearndiff"],
        help="after erasing, attack the erased model and the original (the control) with "
        "adversarial prompts (UnlearnDiff, arXiv 2310.11868); needs a judge",
    )
    p.add_argument(
        "--attack-set",
        dest="attack_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an attack setting, e.g. tokens=3 or steps=20 (repeatable)",
    )
    p.add_argument("--no-save-model", action="store_true", help="do not save the erased pipeline")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument(
        "--demo",
        action="store_true",
        help="run every method on the built-in model and write a comparison",
    )
    p.add_argument("--list", action="store_true", help="list the erasers and exit")
    p.set_defaults(func=run)


def _parse_overrides(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. lr=1e-4")
        out[key.strip()] = value.strip()
    return out


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    try:
        import diffusers  # noqa: F401
    except ImportError:
        print(
            "obliviate erase: the 'diffusion' extra is not installed; "
            "pip install 'obliviate[diffusion]'",
            file=sys.stderr,
        )
        return 2
    from obliviate.registry import ERASERS

    if args.list:
        for e in ERASERS.entries():
            print(f"{e.name:8s} {e.description}  [{e.paper}]")
        return 0
    if args.demo:
        from obliviate.recipes.diffusion import DEMO_CONCEPT, run_demo

        run_demo(
            Path(args.out or "runs/demo-diffusion"),
            quick=args.quick,
            concept=args.concept or DEMO_CONCEPT,
            cache_dir=args.cache_dir,
            seed=args.seed,
        )
        return 0
    if not args.concept:
        raise ValueError("--concept is required (e.g. --concept red), or use --demo / --list")
    ERASERS.entry(args.method)  # unknown names fail here, with suggestions
    overrides = _parse_overrides(args.overrides)
    attack_overrides = _parse_overrides(args.attack_overrides)

    import dataclasses

    from obliviate.diffusion.evaluate import EvalConfig
    from obliviate.diffusion.run import erase_run, load_setup

    ev = EvalConfig(images_per_prompt=16 if args.quick else 32)
    changes = {
        k: v
        for k, v in (
            ("images_per_prompt", args.images_per_prompt),
            ("steps", args.sampling_steps),
            ("guidance", args.guidance),
        )
        if v is not None
    }
    ev = dataclasses.replace(ev, **changes)
    out = Path(args.out or f"runs/erase-{args.concept.replace(' ', '_')}-{args.method}")
    setup = load_setup(
        args.model,
        args.cache_dir,
        quick=args.quick,
        device=args.device,
        log=print,
        judge=args.judge,
    )
    doc, _ = erase_run(
        out,
        args.concept,
        args.method,
        setup=setup,
        overrides=overrides,
        preset=args.preset,
        anchor=args.anchor,
        prompts=args.prompts,
        preserve=args.preserve,
        seed=args.seed,
        eval_config=ev,
        save_model=not args.no_save_model,
        log=print,
        attack=args.attack,
        attack_overrides=attack_overrides,
    )
    if doc["metrics"]:
        print(f"\n{'metric':32s} {'before':>8s} {'after':>8s}")
        for k, m in doc["metrics"].items():
            b = (doc.get("before") or {}).get(k)
            bs = "-" if b is None else f"{b:8.3f}"
            print(f"{k:32s} {bs:>8s} {m['value']:8.3f}")
    if "attack" in doc:
        print(f"\n{'attack ' + args.attack:32s} {'plain':>8s} {'attack':>8s} {'n':>4s}")
        for m in ("erased", "original"):
            r = doc["attack"][m]
            cells = [
                "-" if r[k] is None else f"{r[k]:8.3f}"
                for k in ("plain_success_rate", "attack_success_rate")
            ]
            print(f"{m + ' model':32s} {cells[0]:>8s} {cells[1]:>8s} {r['attacks']:4d}")
    print(f"\nrun folder: {out} (grid_before.png, grid_after.png, metrics.json)")
    return 0
