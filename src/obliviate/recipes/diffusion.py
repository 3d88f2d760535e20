"""The diffusion recipe: erase one concept from the tiny shapes model with every method.

``run_demo(out_dir)`` trains (or loads from the cache) the tiny model and its judge, evaluates
the original, runs every registered eraser from the same starting weights, and writes a group
folder (docs/run-format.md): ``original/`` and one run folder per method, ``comparison.json``,
``comparison.md`` and ``grid_comparison.png`` (samples of every model side by side).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from obliviate.reporting.render import DIFFUSION_SHORT, diffusion_markdown

DEMO_CONCEPT = "red"
COLUMNS = [
    "unlearning_accuracy",
    "in_domain_retain_accuracy",
    "cross_domain_retain_accuracy",
    "fid",
    "kid",
]
SHORT = DIFFUSION_SHORT
comparison_markdown = diffusion_markdown  # the table, rendered by obliviate.reporting.render


def run_demo(
    out_dir: Path,
    quick: bool = False,
    concept: str = DEMO_CONCEPT,
    methods: list[str] | None = None,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Run the demo into ``out_dir``; returns the ``comparison.json`` document.

    ``quick`` uses the smaller cached model (fewer training steps) and fewer evaluation images:
    a smoke test, not a measurement.
    """
    from obliviate.diffusion.evaluate import EvalConfig, comparison_grid, png_bytes
    from obliviate.diffusion.run import BUILTIN, erase_run, evaluate_setup, load_setup, write_run
    from obliviate.io import atomic_write_bytes, atomic_write_text, write_json
    from obliviate.recipes.resume import claim_comparison
    from obliviate.registry import ERASERS

    say = log or (lambda m: None)
    start = time.time()
    out_dir = Path(out_dir)
    claim_comparison(out_dir, "builtin-shapes")
    setup = load_setup(BUILTIN, cache_dir, quick=quick, log=say)
    methods = methods or ERASERS.names()
    eval_config = EvalConfig(images_per_prompt=16 if quick else 32)
    snapshot = setup.model.state_snapshot()
    say("evaluating the original model")
    before = evaluate_setup(setup, concept, [], eval_config)
    config = {
        "kind": "diffusion-original",
        "model": BUILTIN,
        "builtin": setup.builtin.info,
        "eval": dataclasses.asdict(eval_config),
        "seed": seed,
    }
    write_run(
        out_dir / "original",
        name="original",
        role="target",
        method=None,
        concept=concept,
        setup=setup,
        result=before,
        config=config,
        seed=seed,
    )
    rows = [{"name": "original", "role": "target", **before.values(), "train_s": None}]
    grids = {"original": before.images}
    for m in methods:
        setup.model.restore(snapshot)
        doc, after = erase_run(
            out_dir / m,
            concept,
            m,
            setup=setup,
            before=before,
            seed=seed,
            eval_config=eval_config,
            log=say,
        )
        rows.append(
            {"name": m, "role": "unlearned", **after.values(), "train_s": doc["timing"]["train_s"]}
        )
        grids[m] = after.images
        say("  " + ", ".join(f"{SHORT.get(k, k)} {after.values()[k]:.2f}" for k in COLUMNS))
    setup.model.restore(snapshot)
    atomic_write_bytes(
        out_dir / "grid_comparison.png", png_bytes(comparison_grid(grids, before.prompts))
    )
    doc = {
        "schema": 1,
        "benchmark": "builtin-shapes",
        "split": concept,
        "concept": concept,
        "runs": ["original", *methods],
        "columns": COLUMNS,
        "rows": rows,
        "images": ["grid_comparison.png"],
        "quick": quick,
        "wall_s": round(time.time() - start, 1),
    }
    write_json(out_dir / "comparison.json", doc)
    table = comparison_markdown(doc)
    atomic_write_text(
        out_dir / "comparison.md",
        f"# Erasing {concept!r} from the tiny shapes model\n\n{table}\n"
        "UA, IRA, CRA: higher is better; FID, KID (judge features): lower is "
        "better. See docs/diffusion.md.\n",
    )
    say("\n" + table)
    say(f"wall time {doc['wall_s']:.0f} s; results in {out_dir}/")
    return doc
