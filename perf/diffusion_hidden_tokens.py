"""What the built-in diffusion model draws when cross-attention cannot see the concept.

Samples the erase prompts of a concept with the cross-attention mask (diffusers'
``encoder_attention_mask``) hiding (a) the concept's tokens, (b) the concept's tokens and every
later token (in the causal CLIP text encoder those all carry the concept), and prints what the
judge recognises. It explains why an attention-only method such as Forget-Me-Not cannot erase
the model's prior shape (docs/diffusion.md, "Results").

    python perf/diffusion_hidden_tokens.py --concept square --cache runs/cache
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch


def sample_hidden(
    model, prompts: list[str], keep: torch.Tensor, n: int, steps: int, guidance: float, seed: int
) -> torch.Tensor:
    """``n`` images per prompt whose conditional branch attends only to the ``keep`` tokens."""
    rows = [p for p in prompts for _ in range(n)]
    noise = model.initial_noise(len(rows), torch.Generator().manual_seed(seed))
    mask = keep.repeat_interleave(n, dim=0).float()
    return model.decode(model.sample(rows, noise, steps=steps, guidance=guidance, token_mask=mask))


def main() -> None:
    from obliviate.diffusion.builtin import builtin_request
    from obliviate.diffusion.methods import concept_token_mask
    from obliviate.diffusion.run import load_setup
    from obliviate.diffusion.shapes import ShapesSpec

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--concept", default="square", help="a shape or colour of the built-in model")
    ap.add_argument(
        "--cache", default=None, help="cache folder of the built-in model (trained if absent)"
    )
    ap.add_argument("--images", type=int, default=24, help="images per prompt")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ShapesSpec().kind_of(args.concept)  # an unknown concept fails before the model is trained

    setup = load_setup("builtin", args.cache)
    model, judge, spec = setup.model, setup.judge, setup.spec
    prompts = [p for p in builtin_request(spec, args.concept).prompts if len(p.split()) == 3]
    concept = concept_token_mask(model, prompts, args.concept)
    for label, hidden in (
        ("nothing hidden", torch.zeros_like(concept)),
        ("concept hidden", concept),
        ("concept and later tokens hidden", concept.cumsum(1) > 0),
    ):
        images = sample_hidden(
            model, prompts, ~hidden, args.images, args.steps, args.guidance, args.seed
        )
        pred = judge.predict(images)
        shapes = [spec.shapes[int(i)] for i in pred["shape"].argmax(1)]
        colours = [spec.colours[int(i)] for i in pred["colour"].argmax(1)]
        print(label)
        for k, p in enumerate(prompts):
            part = slice(k * args.images, (k + 1) * args.images)
            print(
                f"  {p:18s} shapes {dict(Counter(shapes[part]))}  colours {dict(Counter(colours[part]))}"
            )


if __name__ == "__main__":
    main()
