"""What an audit runs and records: the attack names, :class:`AuditSettings`,
:class:`AuditResult` and :func:`plan_attacks` (pure; no model code, cheap to import).

The attacks themselves are in :mod:`obliviate.audits.runner`; docs/audit.md describes them.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass, field
from typing import Any

from obliviate.audits.probes import JAILBREAK_TEMPLATES
from obliviate.audits.quantisers import check_quantiser
from obliviate.data.types import QAItem, UnlearningRequest

AUDIT_VERSION = 1
ATTACKS = ("relearn", "quantise", "paraphrase", "jailbreak", "probe")
SECTIONS = ("mia", "fluency")
ALL = ATTACKS + SECTIONS
# run only when named in ``attacks`` (soft tokens elicit almost anything: docs/audit.md)
OPT_IN = ("embedding",)
CHOICES = ALL + OPT_IN
WEIGHT_ATTACKS = ("relearn", "quantise")  # need a model with weights; not run on the target
# white-box attacks: need the model's input embeddings and gradients; not run on the target
WHITE_BOX_ATTACKS = ("embedding",)


@dataclass(frozen=True)
class AuditSettings:
    """Every setting an audit's numbers depend on (all recorded in the results).

    ``attacks``: names from :data:`CHOICES`; ``None`` runs every one of :data:`ALL` whose data
    the request has (the others are listed as skipped with the reason), while a name given
    explicitly whose data is missing is an error. :data:`OPT_IN` attacks run only when named.
    """

    attacks: tuple[str, ...] | None = None
    batch_size: int = 32
    max_new_tokens: int = 200
    max_length: int = 512
    seed: int = 0
    use_stemmer: bool = True
    relearn_fraction: float = 0.5
    relearn_steps: int = 10
    relearn_lr: float = 1e-4
    relearn_batch_size: int = 8
    quant_bits: tuple[int, ...] = (8, 4)
    quant_group_size: int | None = None
    quantiser: str = "auto"  # auto | torchao | quanto | bnb | rtn (obliviate.audits.quantisers)
    jailbreak_templates: tuple[str, ...] = JAILBREAK_TEMPLATES
    probe_layer: int | None = None  # None = the middle block, num_hidden_layers // 2
    probe_c: float = 1.0
    min_k: float = 0.4
    gradnorm_train_mode: bool = False
    fluency_ngram: int = 4
    embed_tokens: int = 5
    embed_steps: int = 50
    embed_step_size: float = 0.1  # α, in units of the mean embedding-row norm (embedding.py)
    embed_budget: float | None = 1.0  # ε, same unit; None = unbounded
    embed_norm: str = "linf"  # linf | l2
    embed_position: str = "suffix"  # suffix (after the prompt) | prefix (before it)
    embed_fraction: float = 0.5  # share of the forget items the soft tokens are optimised on

    def __post_init__(self) -> None:
        for name in ("attacks", "quant_bits", "jailbreak_templates"):
            v = getattr(self, name)
            if isinstance(v, (list, str)):
                object.__setattr__(self, name, tuple([v] if isinstance(v, str) else v))
        if self.attacks is not None:
            bad = [a for a in self.attacks if a not in CHOICES]
            if bad or not self.attacks:
                raise ValueError(f"unknown audit attack(s) {bad}; choose from {', '.join(CHOICES)}")
        if not self.quant_bits or any(
            not isinstance(b, int) or not 2 <= b <= 16 for b in self.quant_bits
        ):
            raise ValueError(f"quant_bits must be integers in [2, 16], got {self.quant_bits}")
        check_quantiser(self.quantiser, self.quant_bits, self.quant_group_size)
        if self.relearn_steps < 1 or self.relearn_lr <= 0 or self.relearn_batch_size < 1:
            raise ValueError("relearn_steps, relearn_lr and relearn_batch_size must be positive")
        if not self.jailbreak_templates:
            raise ValueError("jailbreak_templates must not be empty")
        if self.embed_tokens < 1 or self.embed_steps < 0 or self.embed_step_size <= 0:
            raise ValueError("embed_tokens and embed_step_size must be positive, embed_steps >= 0")
        if self.embed_budget is not None and self.embed_budget <= 0:
            raise ValueError(f"embed_budget must be positive or null, got {self.embed_budget}")
        if self.embed_norm not in ("linf", "l2") or self.embed_position not in ("suffix", "prefix"):
            raise ValueError("embed_norm must be linf or l2, embed_position suffix or prefix")
        if not 0.0 < self.embed_fraction < 1.0:
            raise ValueError(f"embed_fraction must be in (0, 1), got {self.embed_fraction}")


@dataclass
class AuditResult:
    """``rows`` (one per attack and metric), ``mia`` and ``fluency`` (by model role), ``skipped``
    (attack -> reason), ``settings``, ``info`` (models, data) and ``timing``."""

    rows: list[dict[str, Any]]
    mia: dict[str, Any] = field(default_factory=dict)
    fluency: dict[str, Any] = field(default_factory=dict)
    jailbreak_templates: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"version": AUDIT_VERSION, **asdict(self)}


# ----------------------------------------------------------------------------- what can run


def plan_attacks(
    request: UnlearningRequest, settings: AuditSettings, has_weights: bool = True
) -> tuple[list[str], dict[str, str]]:
    """The attacks to run and the reasons the others are skipped (see :class:`AuditSettings`)."""
    forget = _forget_items(request)
    missing: dict[str, str] = {}
    if len(forget) < 2:
        missing["relearn"] = "needs at least 2 forget items"
        missing["embedding"] = "needs at least 2 forget items (optimised on one half)"
    if not any(it.paraphrased_question for it in forget):
        missing["paraphrase"] = "no forget item has a paraphrased_question"
    if not any(it.paraphrased_answer and it.perturbed_answers for it in forget):
        missing["probe"] = "forget items have no paraphrased_answer + perturbed_answer"
    elif not any(
        it.paraphrased_answer and it.perturbed_answers for it in request.eval.get("retain", [])
    ):
        missing["probe"] = (
            "no eval 'retain' items with paraphrased_answer + perturbed_answer to train on"
        )
    if "probe" not in missing and importlib.util.find_spec("sklearn") is None:
        missing["probe"] = "scikit-learn is not installed (pip install 'obliviate[audit]')"
    if not (request.eval.get("holdout") or request.holdout):
        missing["mia"] = "no holdout items (MIA non-members)"
    if not has_weights:
        for a in WEIGHT_ATTACKS + WHITE_BOX_ATTACKS + ("probe",):
            missing.setdefault(a, "the unlearned model has no weights (an inference-time wrapper)")
    if settings.attacks is None:
        return [a for a in ALL if a not in missing], {a: missing[a] for a in ALL if a in missing}
    asked = [a for a in CHOICES if a in settings.attacks]
    errors = [f"{a}: {missing[a]}" for a in asked if a in missing]
    if errors:
        raise ValueError(
            "cannot run the requested audit attacks: "
            + "; ".join(errors)
            + " (leave them out of --attacks)"
        )
    return asked, {a: "not requested" for a in CHOICES if a not in asked}


def _forget_items(request: UnlearningRequest) -> list[QAItem]:
    return list(request.eval.get("forget") or request.forget)
