"""Sweep objectives, declared by name (:data:`obliviate.registry.OBJECTIVES`; docs/sweep.md).

An objective turns one trial's evaluation (a flat ``{metric: value}`` dict of
``metrics.json``, plus ``holdout_prob``) and the reference models' evaluations into a
:class:`Score`: the value to optimise and whether the trial meets the objective's constraints.

- ``oracle`` (needs the retain model): TOFU forget quality (Maini+ 2024, arXiv 2401.06121,
  maximised) subject to model utility >= ``utility`` x the retain model's and retain
  probability >= ``retain_prob`` x the target's.
- ``mia``: |AUC - 0.5| of a forget-vs-holdout membership attack (``attack``: loss, zlib,
  min_k, min_k_plus_plus; docs/metrics.md), minimised: 0.5 is the retain model's level, the
  forget set looks never seen (MUSE C3, Shi+ 2024, arXiv 2407.06460).
- ``forget_prob_gap``: |forget probability - holdout probability|, minimised.
- ``utility_drop``: the largest relative drop below the target of retain probability, retain
  ROUGE and model utility (those evaluated), minimised; feasible when <= ``bound``.

``mia`` and ``forget_prob_gap`` need no retain model; both require ``utility_drop <=
max_drop``. An infeasible trial scores below every feasible one (:meth:`Objective.penalised`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Metrics = Mapping[str, Any]
UTILITY_KEYS = ("retain_prob", "retain_rouge", "model_utility")
ATTACKS = ("loss", "zlib", "min_k", "min_k_plus_plus")


@dataclass(frozen=True)
class Score:
    value: float
    feasible: bool = True
    violations: tuple[str, ...] = ()
    shortfall: float = 0.0  # summed relative shortfall of the violated constraints


def _need(m: Metrics, key: str, who: str) -> float:
    v = m.get(key)
    if v is None:
        raise ValueError(
            f"the objective needs {key} of the {who}, which its evaluation does not have "
            "(a benchmark without that metric, or a holdout set missing?)"
        )
    return float(v)


def floor(m: Metrics, ref: Metrics, key: str, fraction: float, who: str) -> tuple[float, str]:
    """Constraint ``m[key] >= fraction x ref[key]``: (relative shortfall, "" or why it fails).
    A value on the floor up to float rounding (0.9 x 0.8 = 0.7200000000000001) meets it."""
    value, base = _need(m, key, "trial"), _need(ref, key, who)
    need = fraction * base
    if value >= need - 1e-12 * abs(need):
        return 0.0, ""
    gap = (need - value) / need if need > 0 else need - value
    return gap, f"{key} {value:.3f} < {fraction:g} x the {who}'s {base:.3f}"


def utility_drop_value(m: Metrics, target: Metrics) -> float:
    """max over :data:`UTILITY_KEYS` present in both of max(0, 1 - m[k] / target[k])."""
    drops = [
        max(0.0, 1.0 - float(m[k]) / float(target[k]))
        for k in UTILITY_KEYS
        if m.get(k) is not None and target.get(k) not in (None, 0)
    ]
    if not drops:
        raise ValueError(
            "utility drop needs retain_prob, retain_rouge or model_utility of the trial and target"
        )
    return max(drops)


def _constrained(value: float, parts: list[tuple[float, str]]) -> Score:
    bad = [(gap, why) for gap, why in parts if why]
    return Score(value, not bad, tuple(w for _, w in bad), sum(g for g, _ in bad))


def oracle(
    m: Metrics, refs: Mapping[str, Metrics], utility: float = 0.95, retain_prob: float = 0.9
) -> Score:
    if refs.get("retain") is None:
        raise ValueError("the oracle objective needs the retain model: give --retain-model")
    fq = _need(m, "forget_quality", "trial")
    return _constrained(
        fq,
        [
            floor(m, refs["retain"], "model_utility", utility, "retain model"),
            floor(m, refs["target"], "retain_prob", retain_prob, "target"),
        ],
    )


def _drop_bound(m: Metrics, refs: Mapping[str, Metrics], bound: float) -> tuple[float, str]:
    drop = utility_drop_value(m, refs["target"])
    if drop <= bound:
        return 0.0, ""
    return drop - bound, f"utility drop {drop:.3f} > {bound:g}"


def mia(
    m: Metrics, refs: Mapping[str, Metrics], attack: str = "loss", max_drop: float = 0.1
) -> Score:
    if attack not in ATTACKS:
        raise ValueError(f"objective mia: attack={attack!r}; choose one of {', '.join(ATTACKS)}")
    auc = _need(m, f"mia_{attack}_auc", "trial")
    return _constrained(abs(auc - 0.5), [_drop_bound(m, refs, max_drop)])


def forget_prob_gap(m: Metrics, refs: Mapping[str, Metrics], max_drop: float = 0.1) -> Score:
    gap = abs(_need(m, "forget_prob", "trial") - _need(m, "holdout_prob", "trial"))
    return _constrained(gap, [_drop_bound(m, refs, max_drop)])


def utility_drop(m: Metrics, refs: Mapping[str, Metrics], bound: float = 1.0) -> Score:
    return _constrained(utility_drop_value(m, refs["target"]), [_drop_bound(m, refs, bound)])


@dataclass(frozen=True)
class Objective:
    """A registered objective: its function, direction and parameter defaults."""

    name: str
    description: str
    paper: str
    direction: str  # maximize | minimize
    function: Callable[..., Score]
    params: dict[str, Any] = field(default_factory=dict)
    needs_retain_model: bool = False
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)  # of named parameters

    def defaults(self) -> dict[str, Any]:
        """What `obliviate ls objectives NAME` shows."""
        return {"direction": self.direction, **self.params}

    def score(
        self, m: Metrics, refs: Mapping[str, Metrics], params: Mapping[str, Any] | None = None
    ) -> Score:
        return self.function(m, refs, **{**self.params, **(params or {})})

    def penalised(self, s: Score) -> float:
        """What the sampler sees: the value when feasible; else -1 - shortfall (maximised,
        values in [0, 1]) or 2 + shortfall (minimised, values in [0, 1]): below every feasible
        trial, and the closer to feasible the better."""
        if s.feasible:
            return s.value
        return -1.0 - s.shortfall if self.direction == "maximize" else 2.0 + s.shortfall


TOFU_PAPER = "Maini+ 2024 (TOFU), arXiv 2401.06121"
ORACLE = Objective(
    "oracle",
    "forget quality, s.t. model utility >= utility x retain model's, retain prob >= "
    "retain_prob x target's",
    TOFU_PAPER,
    "maximize",
    oracle,
    {"utility": 0.95, "retain_prob": 0.9},
    needs_retain_model=True,
)
MIA = Objective(
    "mia",
    "|forget-vs-holdout MIA AUC - 0.5| (no retain model), s.t. utility drop <= max_drop",
    "Shi+ 2024 (MUSE), arXiv 2407.06460, C3",
    "minimize",
    mia,
    {"attack": "loss", "max_drop": 0.1},
    choices={"attack": ATTACKS},
)
FORGET_PROB_GAP = Objective(
    "forget_prob_gap",
    "|forget prob - holdout prob| (no retain model), s.t. utility drop <= max_drop",
    TOFU_PAPER,
    "minimize",
    forget_prob_gap,
    {"max_drop": 0.1},
)
UTILITY_DROP = Objective(
    "utility_drop",
    "largest relative drop of retain prob / retain ROUGE / model utility below the target",
    TOFU_PAPER,
    "minimize",
    utility_drop,
    {"bound": 1.0},
)


def parse_objective(spec: str) -> tuple[Objective, dict[str, Any]]:
    """``"oracle"`` or ``"oracle:utility=0.9,retain_prob=0.8"`` -> (objective, parameters);
    unknown names and parameters are one-sentence errors with a did-you-mean."""
    from obliviate.config import check_keys, coerce_like, parse_value
    from obliviate.registry import OBJECTIVES

    name, _, rest = spec.partition(":")
    obj: Objective = OBJECTIVES.get(name.strip())
    params: dict[str, Any] = {}
    for item in (p for p in rest.split(",") if p.strip()):
        if "=" not in item:
            raise ValueError(f"objective {spec!r}: parameters look like {name}:key=value,...")
        key, _, text = item.partition("=")
        params[key.strip()] = parse_value(text.strip())
    check_keys(params, list(obj.params), f"objective {obj.name!r}")
    what = f"objective {obj.name!r}"
    params = {k: coerce_like(obj.params[k], v, k, what) for k, v in params.items()}
    for k, v in params.items():
        if isinstance(obj.params[k], str) and not isinstance(v, str):
            raise ValueError(f"{what} setting {k}={v!r}: expected a name")
        if k in obj.choices and v not in obj.choices[k]:
            raise ValueError(f"{what}: {k}={v!r}; choose one of {', '.join(obj.choices[k])}")
        if isinstance(v, float) and v < 0:
            raise ValueError(f"{what} setting {k}={v!r}: must be >= 0")
    return obj, params
