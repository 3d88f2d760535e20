"""The benchmark entries ``builtin-mllmu`` (the built-in people) and ``mllmu`` (MLLMU-Bench,
Liu+ 2024, arXiv 2410.22108, from the hub or a local copy): :func:`build_mllmu` loads the
request and evaluates a :class:`~obliviate.multimodal.lm.VisionLM` on its four sets
(:func:`obliviate.multimodal.evaluate.evaluate_sets`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from obliviate.benchmarks.suites import Suite, _builtin_only
from obliviate.data.types import UnlearningRequest

_BUILTIN_OPTIONS = ("n_people", "n_real", "seed")


@dataclass
class MLLMUSuite(Suite):
    """MLLMU-Bench's three tasks in both modes on the four sets."""

    req: UnlearningRequest | None = None

    @property
    def request(self) -> UnlearningRequest:
        assert self.req is not None
        return self.req

    def key(self, fingerprint: str) -> dict[str, Any]:
        return {"benchmark": self.name, "split": self.split, "model": fingerprint}

    def evaluate(
        self, model: Any, tokenizer: Any, reference: Any, fingerprint: str, progress: bool
    ) -> Any:
        from obliviate.multimodal.evaluate import evaluate_sets
        from obliviate.multimodal.lm import VisionLM

        if not isinstance(model, VisionLM):
            raise ValueError(
                f"benchmark {self.name!r} evaluates vision-language models; load one with "
                "obliviate.multimodal.loading.load_vision_lm"
            )
        return evaluate_sets(model, tokenizer, self.request.eval)


def _percent(split: str, name: str) -> int:
    digits = split.removeprefix("forget")
    if not digits.isdigit():
        raise ValueError(f"benchmark {name!r}: split {split!r} is not forgetNN (e.g. forget10)")
    return int(digits)


def build_mllmu(
    spec: Any,
    data: str,
    split: str,
    builtin: dict[str, Any] | None = None,
    revision: str | None = None,
    **_unused: Any,
) -> MLLMUSuite:
    """The built-in people (``data="builtin"``; options ``n_people``, ``n_real``, ``seed``)
    or MLLMU-Bench from ``data`` (the hub name or a local folder)."""
    _builtin_only(data, spec.name, builtin)
    percent = _percent(split, spec.name)
    if data == "builtin":
        from obliviate.multimodal.people import generate_people, unlearning_request

        opts = dict(builtin or {})
        bad = sorted(set(opts) - set(_BUILTIN_OPTIONS))
        if bad:
            raise ValueError(
                f"benchmark {spec.name!r}: unknown built-in option(s) {bad}; known: "
                + ", ".join(_BUILTIN_OPTIONS)
            )
        req = unlearning_request(generate_people(forget_percent=percent, **opts))
    else:
        from obliviate.multimodal.mllmu import load_mllmu

        req = load_mllmu(data, percent, revision)
    return MLLMUSuite(spec.name, split, req=req)
