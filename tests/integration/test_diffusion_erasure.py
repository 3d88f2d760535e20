"""Every eraser on the trained built-in shapes model (slow: trains the model once, minutes).

The trained pipeline and judge are built once per test session in a temporary cache, or
reused from ``$OBLIVIATE_TEST_CACHE`` when set (the session fixture ``diffusion_cache``; then only
the first session pays).
Margins (measured values in docs/diffusion.md): after erasing a concept the judge recognises
it in at most a third of its images (UA >= 0.67, from about 0 before), the other concepts
of the same kind stay recognisable (IRA >= 0.80) and so does the other attribute (CRA >= 0.80).

The concepts: a colour (red) and a shape (square). Not circle: the generic caption "a red
shape" draws circles about 60 % of the time, so a method that removes the concept's
information without steering elsewhere (Forget-Me-Not's attention re-steering) falls back to
circles; docs/diffusion.md has every method's circle numbers. (With no shape token attended
at all, the model draws squares instead: the known shortfall below.)
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("diffusers")

from obliviate.diffusion.evaluate import EvalConfig
from obliviate.registry import ERASERS

pytestmark = pytest.mark.slow

UA_MIN, IRA_MIN, CRA_MIN = 0.67, 0.80, 0.80
BEFORE_UA_MAX, BEFORE_ACC_MIN = 0.15, 0.85
EVAL = EvalConfig(images_per_prompt=24)
CONCEPTS = ("red", "square")


@pytest.fixture(scope="module")
def setup(diffusion_cache):
    import torch

    from obliviate.diffusion.run import load_setup

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    return load_setup("builtin", diffusion_cache)


@pytest.fixture(scope="module")
def snapshot(setup):
    return setup.model.state_snapshot()


@pytest.fixture(scope="module")
def before(setup):
    from obliviate.diffusion.evaluate import evaluate_builtin

    return {c: evaluate_builtin(setup.model, setup.judge, c, EVAL) for c in CONCEPTS}


@pytest.mark.heavy
@pytest.mark.parametrize("concept", CONCEPTS)
def test_the_original_model_draws_recognisable_concepts(before, concept):
    v = before[concept].values()
    assert v["unlearning_accuracy"] <= BEFORE_UA_MAX
    assert v["in_domain_retain_accuracy"] >= BEFORE_ACC_MIN
    assert v["cross_domain_retain_accuracy"] >= BEFORE_ACC_MIN


# Forget-Me-Not erasing square misses the cross-domain margin: colour accuracy 0.78 < 0.80 with
# UA 0.94 and IRA 1.00 (24 images per prompt). With no shape token attended, the model draws
# squares (perf/diffusion_hidden_tokens.py), so FMN (no anchor) erases square by
# collapsing the erased prompts onto red triangles; the variants tried are in
# docs/diffusion.md. Every other margin, and colour on the retained prompts, is still asserted;
# the case fails if it ever meets the CRA margin, so that this entry is removed.
KNOWN_SHORTFALLS = {
    ("fmn", "square"): "FMN erasing square (shape prior of the model) keeps "
    "colour accuracy 0.78 < CRA margin 0.80"
}
CASES = [(m, c) for m in ERASERS.names() for c in CONCEPTS]


@pytest.mark.heavy
@pytest.mark.parametrize("method,concept", CASES)
def test_method_erases_the_concept_and_keeps_the_others(
    setup, snapshot, before, method, concept, tmp_path
):
    from obliviate.diffusion.run import erase_run

    setup.model.restore(snapshot)
    _doc, after = erase_run(
        tmp_path / method,
        concept,
        method,
        setup=setup,
        before=before[concept],
        eval_config=EVAL,
        save_model=False,
    )
    setup.model.restore(snapshot)
    v = after.values()
    msg = f"{method} erasing {concept}: {v}"
    assert v["unlearning_accuracy"] >= UA_MIN, msg
    assert v["unlearning_accuracy"] >= before[concept].values()["unlearning_accuracy"] + 0.5, msg
    assert v["in_domain_retain_accuracy"] >= IRA_MIN, msg
    assert (tmp_path / method / "grid_after.png").is_file()
    shortfall = KNOWN_SHORTFALLS.get((method, concept))
    if shortfall is None:
        assert v["cross_domain_retain_accuracy"] >= CRA_MIN, msg
        return
    assert v["cross_domain_accuracy_retain_prompts"] >= CRA_MIN, msg
    assert v["cross_domain_retain_accuracy"] < CRA_MIN, (
        f"now inside the margin, drop the entry: {msg}"
    )
    pytest.xfail(shortfall)


@pytest.mark.heavy
def test_uce_keeps_preserved_cross_attention_outputs_on_the_trained_model(setup, snapshot):
    """As tests/unit/test_diffusion_uce.py, on trained text embeddings."""
    import torch

    from obliviate.diffusion.builtin import builtin_request
    from obliviate.diffusion.methods import make_eraser

    def outputs(prompts):
        emb = setup.model.encode(prompts)
        res = {}
        with torch.no_grad():
            for name, attn in setup.model.attention_modules().items():
                h = torch.randn(
                    len(prompts),
                    16,
                    attn.to_q.in_features,
                    generator=torch.Generator().manual_seed(1),
                )
                res[name] = attn(h, encoder_hidden_states=emb)
        return res

    def change(a, b):
        return torch.stack(
            [((b[k] - a[k]).flatten(1).norm(dim=1) / a[k].flatten(1).norm(dim=1)) for k in a]
        )

    setup.model.restore(snapshot)
    req = builtin_request(setup.spec, "red")
    keep0 = outputs(req.preserve)
    make_eraser("uce").erase(setup.model, req)
    kept = change(keep0, outputs(req.preserve))
    setup.model.restore(snapshot)
    assert kept.max() < 0.10 and kept.mean() < 0.05


def test_quick_demo_writes_a_group_folder(tmp_path, diffusion_cache):
    from obliviate.recipes.diffusion import run_demo

    doc = run_demo(
        tmp_path / "demo", quick=True, methods=["uce"], cache_dir=diffusion_cache, log=None
    )
    assert doc["runs"] == ["original", "uce"]
    for f in (
        "comparison.json",
        "comparison.md",
        "grid_comparison.png",
        "original/metrics.json",
        "uce/metrics.json",
        "uce/grid_after.png",
    ):
        assert (tmp_path / "demo" / f).is_file(), f
    rows = {r["name"]: r for r in doc["rows"]}
    assert rows["uce"]["unlearning_accuracy"] > rows["original"]["unlearning_accuracy"]
