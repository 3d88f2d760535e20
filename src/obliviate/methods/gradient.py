"""Gradient-based forget objectives and their paper presets (docs/methods.md).

Terms here: GA, WGA, SatImp, CE-U, UNDIAL (self-distillation), PDU (logit-margin flattening with a
primal-dual retain constraint) and LLMU. The maths is in :mod:`obliviate.methods.functional`;
a term only runs the model and feeds that function.

Training defaults: every preset trains with :data:`TINY_TRAIN`, sized for the tiny CPU models,
except GradDiff and PDU, whose learning rate, epochs and retain weight come from sweeps on the
built-in benchmark (docs/sweep.md, "The tuned leaderboard").
The community's settings for real models are kept in :data:`COMMUNITY_TRAIN` (docs/methods.md)
and quoted in each preset's description; pass them as ``train`` overrides on real models.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from obliviate.config import TrainConfig
from obliviate.data.collate import pad_batch, pad_id_of
from obliviate.data.templates import Encoded, encode
from obliviate.methods import functional as F
from obliviate.methods.base import MethodPreset, Term, UnlearnJob, forward

# Training defaults for the tiny CPU models: the community's lr 1e-5 / 10 epochs is tuned for
# 7B models; tiny models trained from scratch need larger steps. Measured on the demo's target
# (s model, 100 people, forget10 = 100 QA, 40 steps): GradDiff at lr 1e-4 lowered forget prob
# only 0.91 -> 0.78; at 2.5e-4 0.91 -> 0.39 with retain prob 0.91 -> 0.80; at 5e-4 the retain
# NLL rose 14x. Override with train.lr=... for real models.
TINY_TRAIN = {
    "lr": 2.5e-4,
    "epochs": 10,
    "batch_size": 32,
    "warmup_epochs": 1,
    "scheduler": "linear",
}

# The published training settings per method (docs/methods.md), for real models.
COMMUNITY_TRAIN: dict[str, dict[str, Any]] = {
    "wga": {"lr": 1e-5, "epochs": 5},
    "satimp": {"lr": 1e-5, "epochs": 5},
    "ceu": {"lr": 1e-5, "epochs": 10},
    "undial": {"lr": 1e-4, "epochs": 10},
    "pdu": {"lr": 1e-5, "epochs": 10},
    "llmu": {"lr": 2e-6, "batch_size": 2, "max_steps": 1000},
}


def _community(name: str) -> str:
    """ "lr 1e-5, epochs 5": the community settings of a preset, for its description."""

    def fmt(v: Any) -> str:
        return f"{v:.0e}".replace("e-0", "e-") if isinstance(v, float) and v < 1e-3 else f"{v:g}"

    return ", ".join(f"{k} {fmt(v)}" for k, v in COMMUNITY_TRAIN[name].items())


# ----------------------------------------------------------------------------- GA


class GradientAscentTerm(Term):
    """L_f = −NLL(D_f), HF token mean over the batch (Jang+ 2022, arXiv 2210.01504)."""

    description = "gradient ascent: -NLL on D_f"
    name = "ga"

    def loss_from_logits(self, logits: Any, batch: dict, job: UnlearnJob) -> Any:
        return F.ga_loss(logits, batch["labels"])


GA = MethodPreset(
    "ga",
    "Gradient ascent on the forget set, no retain term",
    "Jang+ 2022, arXiv 2210.01504",
    forget="ga",
    retain=None,
    train=TINY_TRAIN,
)
# Selected by sweeps on the built-in forget10 with the demo's models (docs/sweep.md, "The tuned
# leaderboard"): forget quality 0.115 +- 0.038 over 3 seeds within the utility floors, against
# 1e-12 at TINY_TRAIN with alpha 1; a heavier retain term lets the ascent run three times longer.
GRADDIFF = MethodPreset(
    "graddiff",
    "Gradient difference: ascent on forget + descent on retain (GDR)",
    "Maini+ 2024 (TOFU), arXiv 2401.06121",
    forget="ga",
    retain="nll",
    alpha=8.8,
    train={**TINY_TRAIN, "lr": 5.1e-4, "epochs": 28},
)
GA_KL = MethodPreset(
    "ga_kl",
    "Gradient ascent + KL(pi_ref || pi_theta) on retain (KLR)",
    "Maini+ 2024 (TOFU), arXiv 2401.06121",
    forget="ga",
    retain="kl",
    train=TINY_TRAIN,
)


# ----------------------------------------------------------------------------- WGA, SatImp, CE-U


class WGATerm(Term):
    """WGA (Wang+ 2025, arXiv 2502.19301): L_f = −(1/N)·Σ_t sg(p_t)^β·ℓ_t over answer tokens.

    ``beta`` is the paper's β (1 by default; β = 0 is plain GA)."""

    description = "weighted gradient ascent, w_t = sg(p_t)^beta"
    name = "wga"

    def __init__(self, beta: float = 1.0) -> None:
        self.beta = beta

    def loss_from_logits(self, logits: Any, batch: dict, job: UnlearnJob) -> Any:
        return F.wga_loss(logits, batch["labels"], beta=self.beta)


