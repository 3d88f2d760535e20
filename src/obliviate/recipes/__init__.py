"""End-to-end flows, written once: train the target and retain (gold-standard) models, run each
method, evaluate every model, write the comparison, and resume an interrupted run.

- :mod:`obliviate.recipes.tofu`: any QA benchmark entry (TOFU, Maini+ 2024, arXiv 2401.06121;
  the user's files) through :mod:`obliviate.api`; ``obliviate benchmark`` and ``obliviate demo``.
- :mod:`obliviate.recipes.muse`: the MUSE six-way evaluation (Shi+ 2024, arXiv 2407.06460);
  ``obliviate muse run`` and ``obliviate benchmark --benchmark builtin-muse``.
- :mod:`obliviate.recipes.diffusion`: the diffusion concept-erasure demo
  (``obliviate demo --diffusion``).

Every stage goes through :func:`obliviate.recipes.resume.stage` (one resume logic): a finished
stage with the same configuration fingerprint is reused, a different configuration is an error
unless ``overwrite`` is asked for.
"""
