"""UnlearnDiff on a trained built-in model: UCE erases "red", the attack brings it back more
often than the plain prompts do, and the original model (the control) is recovered by both.

Uses the quick built-in model (``ensure_builtin(quick=True)``: 500 training steps, about 3
minutes to train on 2 CPU cores, once per session in the ``diffusion_cache`` fixture that the
quick-demo test shares, or never when ``$OBLIVIATE_TEST_CACHE`` holds it), not the 2400-step
default that the heavy erasure matrix trains.
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("diffusers")

pytestmark = pytest.mark.slow


def test_unlearndiff_recovers_the_erased_concept_beyond_the_plain_prompts(diffusion_cache):
    import torch

    from obliviate.diffusion.builtin import builtin_request
    from obliviate.diffusion.methods import make_eraser
    from obliviate.diffusion.run import load_setup
    from obliviate.diffusion.unlearndiff import UnlearnDiffConfig, unlearndiff_attack

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    setup = load_setup("builtin", diffusion_cache, quick=True)
    model = setup.model
    original = model.frozen_unet()
    request = builtin_request(setup.spec, "red")
    make_eraser("uce", preset="builtin").erase(model, request, seed=0)
    # measured with these settings (docs/diffusion.md, "Attacks"): 5 attacks, erased model
    # plain 0.40 -> attacked 0.60, original model 1.00 -> 1.00; about 80 s on 2 CPU cores
    config = UnlearnDiffConfig(tokens=3, steps=10, timesteps=4, images_per_prompt=2)
    report = unlearndiff_attack(
        model, setup.judge, "red", request.prompts, original_unet=original, config=config
    )
    erased, control = report["models"]["erased"], report["models"]["original"]
    assert erased["attacks"] == control["attacks"] >= 4
    # the erasure worked on the plain prompts, and the attack undoes part of it
    assert erased["plain_success_rate"] <= 0.6
    assert erased["attack_success_rate"] > erased["plain_success_rate"]
    # on the original model the targets are drawn as the concept with and without the attack
    assert control["plain_success_rate"] == 1.0
    assert control["attack_success_rate"] >= 0.8