class SatImpTerm(Term):
    """SatImp (Yang+ 2025, arXiv 2505.11953): L_f = −(1/N)·Σ_t sg(p_t^β1·(1−p_t)^β2)·ℓ_t.

    ``beta1``/``beta2`` are the paper's β1 = 5 and β2 = 1."""

    description = "SatImp: ascent weighted by sg(p^b1 (1-p)^b2)"
    name = "satimp"

    def __init__(self, beta1: float = 5.0, beta2: float = 1.0) -> None:
        self.beta1, self.beta2 = beta1, beta2

    def loss_from_logits(self, logits: Any, batch: dict, job: UnlearnJob) -> Any:
        return F.satimp_loss(logits, batch["labels"], self.beta1, self.beta2)


class CEUTerm(Term):
    """CE-U (Yang 2025, arXiv 2503.01224): per answer position CE(z_t, sg(softmax(z̃_t))), z̃_t =
    z_t with the true label's logit at −∞; the first ``ignore_first_n`` (1) answer tokens skipped."""

    description = "CE-U: cross-entropy to the model's own distribution without y_t"

    name = "ceu"

    def __init__(self, ignore_first_n: int = 1) -> None:
        self.ignore_first_n = ignore_first_n

    def loss_from_logits(self, logits: Any, batch: dict, job: UnlearnJob) -> Any:
        return F.ceu_loss(logits, batch["labels"], self.ignore_first_n)


WGA = MethodPreset(
    "wga",
    f"Weighted gradient ascent (w_t = p_t^beta) + NLL on retain; community: {_community('wga')}",
    "Wang+ 2025, arXiv 2502.19301",
    forget="wga",
    retain="nll",
    gamma=1.0,
    alpha=1.0,
    train=TINY_TRAIN,
    space={"forget_params.beta": "0:2"},
)
# gamma/alpha: SatImp's class defaults and README (gamma 1, alpha 0.1); OU's YAML has the
# reverse (gamma 0.1, alpha 1) -- docs/methods.md.
SATIMP = MethodPreset(
    "satimp",
    "Saturation x importance weighted ascent + 0.1 NLL on retain; "
    f"community: {_community('satimp')}",
    "Yang+ 2025, arXiv 2505.11953",
    forget="satimp",
    retain="nll",
    gamma=1.0,
    alpha=0.1,
    train=TINY_TRAIN,
    space={"forget_params.beta1": "1:8", "forget_params.beta2": "0:2"},
)
CEU = MethodPreset(
    "ceu",
    f"Cross-entropy unlearning towards the model's own non-label distribution, no retain "
    f"term; community: {_community('ceu')}",
    "Yang 2025, arXiv 2503.01224",
    forget="ceu",
    retain=None,
    train=TINY_TRAIN,
)


# ----------------------------------------------------------------------------- cached answer logits


