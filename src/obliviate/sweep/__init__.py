"""Hyper-parameter sweeps with Optuna (docs/sweep.md): search spaces (:mod:`.space`),
objectives (:mod:`.objectives`), the study (:mod:`.study`) and its summary (:mod:`.summary`).
Optuna is imported only when a sweep runs (the ``sweep`` extra)."""
