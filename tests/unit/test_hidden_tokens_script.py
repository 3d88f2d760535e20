"""perf/diffusion_hidden_tokens.py: its masked sampler is the library's sampler when
nothing is hidden, and hiding the prompt's tokens changes the images."""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers")
import torch
from perf_scripts import load_perf_script  # tests/unit/perf_scripts.py

from obliviate.diffusion.testing import random_tiny_model


def test_nothing_hidden_equals_the_library_sampler_and_hiding_changes_the_images():
    torch.set_num_threads(1)
    mod = load_perf_script("diffusion_hidden_tokens")
    model = random_tiny_model(seed=0)
    prompts = ["a red square", "a blue circle"]
    n, steps, guidance, seed = 2, 4, 3.0, 7
    ids = model.tokenize(prompts)
    keep_all = torch.ones(ids.shape, dtype=torch.bool)
    ours = mod.sample_hidden(model, prompts, keep_all, n, steps, guidance, seed)
    rows = [p for p in prompts for _ in range(n)]
    noise = model.initial_noise(len(rows), torch.Generator().manual_seed(seed))
    ref = model.decode(model.sample(rows, noise, steps=steps, guidance=guidance))
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    only_first = torch.zeros_like(keep_all)
    only_first[:, 0] = True
    hidden = mod.sample_hidden(model, prompts, only_first, n, steps, guidance, seed)
    assert (hidden - ref).abs().max() > 1e-3