class AnswerLogits:
    """Full-vocabulary logits of a frozen computation at the answer positions of a fixed set.

    ``rows[i]`` is ``(n_i, V)``: the logits that predict item i's n_i answer tokens (the shifted
    answer mask of :func:`functional.shift_labels`). Because batches are right-padded and every
    item starts at position 0, the rows fit any batch that holds the item; :meth:`for_batch`
    scatters them into a ``(B, T, V)`` tensor (zeros elsewhere, never read by the losses).
    Memory: Σ n_i · V floats (float32, or float64 for float64 models).
    """

    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    @classmethod
    def compute(
        cls,
        fn: Callable[[dict[str, Any]], Any],
        encoded: Sequence[Encoded],
        pad_id: int,
        device: Any,
        batch_size: int = 32,
    ) -> AnswerLogits:
        """Run ``fn(batch) -> logits (B, T, V)`` over ``encoded`` without gradients, keep rows."""
        import torch

        from obliviate.training import collate_encoded

        rows: list[Any] = []
        with torch.no_grad():
            for i in range(0, len(encoded), batch_size):
                chunk = list(encoded[i : i + batch_size])
                b = collate_encoded(chunk, list(range(len(chunk))), pad_id)
                b = {k: v.to(device) for k, v in b.items()}
                logits = fn(b)
                _, _, mask = F.shift_labels(logits, b["labels"])
                keep = (
                    logits.dtype
                    if logits.dtype in (torch.float32, torch.float64)
                    else torch.float32
                )
                for r in range(len(chunk)):
                    rows.append(logits[r, :-1][mask[r]].to(keep).cpu())
        return cls(rows)

    @staticmethod
    def size_mb(encoded: Sequence[Encoded], vocab: int) -> float:
        """Memory the cache would take (float32), in MiB."""
        n = sum(sum(1 for x in e.labels[1:] if x != F.IGNORE_INDEX) for e in encoded)
        return n * vocab * 4 / 2**20

    def for_batch(self, index: Any, labels: Any, like: Any) -> Any:
        """``(B, T, V)`` tensor holding the cached rows of the items ``index`` at their answer
        positions (dtype/device of ``like``, the current logits)."""
        import torch

        _, _, mask = F.shift_labels(like, labels)
        out = torch.zeros_like(like)
        picked = [self.rows[int(i)] for i in index.tolist()]
        for r, rows in enumerate(picked):
            n = int(mask[r].sum())
            if rows.shape[0] != n:
                raise ValueError(
                    f"cached answer logits of forget item {int(index[r])} have {rows.shape[0]} "
                    f"positions but the batch has {n}: the item was encoded differently (template "
                    "or max_length changed after setup)"
                )
        out[:, :-1][mask] = torch.cat(picked).to(device=like.device, dtype=like.dtype)
        return out


def model_vocab(model: Any) -> int:
    """Output vocabulary size of a causal LM (the logits' last dimension)."""
    base = getattr(model, "module", model)
    emb = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    if emb is not None and hasattr(emb, "weight"):
        return int(emb.weight.shape[0])
    return int(base.config.vocab_size)


# ----------------------------------------------------------------------------- UNDIAL


class UNDIALTerm(Term):
    """UNDIAL (Dong+ 2024, arXiv 2402.10052): L_f = mean_t CE(z^θ_t, softmax(z^ref_t − β·onehot(y_t)))
    over answer positions; ``beta`` is the paper's β (10, range 3-30).

    The reference logits of the fixed forget set are computed once in :meth:`setup` from the
    untouched target and kept at the answer positions only , unless they would take more than
    ``cache_mb`` MiB (Σ n_i · V floats); then the frozen reference runs on every step."""

    description = "UNDIAL: distil towards pi_ref with the label logit lowered"
    name = "undial"

    def __init__(self, beta: float = 10.0, cache_mb: float = 1024.0) -> None:
        self.beta = beta
        self.cache_mb = cache_mb
        self.cache: AnswerLogits | None = None

    def setup(self, job: UnlearnJob, forget: list[Encoded], cfg: TrainConfig) -> None:
        from obliviate.scoring import model_device

        if AnswerLogits.size_mb(forget, model_vocab(job.model)) > self.cache_mb:
            job.reference_model()  # computed on the fly from the frozen copy
            return
        model = job.model
        was = model.training
        model.eval()
        self.cache = AnswerLogits.compute(
            lambda b: forward(model, b).logits,
            forget,
            pad_id_of(job.tokenizer),
            model_device(model),
            cfg.batch_size,
        )
        model.train(was)

    def loss_from_logits(self, logits: Any, batch: dict, job: UnlearnJob) -> Any:
        import torch

        if self.cache is not None:
            ref = self.cache.for_batch(batch["index"], batch["labels"], logits)
        else:
            from obliviate.scoring import model_device

            ref_model = job.reference_model()
            dev = model_device(ref_model)
            with torch.no_grad():
                ref = forward(ref_model, {k: v.to(dev) for k, v in batch.items()}).logits
            ref = ref.to(logits.device)
        return F.undial_loss(logits, ref, batch["labels"], beta=self.beta)


