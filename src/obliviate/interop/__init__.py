"""Exchanging results with other unlearning tools (docs/run-format.md, "OpenUnlearning logs").

:mod:`obliviate.interop.open_unlearning` reads and writes the per-run evaluation logs of
OpenUnlearning (``TOFU_EVAL.json``, ``TOFU_SUMMARY.json``, ``MUSE_*``), so that a retain model
evaluated there can be the reference of forget quality and privleak here, and obliviate's
results can be read by its tooling.
"""
