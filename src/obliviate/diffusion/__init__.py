"""Concept erasure for text-to-image diffusion models (optional extra: ``obliviate[diffusion]``).

Nothing here is imported by ``import obliviate``; submodules import diffusers on use.

- :mod:`~obliviate.diffusion.shapes`: the generated shapes x colours data with captions;
- :mod:`~obliviate.diffusion.tiny`: the tiny text-to-image model trained from scratch;
- :mod:`~obliviate.diffusion.builtin`: the cached built-in model + judge and its requests;
- :mod:`~obliviate.diffusion.pipeline`: :class:`DiffusionModel`, loading (tiny or Stable
  Diffusion), DDIM sampling with classifier-free guidance;
- :mod:`~obliviate.diffusion.functional`: the methods' maths (pure functions);
- :mod:`~obliviate.diffusion.methods`: the erasers, registered in ``obliviate.registry.ERASERS``;
- :mod:`~obliviate.diffusion.judge`, :mod:`~obliviate.diffusion.metrics`,
  :mod:`~obliviate.diffusion.evaluate`: the judge classifier, UA/IRA/CRA/FID/KID, grids;
- :mod:`~obliviate.diffusion.run`: run folders; the demo is :mod:`obliviate.recipes.diffusion`.

Quick use::

    from obliviate.diffusion.run import load_setup, erase_run
    setup = load_setup("builtin")
    doc, after = erase_run("runs/erase-red-uce", "red", "uce", setup=setup)

See docs/diffusion.md.
"""
