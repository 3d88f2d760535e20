"""The SISA ensemble (Bourtoule et al. IEEE S&P 2021, arXiv 1912.03817): S constituent models,
trained incrementally on their shard's slices with a checkpoint per stage, aggregated by averaging
next-token probabilities; :meth:`SISAEnsemble.forget` retrains only the affected shards from the
last checkpoint that never saw the data. :mod:`obliviate.methods.sisa` describes the method and
the saved folder.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from obliviate.config import TrainConfig, from_dict, replace, to_dict
from obliviate.data.collate import pad_id_of
from obliviate.data.templates import Encoded, PromptTemplate, encode
from obliviate.data.types import DataError, QAItem
from obliviate.methods.job import _unwrap
from obliviate.methods.sisa_shards import (
    SISA_PAPER,
    assign_shards,
    planned_steps,
    stage_epochs,
    stage_seed,
)

# ----------------------------------------------------------------------------- reports


@dataclass
class ForgetReport:
    """What a deletion cost, in optimiser steps, next to the alternatives."""

    removed: int  # training items removed (all copies of each forget pair)
    shards_retrained: list[int]
    first_stage: dict[int, int]  # shard -> first re-run stage (1-based)
    steps: int  # steps actually taken by the retraining
    full_retrain_steps: int  # retraining every shard from scratch on D \ forget
    single_model_steps: int  # one unsharded model, e epochs on D \ forget
    log: list[dict[str, float]] = field(default_factory=list)


# ----------------------------------------------------------------------------- the ensemble


class _Output:
    """Minimal model output: ``.logits`` (and ``.cache`` during generation)."""

    def __init__(self, logits: Any) -> None:
        self.logits = logits


class SISAEnsemble:
    """S constituent models (full models or LoRA adapters on one base) over a sharded,
    sliced training set, aggregated by averaging next-token probabilities.

    Build one with :meth:`fit`, load one with :meth:`from_pretrained`, delete data with
    :meth:`forget`. It behaves like a causal LM for :mod:`obliviate.scoring`:
    ``ens(input_ids=, attention_mask=).logits`` and ``ens.generate(...)`` (greedy).
    """

    description = "SISA shard ensemble (averaged next-token probabilities)"
    paper = SISA_PAPER

    def __init__(
        self,
        base: Any,
        tokenizer: Any,
        items: dict[int, tuple[str, str]],
        assignment: list[list[list[int]]],
        settings: dict[str, Any],
    ) -> None:
        self.tokenizer = tokenizer
        self.items = dict(items)
        self.assignment = [[list(sl) for sl in shard] for shard in assignment]
        self.settings = dict(settings)
        # folders saved before TrainConfig lost its never-read "optimizer"/"log_every" still load
        train = {
            k: v for k, v in self.settings["train"].items() if k not in ("optimizer", "log_every")
        }
        self.cfg = from_dict(TrainConfig, train, "sisa train")
        self.template = PromptTemplate(**self.settings["template"])
        self.removed = int(self.settings.get("removed", 0))
        self.n_shards = len(self.assignment)
        self.n_slices = len(self.assignment[0])
        self.peft_cfg: Any = self.settings.get("peft")  # LoRA settings, or None: full models
        self.training = False
        self._encoded: dict[int, Encoded] = {}
        base = _unwrap(base)
        base.eval()
        if self.peft_cfg:
            self._build_adapters(base)
        else:
            for p in base.parameters():
                p.requires_grad_(True)
            self.models = [base] + [copy.deepcopy(base) for _ in range(self.n_shards - 1)]
        # checkpoints[s][r]: trainable state after stage r (r = 0: the starting state)
        # (full models all start from the same base state: stored once)
        shared = None if self.peft_cfg else self._get_state(0)
        self.checkpoints: list[list[dict[str, Any] | None]] = [
            [shared if shared is not None else self._get_state(s)] + [None] * self.n_slices
            for s in range(self.n_shards)
        ]

    # ------------------------------------------------------------------ constituents

    def _adapter(self, s: int) -> str:
        return f"shard{s}"

    def _build_adapters(self, base: Any) -> None:
        import torch

        from obliviate.models.selection import apply_peft

        cfg = {k: v for k, v in self.peft_cfg.items() if k != "merge"}
        if str(cfg.get("type", "lora")).lower() != "lora":
            raise ValueError("SISA shard adapters must be LoRA adapters (peft.type=lora)")
        seed = self.cfg.seed
        torch.manual_seed(stage_seed(seed, 0, 0))  # each shard's adapter init is seeded
        model = apply_peft(base, cfg, adapter_name=self._adapter(0))
        lora_cfg = model.peft_config[self._adapter(0)]
        for s in range(1, self.n_shards):
            torch.manual_seed(stage_seed(seed, s, 0))
            model.add_adapter(self._adapter(s), copy.deepcopy(lora_cfg))
        self.peft_model: Any = model

    def shard_model(self, s: int) -> Any:
        """The constituent of shard ``s`` (for adapters: the shared model with its adapter on)."""
        if self.peft_cfg:
            self.peft_model.set_adapter(self._adapter(s))
            return self.peft_model
        return self.models[s]

    def _trainable(self, s: int) -> list[tuple[str, Any]]:
        if self.peft_cfg:
            tag = f".{self._adapter(s)}."
            return [(n, p) for n, p in self.peft_model.named_parameters() if tag in n]
        return list(self.models[s].named_parameters())

    def _get_state(self, s: int) -> dict[str, Any]:
        return {n: p.detach().cpu().clone() for n, p in self._trainable(s)}

    def _set_state(self, s: int, state: dict[str, Any]) -> None:
        import torch

        params = dict(self._trainable(s))
        if set(params) != set(state):
            raise ValueError(f"checkpoint of shard {s} does not match its model's parameters")
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(state[n].to(p.device, p.dtype))

    def parameters(self) -> Any:
        if self.peft_cfg:
            yield from self.peft_model.parameters()
        else:
            for m in self.models:
                yield from m.parameters()

    def trainable_params_per_shard(self) -> int:
        return sum(p.numel() for _, p in self._trainable(0))

    def eval(self) -> SISAEnsemble:
        return self.train(False)

    def train(self, mode: bool = True) -> SISAEnsemble:
        """Set train/eval mode of every constituent (``torch.nn.Module.train`` semantics)."""
        for m in [self.peft_model] if self.peft_cfg else self.models:
            m.train(mode)
        self.training = mode
        return self

    def to(self, device: Any) -> SISAEnsemble:
        for m in [self.peft_model] if self.peft_cfg else self.models:
            m.to(device)
        return self

    # ------------------------------------------------------------------ training

    def _encode(self, ids: Sequence[int]) -> list[Encoded]:
        for i in ids:
            if i not in self._encoded:
                q, a = self.items[i]
                self._encoded[i] = encode(self.tokenizer, q, a, self.template, self.cfg.max_length)
        return [self._encoded[i] for i in ids]

    def _stage_cfg(self, s: int, r: int) -> TrainConfig:
        return replace(
            self.cfg,
            epochs=stage_epochs(self.cfg.epochs, self.n_slices),
            seed=stage_seed(self.cfg.seed, s, r),
        )

    def _run_shard(
        self,
        s: int,
        start: int,
        accelerator: Any,
        log: list[dict[str, float]],
        checkpoint_dir: Path | None = None,
    ) -> int:
        """Re-run stages ``start..R`` of shard ``s`` from checkpoint ``start - 1``; with
        ``checkpoint_dir`` each stage keeps its training checkpoints in
        ``<checkpoint_dir>/shard<s>-stage<r>`` so an interrupted run resumes there."""
        from obliviate.methods import functional as F
        from obliviate.training import train_loop

        def nll(m: Any, batch: dict, _rb: Any, _step: int) -> tuple[Any, dict[str, float]]:
            logits = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            return F.nll_loss(logits, batch["labels"]), {}

        previous = self.checkpoints[s][start - 1]
        assert previous is not None
        self._set_state(s, previous)
        steps = 0
        for r in range(start, self.n_slices + 1):
            ids = [i for sl in self.assignment[s][:r] for i in sl]
            if ids:
                model = self.shard_model(s)
                res = train_loop(
                    model,
                    nll,
                    self._encode(ids),
                    self._stage_cfg(s, r),
                    pad_id_of(self.tokenizer),
                    accelerator=accelerator,
                    desc=f"sisa shard {s} stage {r}",
                    progress=False,
                    checkpoint_dir=checkpoint_dir / f"shard{s}-stage{r}"
                    if checkpoint_dir
                    else None,
                    keep_checkpoint=True,
                )
                steps += res.steps
                for row in res.log:
                    log.append({**row, "shard": s, "stage": r})
                self.checkpoints[s][r] = self._get_state(s)
            else:  # nothing to train on yet: the state carries over
                self.checkpoints[s][r] = self.checkpoints[s][r - 1]
        self.eval()
        return steps

    @classmethod
    def fit(
        cls,
        model: Any,
        tokenizer: Any,
        items: Sequence[QAItem | tuple[str, str]],
        train: TrainConfig,
        shards: int = 4,
        slices: int = 4,
        init: str = "scratch",
        peft: dict[str, Any] | None = None,
        template: PromptTemplate | None = None,
        assignment: list[list[list[int]]] | None = None,
        base_path: str | None = None,
        accelerator: Any = None,
        checkpoint_dir: Path | None = None,
    ) -> tuple[SISAEnsemble, dict[str, Any]]:
        """Train an ensemble on ``items`` (the whole training set D). Returns
        ``(ensemble, info)`` with ``info["steps"]`` the optimiser steps taken.

        ``model`` gives the architecture (``init="scratch"``: a fresh random initialisation,
        seed ``train.seed``) or the starting weights (``init="model"``). ``assignment``
        (``[shard][slice] -> item indices``) overrides the random one, e.g. to train the
        from-scratch reference for a deletion. ``base_path``: the folder ``model`` was
        loaded from, recorded instead of saving a copy of the base (``init="model"`` only).
        """
        import torch

        if init not in ("scratch", "model"):
            raise ValueError(f"sisa init must be 'scratch' or 'model', got {init!r}")
        if peft and init != "model":
            raise ValueError("SISA with adapters needs init='model' (a pre-trained base to adapt)")
        pairs = [
            (it.question, it.answer)
            if isinstance(it, QAItem)
            else cast("tuple[str, str]", tuple(it))
            for it in items
        ]
        if not pairs:
            raise DataError(
                "SISA needs a training set: the request has no full/forget/retain items"
            )
        if assignment is None:
            assignment = assign_shards(len(pairs), shards, slices, train.seed)
        _check_assignment(assignment, len(pairs))
        base = _unwrap(model)
        if init == "scratch":
            torch.manual_seed(train.seed)
            base = type(base)(copy.deepcopy(base.config))
            base_path = None
        else:
            base = copy.deepcopy(base)  # never change the caller's model
        tmpl = template or PromptTemplate()
        settings = {
            "shards": len(assignment),
            "slices": len(assignment[0]),
            "init": init,
            "peft": dict(peft) if peft else None,
            "train": to_dict(train),
            "template": {
                "name": tmpl.name,
                "system_prompt": tmpl.system_prompt,
                "date_string": tmpl.date_string,
            },
            "base_path": str(Path(base_path).resolve()) if base_path else None,
            "removed": 0,
        }
        ens = cls(base, tokenizer, dict(enumerate(pairs)), assignment, settings)
        log: list[dict[str, float]] = []
        steps = sum(
            ens._run_shard(s, 1, accelerator, log, checkpoint_dir) for s in range(ens.n_shards)
        )
        return ens, {"steps": steps, "log": log}

    # ------------------------------------------------------------------ deletion

    def forget(
        self,
        items: Sequence[QAItem | tuple[str, str]],
        accelerator: Any = None,
        checkpoint_dir: Path | None = None,
    ) -> ForgetReport:
        """Delete ``items`` (matched by exact question and answer; every copy in D is removed)
        and retrain only the affected shards from their last checkpoint before the earliest
        affected slice. Raises :class:`DataError` for an item that is not in the training set."""
        by_pair: dict[tuple[str, str], list[int]] = {}
        for i, pair in self.items.items():
            by_pair.setdefault(pair, []).append(i)
        drop: set[int] = set()
        for row, it in enumerate(items, start=1):
            pair = (
                (it.question, it.answer)
                if isinstance(it, QAItem)
                else cast("tuple[str, str]", tuple(it))
            )
            if pair not in by_pair:
                raise DataError(
                    f"forget item {row} (question {pair[0][:60]!r}) is not in this SISA "
                    "ensemble's training data: SISA can only delete items it was trained on "
                    "(question and answer must match exactly)"
                )
            drop.update(by_pair[pair])
        first: dict[int, int] = {}
        for s, shard in enumerate(self.assignment):
            for r, sl in enumerate(shard, start=1):
                if drop.intersection(sl):
                    first.setdefault(s, r)
                    shard[r - 1] = [i for i in sl if i not in drop]
        for i in drop:
            self.items.pop(i)
            self._encoded.pop(i, None)
        self.removed += len(drop)
        self.settings["removed"] = self.removed
        log: list[dict[str, float]] = []
        steps = sum(
            self._run_shard(s, r, accelerator, log, checkpoint_dir)
            for s, r in sorted(first.items())
        )
        full = sum(
            planned_steps(sum(len(sl) for sl in shard[:r]), self._stage_cfg(s, r))
            for s, shard in enumerate(self.assignment)
            for r in range(1, self.n_slices + 1)
        )
        return ForgetReport(
            len(drop),
            sorted(first),
            first,
            steps,
            full,
            planned_steps(len(self.items), self.cfg),
            log,
        )

    # ------------------------------------------------------------------ inference

    def _shard_logprobs(self, s: int, **kwargs: Any) -> tuple[Any, Any]:
        import torch

        out = self.shard_model(s)(**kwargs)
        return torch.log_softmax(out.logits.float(), dim=-1), out

    def __call__(
        self, input_ids: Any, attention_mask: Any = None, position_ids: Any = None, **_ignored: Any
    ) -> _Output:
        """``.logits`` = log of the shards' averaged next-token probabilities, ``(B, T, V)``."""
        import torch

        total: Any = None
        with torch.no_grad():
            for s in range(self.n_shards):
                lp, _ = self._shard_logprobs(
                    s, input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids
                )
                total = lp if total is None else torch.logaddexp(total, lp)
        return _Output(total - math.log(self.n_shards))

    def generate(
        self,
        input_ids: Any,
        attention_mask: Any = None,
        max_new_tokens: int = 20,
        do_sample: bool = False,
        use_cache: bool = True,
        pad_token_id: int | None = None,
        eos_token_id: int | None = None,
        **_ignored: Any,
    ) -> Any:
        """Greedy decoding from the averaged distribution (the loop of
        :func:`obliviate.decoding.greedy_generate`); left-padded batches; one KV cache per shard
        (``use_cache=False`` recomputes the whole prefix each step: same result). Returns
        prompt + new ids; sequences that emitted EOS are continued with ``pad_token_id``."""
        import torch

        from obliviate.decoding import greedy_generate

        if do_sample:
            raise ValueError(
                "SISAEnsemble.generate supports greedy decoding only (do_sample=False)"
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)

        def step(ids: Any, mask: Any, pos: Any, past: Any) -> tuple[Any, Any]:
            # past: one (keyword, cache) per shard, or the whole (ids, positions) so far
            if not use_cache and past is not None:
                ids, pos = torch.cat([past[0], ids], dim=1), torch.cat([past[1], pos], dim=1)
            caches = past if use_cache and past is not None else [None] * self.n_shards
            total, new_caches = None, []
            for s in range(self.n_shards):
                kw: dict[str, Any] = {
                    "input_ids": ids,
                    "attention_mask": mask,
                    "position_ids": pos,
                    "use_cache": use_cache,
                }
                cache = caches[s]
                if use_cache and cache is not None:
                    kw[cache[0]] = cache[1]
                lp, out = self._shard_logprobs(s, **kw)
                if use_cache:
                    new_caches.append(_returned_cache(out))
                lp = lp[:, -1]
                total = lp if total is None else torch.logaddexp(total, lp)
            return total, (new_caches if use_cache else (ids, pos))

        return greedy_generate(
            step, input_ids, attention_mask, max_new_tokens, pad_token_id, eos_token_id
        )

    # ------------------------------------------------------------------ identity, save, load

    def fingerprint(self) -> str:
        """Content hash of the settings, the assignment and every shard's final weights."""
        from obliviate.methods.sisa_storage import ensemble_fingerprint

        return ensemble_fingerprint(self)

    def save_pretrained(self, path: str | Path, **_ignored: Any) -> None:
        """Write the ensemble folder (module docstring). Checkpoints that contained a deleted
        item were replaced by :meth:`forget`, so no saved file holds forgotten data."""
        from obliviate.methods.sisa_storage import save_ensemble

        save_ensemble(self, path)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, spec: dict[str, Any] | None = None, device: str | None = None
    ) -> SISAEnsemble:
        """Load a folder written by :meth:`save_pretrained` (safetensors only). ``spec`` is the
        already-read wrapper file (as :func:`obliviate.inference.load_wrapper` passes it)."""
        from obliviate.methods.sisa_storage import load_ensemble

        return load_ensemble(cls, path, spec, device)


def _returned_cache(out: Any) -> tuple[str, Any]:
    """The KV cache a forward returned, with the keyword that passes it back (transformers 5
    calls it ``cache``, 4.x ``past_key_values``)."""
    for name in ("cache", "past_key_values"):
        value = getattr(out, name, None)
        if value is not None:
            return name, value
    raise ValueError("the shard model returned no KV cache; call generate(use_cache=False)")


def _check_assignment(assignment: list[list[list[int]]], n_items: int) -> None:
    if not assignment or not assignment[0]:
        raise ValueError("SISA assignment must have at least one shard and one slice")
    if len({len(shard) for shard in assignment}) != 1:
        raise ValueError("every SISA shard must have the same number of slices")
    seen = [i for shard in assignment for sl in shard for i in sl]
    if len(seen) != len(set(seen)) or any(not 0 <= i < n_items for i in seen):
        raise ValueError(f"SISA assignment must use each item index in [0, {n_items}) at most once")
