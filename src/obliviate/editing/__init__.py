"""Closed-form model editing for unlearning (docs/methods.md): locate-then-edit.

- :mod:`~obliviate.editing.arch`: which module of each architecture is edited (the MLP output
  projection: its input is the *key*, its output the *value*) and the hooks that read or patch
  it; a clear error for an architecture without a mapping.
- :mod:`~obliviate.editing.trace`: causal tracing (Meng+ 2022, arXiv 2202.05262, §2.1) to pick
  the layer(s) to edit.
- :mod:`~obliviate.editing.stats`: second-moment statistics C = E[k kᵀ] of keys on retain or
  generic text.
- :mod:`~obliviate.editing.rome`: the rank-one edit (ROME) and the multi-layer batched edit
  (MEMIT, Meng+ 2023, arXiv 2210.07229) that replace a fact's answer with a refusal.

Importing this package is cheap; torch is imported by the submodules.
"""