UNDIAL = MethodPreset(
    "undial",
    "UNDIAL self-distillation towards the reference with the true token's logit "
    f"lowered by beta, no retain term; community: {_community('undial')}, LoRA r=8",
    "Dong+ 2024, arXiv 2402.10052",
    forget="undial",
    retain=None,
    train=TINY_TRAIN,
)


# ----------------------------------------------------------------------------- PDU


class PDUForgetTerm(Term):
    """PDU forget term (Entesari+ 2025, arXiv 2506.05314): L_f = mean_t (max_v z_t,v − mean_v z_t,v)²
    over answer positions; drives the forget-set predictions towards uniform."""

    description = "PDU logit-margin flattening (max_v z - mean_v z)^2"
    name = "pdu"

    def loss_from_logits(self, logits: Any, batch: dict, job: UnlearnJob) -> Any:
        return F.pdu_margin_loss(logits, batch["labels"])


class PDURetainTerm(Term):
    """PDU's retain constraint NLL(D_r) ≤ ε as a Lagrangian term (arXiv 2506.05314):

    ``L_r = λ_r · (NLL(D_r) − ε)``, and after each optimiser step past the warm-up the dual
    ascent step ``λ_r ← max(0, λ_r + η·(NLL(D_r) − ε))`` (:func:`functional.pdu_dual_update`) with
    the NLL of that step's retain batch(es) -- OU's ``dual_update_upon: step``.

    Parameters (paper symbols): ``lambda_r`` the initial dual variable (OU TOFU script: 100),
    ``eps`` ε (no default in the paper; OU TOFU script: 0.3), ``eta`` η the dual step size (OU
    TOFU script: 5), ``warmup_epochs`` epochs before the first dual update (5). The preset's
    ``alpha`` multiplies this term as a constant: keep it 1, λ_r is the weight that moves.
    State (λ_r, the step counter) is per run: a method object is built for each run.
    """

    description = "PDU retain constraint lambda_r*(NLL - eps) with dual ascent on lambda_r"
    name = "pdu"

    def __init__(
        self,
        lambda_r: float = 100.0,
        eps: float = 0.3,
        eta: float = 5.0,
        warmup_epochs: float = 5.0,
    ) -> None:
        if lambda_r < 0:
            raise ValueError(f"lambda_r (the initial dual variable) must be >= 0, got {lambda_r}")
        if eta <= 0:
            raise ValueError(f"eta (the dual step size) must be > 0, got {eta}")
        self.lambda_r, self.eps, self.eta = float(lambda_r), float(eps), float(eta)
        self.warmup_epochs = float(warmup_epochs)
        self.grad_accum = 1
        self.warmup_steps = 0
        self.calls = 0
        self._pending: list[float] = []
        self.history: list[float] = []  # λ_r after each optimiser step (for logs and tests)

    def setup(self, job: UnlearnJob, retain: list[Encoded], cfg: TrainConfig) -> None:
        world = getattr(job.accelerator, "num_processes", 1) or 1
        per_rank = math.ceil(len(job.request.forget) / world)
        steps_per_epoch = max(1, math.ceil(math.ceil(per_rank / cfg.batch_size) / cfg.grad_accum))
        self.grad_accum = cfg.grad_accum
        self.warmup_steps = round(self.warmup_epochs * steps_per_epoch)

    def __call__(self, model: Any, batch: dict, job: UnlearnJob) -> Any:
        nll = F.nll_loss(forward(model, batch).logits, batch["labels"])
        loss = self.lambda_r * (nll - self.eps)  # uses λ_r before this step's dual update
        self._pending.append(float(nll.detach()))
        self.calls += 1
        if self.calls % self.grad_accum == 0:
            step = self.calls // self.grad_accum
            if step > self.warmup_steps:
                mean_nll = sum(self._pending) / len(self._pending)
                self.lambda_r = F.pdu_dual_update(self.lambda_r, mean_nll, self.eps, self.eta)
            self._pending.clear()
            self.history.append(self.lambda_r)
        return loss


