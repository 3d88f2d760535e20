"""Inference-time methods (docs/methods.md): ``icul``, ``guardrail``, ``eco`` and
``whp_logits``. Each returns an :mod:`obliviate.inference` wrapper around the untouched target,
which ``evaluate()`` scores and generates through, and which saves to a folder with
``obliviate_wrapper.json``.

Only ``whp_logits`` trains (its reinforced model, with the ``train`` settings); the others use
``train.seed`` (sampling, classifier, noise) and nothing else of ``train``.
"""

from __future__ import annotations

import random
from typing import Any

from obliviate.config import TrainConfig
from obliviate.methods.base import MethodPreset, UnlearnJob, UnlearnOutput

REFUSAL = "I don't know."


def _qa_only(items: list[Any], what: str) -> None:
    from obliviate.data.types import DataError

    for i, it in enumerate(items):
        if it.is_document:
            raise DataError(f"{what} item {i + 1} is a plain document: this method needs questions")


def _base_path(job: UnlearnJob, save_base: str) -> str | None:
    if save_base == "path" and not job.model_path:
        raise ValueError("save_base='path' needs a target loaded from a folder")
    return job.model_path


# ----------------------------------------------------------------------------- ICUL


class ICULMethod:
    """Build an ICUL wrapper: forget questions with flipped answers + retain context examples."""

    def __init__(
        self,
        train: TrainConfig,
        n_forget: int = 1,
        n_context: int = 4,
        forget_answer: str = "refusal",
        refusal: str = REFUSAL,
        encoder: str = "tfidf",
        save_base: str = "copy",
    ) -> None:
        if forget_answer not in ("refusal", "perturbed"):
            raise ValueError(
                f"forget_answer must be 'refusal' or 'perturbed', not {forget_answer!r}"
            )
        if n_context < 0 or n_forget < 1:
            raise ValueError("n_context must be >= 0 and n_forget >= 1")
        self.train, self.n_forget, self.n_context = train, n_forget, n_context
        self.forget_answer, self.refusal, self.encoder = forget_answer, refusal, encoder
        self.save_base = save_base

    def unlearn(self, job: UnlearnJob) -> UnlearnOutput:
        from obliviate.inference.classifier import TextEncoder
        from obliviate.inference.icul import ICULWrapper

        req = job.request
        _qa_only(req.forget, "forget")
        flipped = []
        for it in req.forget:
            alt = (
                it.perturbed_answers[0]
                if (self.forget_answer == "perturbed" and it.perturbed_answers)
                else self.refusal
            )
            flipped.append((it.question, alt))
        pool = [it for it in req.retain if not it.is_document]
        if self.n_context and len(pool) < self.n_context:
            raise ValueError(
                f"ICUL needs {self.n_context} retain examples for its context; the "
                f"retain set has {len(pool)} questions (lower n_context)"
            )
        ctx = random.Random(self.train.seed).sample(pool, self.n_context) if self.n_context else []
        wrapper = ICULWrapper(
            job.model,
            job.tokenizer,
            job.template,
            flipped,
            [(it.question, it.answer) for it in ctx],
            self.n_forget,
            TextEncoder.create(self.encoder),
            base_path=_base_path(job, self.save_base),
            save_base=self.save_base,
        )
        return UnlearnOutput(
            wrapper, [], 0, None, {"context_questions": [it.question for it in ctx]}
        )


# ----------------------------------------------------------------------------- guardrails


