"""The built-in benchmark: the tiny shapes model and its judge, trained once and cached.

``ensure_builtin()`` returns the cached pipeline and judge folders, training them first when
missing. The cache key is a hash of every training setting, so a changed setting never reuses
stale artefacts (docs/metrics.md). Location: ``cache_dir`` or ``$OBLIVIATE_CACHE`` or
``~/.cache/obliviate``, under ``diffusion/builtin-shapes-<key>/``; the folder appears
atomically (built under a temporary name, then renamed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obliviate.cache import cache_root
from obliviate.data.types import DataError
from obliviate.diffusion.judge import JudgeConfig
from obliviate.diffusion.shapes import GENERIC_SHAPE_WORD, ShapesSpec, caption
from obliviate.diffusion.tiny import TinyConfig

CACHE_VERSION = 2  # bump when code changes what a config trains
DEFAULT_CONFIG = TinyConfig()
QUICK_CONFIG = TinyConfig(steps=500, n_images=4500)
DONE = "done.json"


@dataclass(frozen=True)
class BuiltinArtifacts:
    root: Path
    pipeline: Path
    judge: Path
    info: dict[str, Any]

    @property
    def spec(self) -> ShapesSpec:
        return ShapesSpec.from_dict(self.info["spec"])


def cache_key(config: TinyConfig, judge_config: JudgeConfig) -> str:
    blob = json.dumps(
        {"v": CACHE_VERSION, "tiny": config.to_dict(), "judge": dataclasses.asdict(judge_config)},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def ensure_builtin(
    cache_dir: str | os.PathLike[str] | None = None,
    quick: bool = False,
    config: TinyConfig | None = None,
    judge_config: JudgeConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> BuiltinArtifacts:
    """The cached tiny pipeline + judge, trained first if needed (minutes on 2 CPU cores)."""
    import torch

    config = config or (QUICK_CONFIG if quick else DEFAULT_CONFIG)
    judge_config = judge_config or JudgeConfig()
    root = cache_root(cache_dir) / "diffusion" / f"builtin-shapes-{cache_key(config, judge_config)}"
    if (root / DONE).is_file():
        return _artifacts(root)
    say = log or (lambda msg: None)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        from obliviate.diffusion.evaluate import EvalConfig, evaluate_builtin
        from obliviate.diffusion.judge import load_judge, save_judge, train_judge
        from obliviate.diffusion.pipeline import load_model
        from obliviate.diffusion.tiny import train_tiny_pipeline
        from obliviate.io import write_json

        start = time.time()
        say(f"training the tiny shapes model ({config.steps} steps; cached in {root})")
        train_tiny_pipeline(
            tmp / "pipeline",
            config,
            log=lambda r: say(f"  step {r['step']}: loss {r['loss']:.4f} ({r['elapsed_s']} s)"),
        )
        say("training the judge classifier")
        judge, acc = train_judge(config.spec, judge_config)
        save_judge(judge, config.spec, tmp / "judge", acc, judge_config)
        # sanity check: how recognisable are the original model's samples?
        model = load_model(tmp / "pipeline")
        loaded = load_judge(tmp / "judge")
        torch.manual_seed(0)
        ev = evaluate_builtin(
            model, loaded, config.spec.colours[0], EvalConfig(images_per_prompt=16)
        )
        acc_gen = {
            "shape": float(
                sum(s["shape_pred"] == s["shape_label"] for s in ev.samples) / len(ev.samples)
            ),
            "colour": float(
                sum(s["colour_pred"] == s["colour_label"] for s in ev.samples) / len(ev.samples)
            ),
        }
        info = {
            "schema": 1,
            "spec": config.spec.to_dict(),
            "tiny": config.to_dict(),
            "judge": {
                "config": dataclasses.asdict(judge_config),
                "validation": acc,
                "fingerprint": loaded.fingerprint,
            },
            "generated_accuracy": acc_gen,
            "build_s": round(time.time() - start, 1),
        }
        write_json(tmp / DONE, info)
        say(
            f"judge accuracy on the model's samples: shape {acc_gen['shape']:.2f}, "
            f"colour {acc_gen['colour']:.2f}"
        )
        try:
            os.replace(tmp, root)
        except OSError:
            if not (root / DONE).is_file():  # not a concurrent build that finished first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return _artifacts(root)


def _artifacts(root: Path) -> BuiltinArtifacts:
    from obliviate.io import read_json

    return BuiltinArtifacts(root, root / "pipeline", root / "judge", read_json(root / DONE))


def builtin_request(spec: ShapesSpec, concept: str, anchor: str | None = None) -> Any:
    """The erasure request of a shape or colour of the built-in model.

    Erase prompts: every full caption with the concept plus its one-attribute caption
    ("a red shape" / "a circle"). Preserve prompts: every other caption, the empty one
    included (classifier-free guidance uses it). Anchor (CA's anchor, UCE's guide, SalUn's
    mismatched concept) by default: the next concept of the same kind, (k + 1) mod K as in
    SalUn ("red" -> "green", "circle" -> "square"). The generic words are kept as
    ``superclass`` (``anchor="shape"`` or ``""`` uses them), but they cannot erase here:
    with three concepts of a kind, "a red shape" is a circle a third of the time or more
    (the tiny model's average shape is round: about 60 % measured), so mapping onto it leaves
    the concept at chance level or above.
    """
    from obliviate.diffusion.methods import ErasureRequest

    kind = spec.kind_of(concept)
    siblings = list(spec.values_of(kind))
    generic = [GENERIC_SHAPE_WORD, ""] if kind == "shape" else [""]
    if anchor is None:
        anchor = siblings[(siblings.index(concept) + 1) % len(siblings)]
    elif anchor == concept or (anchor.strip() not in generic and anchor not in siblings):
        raise DataError(
            f"anchor {anchor!r} for the {kind} {concept!r}: choose another {kind} "
            f"({', '.join(v for v in siblings if v != concept)}) or a generic word "
            f"({', '.join(repr(g) for g in generic)})"
        )
    full = [(c, s) for s in spec.shapes for c in spec.colours]
    partial = [(c, None) for c in spec.colours] + [(None, s) for s in spec.shapes]
    erase: list[str] = []
    preserve: list[str] = []
    for c, s in full + partial:
        has = (c == concept) if kind == "colour" else (s == concept)
        (erase if has else preserve).append(caption(c, s))
    preserve.append("")
    return ErasureRequest(
        concept=concept,
        prompts=erase,
        preserve=preserve,
        anchor=anchor,
        superclass=GENERIC_SHAPE_WORD if kind == "shape" else "",
        alternatives=siblings,
    )
