"""Robustness audits of unlearned models (docs/audit.md).

- :mod:`obliviate.audits.runner`: :func:`run_audit` and :class:`AuditSettings`, the
  ``obliviate audit`` engine (relearning, quantisation, paraphrase and jailbreak probes, linear
  truth probe, plus the MIA suite and fluency), each attack scored by its recoverability.
- :mod:`obliviate.audits.scores`: the recoverability score and item splits (pure).
- :mod:`obliviate.audits.quantisers`: the quantisation attack's quantisers (optimum-quanto,
  torchao, bitsandbytes) and their choice; :mod:`obliviate.audits.quantise`: the simulated
  round-to-nearest fallback.
- :mod:`obliviate.audits.mia_suite`: all six membership-inference attacks with AUC and PrivLeak.
- :mod:`obliviate.audits.gradients`, :mod:`obliviate.audits.hidden`: per-sample gradient norms
  and hidden-state features (the only model-running code here besides ``obliviate.scoring``).
- :mod:`obliviate.audits.probes`: jailbreak templates and the linear truth probe.
- :mod:`obliviate.audits.report`: ``metrics.json`` "audit" section and ``audit.md``.

Importing this package is cheap; torch loads when an audit runs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AuditResult", "AuditSettings", "mia_suite", "run_audit"]


def __getattr__(name: str) -> Any:
    if name in ("AuditResult", "AuditSettings", "run_audit"):
        from obliviate.audits import runner

        return getattr(runner, name)
    if name == "mia_suite":
        from obliviate.audits.mia_suite import mia_suite

        return mia_suite
    raise AttributeError(f"module 'obliviate.audits' has no attribute {name!r}")