# Selected by the tuned leaderboard on the built-in forget10 (docs/sweep.md): forget quality
# 0.192 +- 0.033 over 3 seeds within the utility floors, against 5e-23 at TINY_TRAIN, alpha 1.
PDU = MethodPreset(
    "pdu",
    "Primal-dual unlearning: logit-margin flattening on forget, retain NLL <= eps with "
    f"a dual variable; community: {_community('pdu')}",
    "Entesari+ 2025, arXiv 2506.05314",
    forget="pdu",
    retain="pdu",
    gamma=1.0,
    alpha=4.75,
    train={**TINY_TRAIN, "lr": 6.8e-4, "epochs": 27},
)


# ----------------------------------------------------------------------------- LLMU


def encode_pairs(
    job: UnlearnJob, pairs: Sequence[tuple[str, str]], max_length: int, device: Any
) -> dict:
    """Encode (question, answer) pairs with the job's template and collate them on ``device``."""
    enc = [encode(job.tokenizer, q, a, job.template, max_length) for q, a in pairs]
    b = pad_batch([e.input_ids for e in enc], pad_id_of(job.tokenizer), [e.labels for e in enc])
    return {k: v.to(device) for k, v in b.items()}


class LLMUTerm(Term):
    """LLMU's forget side (Yao+ 2023, arXiv 2310.10683): ε1·(−NLL(D_f)) + ε2·NLL(y_rand | x_f).

    ``y_rand`` is the answer of a random retain ("normal") item, paired with each forget question
    anew on every step (seeded by ``train.seed``). ``ascent_weight`` is ε1 (0.5) and
    ``random_weight`` ε2 (1), the reference code's ``bad_weight``/``random_weight``
    (kevinyaobytedance/llm_unlearn); ε3, the weight of the KL term on normal data, is the
    preset's ``alpha`` (1). Both NLLs are HF token means over their batch.
    """

    description = "LLMU: ascent on forget + NLL of random retain answers to forget questions"
    name = "llmu"

    def __init__(self, ascent_weight: float = 0.5, random_weight: float = 1.0) -> None:
        self.ascent_weight, self.random_weight = float(ascent_weight), float(random_weight)
        self.questions: list[str] = []
        self.answers: list[str] = []
        self.max_length = 512
        self.rng = random.Random(0)

    def setup(self, job: UnlearnJob, forget: list[Encoded], cfg: TrainConfig) -> None:
        if not job.request.retain:
            raise ValueError(
                "llmu pairs forget questions with random retain answers: the request "
                "has no retain set; give one"
            )
        self.questions = [it.question for it in job.request.forget]
        self.answers = [it.answer for it in job.request.retain]
        self.max_length = cfg.max_length
        self.rng = random.Random(cfg.seed)

    def __call__(self, model: Any, batch: dict, job: UnlearnJob) -> Any:
        loss = self.ascent_weight * F.ga_loss(forward(model, batch).logits, batch["labels"])
        if self.random_weight:
            pairs = [
                (self.questions[int(i)], self.rng.choice(self.answers))
                for i in batch["index"].tolist()
            ]
            rb = encode_pairs(job, pairs, self.max_length, batch["input_ids"].device)
            loss = loss + self.random_weight * F.nll_loss(forward(model, rb).logits, rb["labels"])
        return loss


LLMU = MethodPreset(
    "llmu",
    "LLMU: 0.5 ascent + NLL of random normal answers on forget questions + KL on retain; "
    f"community: {_community('llmu')}",
    "Yao+ 2023, arXiv 2310.10683",
    forget="llmu",
    retain="kl",
    gamma=1.0,
    alpha=1.0,
    train=TINY_TRAIN,
)