class GuardrailMethod:
    """Fit and calibrate the forget-scope classifier, build the output filter, wrap the model."""

    def __init__(
        self,
        train: TrainConfig,
        action: str = "refuse",
        encoder: str = "auto",
        C: float = 10.0,
        target_fpr: float = 0.01,
        calibration_fraction: float = 0.5,
        refusal: str = REFUSAL,
        epsilon: float = 1e-4,
        output_filter: bool = True,
        span_words: int = 3,
        corruption: str = "noise",
        sigma: Any = "auto",
        k: int = 0,
        sigma_init: float = 1.0,
        zo_steps: int = 20,
        zo_eps: float = 0.1,
        zo_lr: float = 2.0,
        sigma_min: float = 0.0,
        zo_tolerance: float = 0.01,
        save_base: str = "copy",
    ) -> None:
        if not 0.0 < calibration_fraction < 1.0:
            raise ValueError(f"calibration_fraction must be in (0, 1), got {calibration_fraction}")
        if not (sigma == "auto" or isinstance(sigma, (int, float))):
            raise ValueError(f"sigma must be 'auto' or a number, not {sigma!r}")
        self.train = train
        self.action, self.encoder, self.C = action, encoder, C
        self.target_fpr, self.calibration_fraction = target_fpr, calibration_fraction
        self.refusal, self.epsilon = refusal, epsilon
        self.output_filter, self.span_words = output_filter, span_words
        self.corruption, self.sigma, self.k = corruption, sigma, k
        self.sigma_init, self.zo_steps, self.zo_eps, self.zo_lr = (
            sigma_init,
            zo_steps,
            zo_eps,
            zo_lr,
        )
        self.sigma_min, self.zo_tolerance = sigma_min, zo_tolerance
        self.save_base = save_base

    def classifier(self, job: UnlearnJob) -> tuple[Any, dict[str, Any]]:
        """Fit on forget (positives) vs part of retain; calibrate on the rest of retain + holdout."""
        from obliviate.inference.base import PromptSplitter
        from obliviate.inference.classifier import ForgetScopeClassifier, TextEncoder

        req = job.request
        PromptSplitter(job.tokenizer, job.template)  # fails early on a template without a marker
        retain = [it.question for it in req.retain if not it.is_document]
        if len(retain) < 2:
            raise ValueError(
                "the guardrail classifier needs at least 2 retain questions (negatives)"
            )
        random.Random(self.train.seed).shuffle(retain)
        n_cal = max(1, round(self.calibration_fraction * len(retain)))
        fit_neg, cal_neg = retain[n_cal:], retain[:n_cal]
        holdout = [it.question for it in req.holdout if not it.is_document]
        positives = [it.question for it in req.forget]
        clf = ForgetScopeClassifier(TextEncoder.create(self.encoder), C=self.C)
        clf.fit(positives, fit_neg, seed=self.train.seed)
        clf.calibrate(cal_neg + holdout, self.target_fpr, positives)
        info = {
            "encoder": clf.encoder.kind,
            "threshold": clf.threshold,
            **clf.calibration,
            "n_fit_negatives": len(fit_neg),
            "n_calibration_retain": len(cal_neg),
            "n_calibration_holdout": len(holdout),
        }
        return clf, info

    def unlearn(self, job: UnlearnJob) -> UnlearnOutput:
        from obliviate.inference.guardrail import AnswerSpanFilter, GuardrailWrapper

        req = job.request
        _qa_only(req.forget, "forget")
        clf, info = self.classifier(job) if self.action != "none" else (None, {})
        filt = None
        if self.output_filter:
            allowed = [it.answer for it in req.retain] + [it.answer for it in req.holdout]
            filt = AnswerSpanFilter.build(
                [it.answer for it in req.forget], allowed, self.span_words
            )
            info["filter_spans"] = len(filt.spans)
        sigma = self.sigma_init if self.sigma == "auto" else float(self.sigma)
        wrapper = GuardrailWrapper(
            job.model,
            job.tokenizer,
            job.template,
            clf,
            self.action,
            self.refusal,
            self.epsilon,
            self.corruption,
            sigma,
            self.k,
            filt,
            self.train.seed,
            _base_path(job, self.save_base),
            self.save_base,
        )
        if self.action == "corrupt" and self.corruption == "noise" and self.sigma == "auto":
            info["sigma_search"] = self.tune_sigma(job, wrapper)
        info["sigma"] = wrapper.sigma
        return UnlearnOutput(wrapper, [], 0, None, info)

    def tune_sigma(self, job: UnlearnJob, wrapper: Any) -> dict[str, Any]:
        """ECO's zeroth-order search for the noise scale σ (docs/methods.md):
        f(σ) = (P̄_forget(σ) − P̄_target)², ĝ = (f(σ + ε) − f(σ − ε)) / (2ε),
        σ ← max(σ − lr·ĝ, σ_min), stopping when |P̄_forget(σ) − P̄_target| ≤ tolerance.

        P̄_forget(σ) is the mean per-token answer probability of the forget set through the
        wrapper; the target P̄_target is the unmodified model's mean on the holdout set: the
        level of answers the model never learned (what ECO's "random guess" target stands for
        on generation tasks)."""
        import numpy as np

        from obliviate.scoring import score_pairs

        req = job.request
        if not req.holdout:
            raise ValueError(
                "sigma='auto' needs a holdout set for its target level; give one or a number"
            )
        pairs = [(it.question, it.answer) for it in req.forget]

        def mean_prob(model: Any, pp: list[tuple[str, str]]) -> float:
            s = score_pairs(
                model,
                job.tokenizer,
                pp,
                job.template,
                self.train.batch_size,
                self.train.max_length,
                progress=False,
            )
            return float(np.mean([np.exp(-x.nll_avg()) for x in s]))

        target = mean_prob(job.model, [(it.question, it.answer) for it in req.holdout])

        def f(sig: float) -> tuple[float, float]:
            wrapper.sigma = max(sig, 0.0)
            p = mean_prob(wrapper, pairs)
            return (p - target) ** 2, p

        sig = float(self.sigma_init)
        trail = []
        for _ in range(self.zo_steps):
            _, p = f(sig)
            trail.append({"sigma": sig, "forget_prob": p})
            if abs(p - target) <= self.zo_tolerance:
                break
            g = (f(sig + self.zo_eps)[0] - f(sig - self.zo_eps)[0]) / (2 * self.zo_eps)
            sig = max(sig - self.zo_lr * g, self.sigma_min)
        wrapper.sigma = sig
        return {"target_prob": target, "trail": trail}


