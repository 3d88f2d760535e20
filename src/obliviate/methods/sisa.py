"""SISA exact unlearning for generative language models (Bourtoule et al. IEEE S&P 2021,
arXiv 1912.03817; docs/methods.md).

**Sharded, Isolated, Sliced, Aggregated.** The training set D is split at random into ``shards``
disjoint shards and each shard into ``slices`` disjoint slices. One constituent model per shard
is trained *incrementally*: stage r trains on slices 1..r of its shard (the cumulative union)
and a checkpoint is stored after every stage. Deleting a sample x of shard s, slice r removes x
from the data, reloads shard s's checkpoint after stage r−1 (the last one that never saw x)
and re-runs stages r..R; every other shard is untouched. The result is *exactly* the model
one would get by training on D \\ {x} from scratch with the same assignment and seeds (tested).

Choices made here (documented, not from the paper):

- **Stages.** Each stage is one :func:`obliviate.training.train_loop` call with a fresh AdamW
  optimiser and learning-rate schedule, seeded by (train.seed, shard, stage); a checkpoint is
  the trainable weights only. Because a stage depends only on its starting weights, its data
  and its seed, resuming from a checkpoint reproduces training from scratch bit for bit.
- **Epochs.** ``train.epochs`` = e is the budget of one ordinary (unsliced) training run. Each
  stage trains for e' = 2e / (R + 1) epochs, so that a shard's total work Σ_r (r/R)·|shard|·e'
  equals e passes over the shard (the paper's slicing budget, §V).
- **Constituents.** ``init="scratch"``: full models, randomly initialised from the given
  model's architecture (seed = train.seed) - the only exact choice when the given model was
  itself trained on D, as the tiny benchmark targets are. ``init="model"``: start from the
  given model, which must then be a base never trained on D (e.g. a pre-trained LLM);
  ``peft={...}``: the constituents are LoRA adapters on that shared frozen base ("SISA with
  adapters", Kumar+ 2022, arXiv 2212.09573). The tokenizer counts as part of the base.
- **Aggregation.** Next-token distributions are averaged: p(v | ctx) = (1/S) Σ_s p_s(v | ctx)
  at every position, and the ensemble's ``logits`` are log p (so log_softmax(logits) = logits).
  Teacher-forced sequence scores are therefore products of per-token mixtures, and greedy
  generation picks argmax_v p(v | ctx) at each step (one KV cache per shard). The paper
  aggregates classifier labels by majority vote, which has no token-level counterpart.

A saved ensemble is a folder with ``obliviate_wrapper.json`` (settings, shard/slice assignment),
``data.jsonl`` (the training items still in D - SISA needs them to retrain; forgotten items
are removed), ``checkpoints/shard<s>/slice<r>.safetensors``, the base model (``base/``, or a
path to it) and the tokenizer.
"""

from __future__ import annotations

from typing import Any, cast

from obliviate.config import TrainConfig
from obliviate.methods.base import MethodPreset, UnlearnJob, UnlearnOutput
from obliviate.methods.sisa_ensemble import ForgetReport, SISAEnsemble  # noqa: F401  (public)
from obliviate.methods.sisa_shards import (  # noqa: F401  (public)
    FORMAT_VERSION,
    SISA_PAPER,
    SISA_TINY_TRAIN,
    assign_shards,
    planned_steps,
    stage_epochs,
    stage_seed,
)
from obliviate.models.protocol import CausalLM

# ----------------------------------------------------------------------------- the method


class SISAMethod:
    """Builder object of the ``sisa`` method: forget ``job.request.forget`` from a SISA
    ensemble - the model being unlearned when it is one (a folder loaded by ``load_model``),
    the folder ``ensemble``, or a new ensemble trained here on the request's full training set
    (``request.full``, else forget + retain) from ``job.model``."""

    def __init__(
        self,
        train: TrainConfig,
        shards: int = 4,
        slices: int = 4,
        init: str = "scratch",
        peft: dict[str, Any] | None = None,
        ensemble: str | None = None,
    ) -> None:
        self.train, self.shards, self.slices = train, int(shards), int(slices)
        self.init, self.peft, self.ensemble = init, peft, ensemble

    def unlearn(self, job: UnlearnJob) -> UnlearnOutput:
        import time

        info: dict[str, Any] = {}
        t0 = time.perf_counter()
        if isinstance(job.model, SISAEnsemble):
            ens = job.model
        elif self.ensemble:
            ens = SISAEnsemble.from_pretrained(self.ensemble)
        else:
            data = job.request.full or (job.request.forget + job.request.retain)
            ens, trained = SISAEnsemble.fit(
                job.model,
                job.tokenizer,
                data,
                self.train,
                self.shards,
                self.slices,
                self.init,
                self.peft,
                job.template,
                base_path=job.model_path if self.init == "model" else None,
                accelerator=job.accelerator,
                checkpoint_dir=job.checkpoint_dir("sisa_fit", self.train.checkpoint),
            )
            info.update(
                initial_training_steps=trained["steps"],
                initial_training_s=round(time.perf_counter() - t0, 3),
            )
            # exact only when the constituents' starting point never saw the data
            info["exact"] = self.init == "scratch"
        report = ens.forget(
            job.request.forget,
            accelerator=job.accelerator,
            checkpoint_dir=job.checkpoint_dir("sisa_forget", self.train.checkpoint),
        )
        info.update(
            removed=report.removed,
            shards_retrained=report.shards_retrained,
            first_stage={str(k): v for k, v in report.first_stage.items()},
            steps=report.steps,
            full_retrain_steps=report.full_retrain_steps,
            single_model_steps=report.single_model_steps,
        )
        if job.run_dir is not None:
            from obliviate.io import write_json, write_jsonl

            write_jsonl(job.run_dir / "train_log.jsonl", report.log)
            write_json(job.run_dir / "sisa_cost.json", info)
        # the ensemble stands in for a causal LM (no .config, no KV cache in its output)
        job.model = cast("CausalLM", ens)
        n_train = ens.trainable_params_per_shard() * ens.n_shards
        return UnlearnOutput(ens, report.log, n_train, None, info)


def _build(train: TrainConfig, **options: Any) -> SISAMethod:
    return SISAMethod(train, **options)


SISA = MethodPreset(
    "sisa",
    "SISA exact unlearning: shard/slice-checkpointed constituents, retrain only affected shards",
    SISA_PAPER,
    builder=_build,
    options={"shards": 4, "slices": 4, "init": "scratch", "peft": None, "ensemble": None},
    train=SISA_TINY_TRAIN,
    kind="exact",
)
