"""Closed-form model-editing methods (docs/methods.md): ``rome`` and ``memit``.

Both replace the answers of the forget set with a refusal by editing MLP output projections
(:mod:`obliviate.editing`). The subject of an item is its ``subject_field`` column (default
``subject``; any column of the user's files or of a TOFU folder, renamed with ``--map`` if
needed), else guessed from the question; the subjects and layers edited are recorded in the
method's info (``<run>/method.json``). They train nothing: of the ``train`` settings only ``seed``,
``batch_size`` and ``max_length`` are used. The result is an ordinary model (saved and
evaluated like any fine-tuned one), so "probability of an answer" has its usual meaning.

Defaults follow EasyEdit's Llama hyper-parameters (``zjunlp/EasyEdit, hparams/*/llama-7b.yaml``:
25 steps at lr 0.5, weight decay 1e-3, clamp factor 4, KL factor 0.0625, 100,000 statistics
tokens), except where a tiny model needs otherwise (documented per option in
docs/inference-methods.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from obliviate.config import TrainConfig
from obliviate.methods.base import MethodPreset, UnlearnJob, UnlearnOutput

REFUSAL = "I don't know."


class EditingMethod:
    """Locate (causal tracing) then edit (ROME or MEMIT) the forget set into refusals."""

    def __init__(
        self,
        train: TrainConfig,
        algorithm: str = "rome",
        layers: Any = "auto",
        n_layers: int = 2,
        refusal: str = REFUSAL,
        key_position: str = "subject_last",
        steps: int = 25,
        lr: float = 0.5,
        weight_decay: float = 1e-3,
        clamp_norm_factor: float = 4.0,
        kl_factor: float = 0.0625,
        update_weight: float = 1.0,
        stats: str = "retain",
        stats_tokens: int = 100_000,
        trace_items: int = 10,
        trace_samples: int = 5,
        trace_noise: float = 3.0,
        trace_window: int = 1,
        subject_field: str = "subject",
    ) -> None:
        if algorithm not in ("rome", "memit"):
            raise ValueError(f"algorithm must be 'rome' or 'memit', not {algorithm!r}")
        if not (
            layers == "auto"
            or isinstance(layers, int)
            or (isinstance(layers, (list, tuple)) and all(isinstance(x, int) for x in layers))
        ):
            raise ValueError(
                f"layers must be 'auto', a layer index or a list of them, not {layers!r}"
            )
        if n_layers < 1 or steps < 0 or trace_items < 1 or trace_samples < 1 or stats_tokens < 1:
            raise ValueError(
                "n_layers, trace_items, trace_samples and stats_tokens must be >= 1; steps >= 0"
            )
        if update_weight < 0:
            raise ValueError(f"update_weight must be >= 0, got {update_weight}")
        self.train = train
        self.algorithm = algorithm
        self.layers = layers
        self.n_layers = n_layers
        self.refusal = refusal
        self.key_position = key_position
        self.steps, self.lr, self.weight_decay = steps, lr, weight_decay
        self.clamp_norm_factor, self.kl_factor = clamp_norm_factor, kl_factor
        self.update_weight = update_weight
        self.stats, self.stats_tokens = stats, stats_tokens
        self.trace_items, self.trace_samples = trace_items, trace_samples
        self.trace_noise, self.trace_window = trace_noise, trace_window
        self.subject_field = subject_field

    def _config(self) -> Any:
        from obliviate.editing.rome import EditConfig

        return EditConfig(
            refusal=self.refusal,
            steps=self.steps,
            lr=self.lr,
            weight_decay=self.weight_decay,
            clamp_norm_factor=self.clamp_norm_factor,
            kl_factor=self.kl_factor,
            batch_size=self.train.batch_size,
            max_length=self.train.max_length,
            seed=self.train.seed,
            subject_field=self.subject_field,
            key_position=self.key_position,
        )

    def locate(
        self, job: UnlearnJob, prompts: Sequence[Any]
    ) -> tuple[list[int], list[float] | None]:
        """The layers to edit: given, or chosen by causal tracing (module docs of
        :mod:`obliviate.editing.trace`)."""
        import numpy as np

        from obliviate.editing.arch import EditableModel
        from obliviate.editing.trace import trace_layers

        n = EditableModel(job.model).n_layers
        if self.layers != "auto":
            layers = [self.layers] if isinstance(self.layers, int) else list(self.layers)
            bad = [x for x in layers if not 0 <= x < n]
            if bad:
                raise ValueError(
                    f"layers {bad} are out of range: the model has {n} layers (0..{n - 1})"
                )
            return sorted(set(layers)), None
        with_subject = [p for p in prompts if p.span.found][: self.trace_items]
        # the last block's output at a prompt position other than the last reaches no answer
        # token, so subject-position edits can only go below it
        top = n - 1 if self.key_position == "prompt_last" else max(0, n - 2)
        if not with_subject:
            ie = None
            best = top // 2
        else:
            traced = [
                {
                    "input_ids": p.answer_ids,
                    "labels": p.answer_labels,
                    "first": p.span.first,
                    "last": p.span.last,
                    "restore": p.key_pos,
                }
                for p in with_subject
            ]
            ie = trace_layers(
                job.model,
                job.tokenizer,
                traced,
                self.trace_noise,
                self.trace_samples,
                self.trace_window,
                self.train.seed,
            )
            best = int(np.argmax(ie[: top + 1]))
        if self.algorithm == "rome":
            return [best], None if ie is None else [float(x) for x in ie]
        width = min(self.n_layers, top + 1)
        if ie is None:
            start = max(0, min(best - width // 2, top + 1 - width))
        else:
            sums = [float(np.sum(ie[s : s + width])) for s in range(top + 2 - width)]
            start = int(np.argmax(sums))
        return list(range(start, start + width)), None if ie is None else [float(x) for x in ie]

    def _stats_sequences(self, job: UnlearnJob) -> list[list[int]]:
        if self.stats == "retain":
            if not job.request.retain:
                raise ValueError(
                    "key statistics come from the retain set, but the request has none; "
                    "give a retain set or stats='<text file, one document per line>'"
                )
            return [
                e.input_ids for e in job.encode_items(job.request.retain, self.train.max_length)
            ]
        from obliviate.editing.stats import read_text_lines

        tok = job.tokenizer
        return [
            list(tok(line, truncation=True, max_length=self.train.max_length)["input_ids"])
            for line in read_text_lines(self.stats)
        ]

    def unlearn(self, job: UnlearnJob) -> UnlearnOutput:
        import time

        import torch

        from obliviate.editing.arch import EditableModel
        from obliviate.editing.rome import memit_edit, prepare_prompts, rome_edit
        from obliviate.editing.stats import key_second_moments

        t0 = time.perf_counter()
        torch.manual_seed(self.train.seed)
        model = job.model
        model.eval()
        ed = EditableModel(model)
        cfg = self._config()
        check_subject_field(job.request.forget, self.subject_field)
        prompts = prepare_prompts(job.tokenizer, job.template, job.request.forget, cfg)
        layers, ie = self.locate(job, prompts)
        C = key_second_moments(
            model,
            job.tokenizer,
            self._stats_sequences(job),
            layers,
            self.stats_tokens,
            self.train.batch_size,
        )
        if self.algorithm == "rome":
            report = rome_edit(model, job.tokenizer, prompts, layers[0], C[layers[0]], cfg)
        else:
            report = memit_edit(model, job.tokenizer, prompts, layers, C, self.update_weight, cfg)
        edited = sum(ed.down(layer).weight.numel() for layer in layers)
        info = {
            "layers": layers,
            "indirect_effects": ie,
            "groups": len({p.group for p in prompts}),
            "with_subject": sum(p.span.found for p in prompts),
            "prompts": len(prompts),
            "subject_field": self.subject_field,
            "subjects": sorted({p.subject for p in prompts if p.subject}),
            "edits": report,
            "value_log": cfg.logs,
            "edit_s": round(time.perf_counter() - t0, 3),
        }
        return UnlearnOutput(model, [], edited, None, info)


_BOOKKEEPING = ("source", "row", "config")


def check_subject_field(items: Sequence[Any], field: str) -> None:
    """A ``subject_field`` other than the default must name a column of the forget data (any
    source: the user's files, a TOFU folder, lists of rows); the error lists the columns."""
    if field == "subject" or any(field in (it.meta or {}) for it in items):
        return
    cols = sorted({k for it in items for k in (it.meta or {}) if k not in _BOOKKEEPING})
    raise ValueError(
        f"subject_field={field!r}: no forget item has that column (columns besides question "
        f"and answer: {', '.join(cols) or 'none'}); name one of them or map one with --map"
    )


_COMMON = {
    "layers": "auto",
    "refusal": REFUSAL,
    "key_position": "subject_last",
    "steps": 25,
    "lr": 0.5,
    "weight_decay": 1e-3,
    "clamp_norm_factor": 4.0,
    "kl_factor": 0.0625,
    "stats": "retain",
    "stats_tokens": 100_000,
    "trace_items": 10,
    "trace_samples": 5,
    "trace_noise": 3.0,
    "trace_window": 1,
    "subject_field": "subject",
}


def _rome(train: TrainConfig, **opts: Any) -> EditingMethod:
    return EditingMethod(train, "rome", **opts)


def _memit(train: TrainConfig, **opts: Any) -> EditingMethod:
    return EditingMethod(train, "memit", **opts)


ROME = MethodPreset(
    "rome",
    "Rank-one MLP edit per forget subject (located by causal tracing) to a refusal",
    "Meng+ 2022, arXiv 2202.05262",
    builder=_rome,
    options=dict(_COMMON),
    kind="editing",
)
MEMIT = MethodPreset(
    "memit",
    "Multi-layer batched MLP edit of the whole forget set to a refusal",
    "Meng+ 2023, arXiv 2210.07229",
    builder=_memit,
    options={**_COMMON, "n_layers": 2, "update_weight": 1.0},
    kind="editing",
)