# ----------------------------------------------------------------------------- WHP logits


class WHPLogitsMethod:
    """Train the reinforced model (target + NLL on the forget set), wrap both (WHP logits)."""

    def __init__(
        self,
        train: TrainConfig,
        alpha: float = 1.0,
        reinforced: str | None = None,
        save_base: str = "copy",
    ) -> None:
        self.train, self.alpha, self.reinforced, self.save_base = (
            train,
            alpha,
            reinforced,
            save_base,
        )

    def unlearn(self, job: UnlearnJob) -> UnlearnOutput:
        import copy

        from obliviate.data.collate import pad_id_of
        from obliviate.inference.offset import LogitOffsetWrapper
        from obliviate.methods import functional as F
        from obliviate.models.loading import load_model
        from obliviate.training import train_loop

        log: list[dict[str, float]] = []
        n_train = 0
        if self.reinforced:
            reinforced = load_model(self.reinforced)
        else:
            reinforced = copy.deepcopy(job.model)
            reinforced.train()
            for p in reinforced.parameters():
                p.requires_grad_(True)
            n_train = sum(p.numel() for p in reinforced.parameters())
            forget = job.encode_items(job.request.forget, self.train.max_length)

            def loss_fn(m: Any, batch: dict, _rb: Any, _step: int) -> tuple[Any, dict[str, float]]:
                logits = m(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                ).logits
                return F.nll_loss(logits, batch["labels"]), {}

            log_path = job.run_dir / "train_log.jsonl" if job.run_dir else None
            result = train_loop(
                reinforced,
                loss_fn,
                forget,
                self.train,
                pad_id_of(job.tokenizer),
                accelerator=job.accelerator,
                log_path=log_path,
                desc="reinforcing",
                progress=job.progress,
                checkpoint_dir=job.checkpoint_dir("whp_logits_reinforce", self.train.checkpoint),
            )
            log = result.log
            reinforced = getattr(reinforced, "module", reinforced)
            reinforced.eval()
        wrapper = LogitOffsetWrapper(
            job.model,
            job.tokenizer,
            job.template,
            reinforced,
            self.alpha,
            reinforced_path=self.reinforced,
            base_path=_base_path(job, self.save_base),
            save_base=self.save_base,
        )
        return UnlearnOutput(wrapper, log, n_train, None, {"alpha": self.alpha})


# ----------------------------------------------------------------------------- presets

_GUARD = {
    "encoder": "auto",
    "C": 10.0,
    "target_fpr": 0.01,
    "calibration_fraction": 0.5,
    "refusal": REFUSAL,
    "epsilon": 1e-4,
    "span_words": 3,
    "save_base": "copy",
}
_ECO = {
    "corruption": "noise",
    "sigma": "auto",
    "k": 0,
    "sigma_init": 1.0,
    "zo_steps": 20,
    "zo_eps": 0.1,
    "zo_lr": 2.0,
    "sigma_min": 0.0,
    "zo_tolerance": 0.01,
}

ICUL = MethodPreset(
    "icul",
    "In-context unlearning: flipped forget examples + retain examples before each query",
    "Pawelczyk+ 2023, arXiv 2310.07579",
    builder=ICULMethod,
    options={
        "n_forget": 1,
        "n_context": 4,
        "forget_answer": "refusal",
        "refusal": REFUSAL,
        "encoder": "tfidf",
        "save_base": "copy",
    },
    kind="inference",
)
GUARDRAIL = MethodPreset(
    "guardrail",
    "Forget-scope prompt classifier -> refusal, plus an output filter on forget answer spans",
    "Thaker+ 2024, arXiv 2403.03329",
    builder=lambda train, **o: GuardrailMethod(train, action="refuse", **o),
    options={**_GUARD, "output_filter": True},
    kind="inference",
)
ECO = MethodPreset(
    "eco",
    "Forget-scope prompt classifier -> corrupted prompt embeddings (noise scale tuned)",
    "Liu+ 2024 (ECO), arXiv 2406.07933",
    builder=lambda train, **o: GuardrailMethod(train, action="corrupt", **o),
    options={**_GUARD, **_ECO, "output_filter": False},
    kind="inference",
)
WHP_LOGITS = MethodPreset(
    "whp_logits",
    "Logit offset at inference: base - alpha*ReLU(reinforced - base), WHP style",
    "Eldan & Russinovich 2023, arXiv 2310.02238",
    builder=WHPLogitsMethod,
    options={"alpha": 1.0, "reinforced": None, "save_base": "copy"},
    train={
        "lr": 1e-3,
        "epochs": 5,
        "batch_size": 32,
        "warmup_epochs": 0.0,
        "scheduler": "constant",
    },
    kind="inference",
)
