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

import copy
import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from obliviate.config import TrainConfig, from_dict, replace, to_dict
from obliviate.data.collate import pad_id_of
from obliviate.data.templates import Encoded, PromptTemplate, encode
from obliviate.data.types import DataError, QAItem
from obliviate.methods.base import MethodPreset, UnlearnJob, UnlearnOutput, _unwrap, register_preset

SISA_PAPER = "Bourtoule+ IEEE S&P 2021 (SISA), arXiv 1912.03817"
FORMAT_VERSION = 1

# The tiny CPU default trains constituents from scratch (cpu-budget.md recipe, smaller batches
# because a shard holds 1/S of the data).
SISA_TINY_TRAIN = {"lr": 3e-3, "epochs": 15, "batch_size": 8, "warmup_epochs": 0.0,
                   "scheduler": "cosine", "weight_decay": 0.01}


# ----------------------------------------------------------------------------- pure helpers


def assign_shards(n_items: int, shards: int, slices: int, seed: int = 0) -> list[list[list[int]]]:
    """Random disjoint assignment of item ids ``0..n_items-1``: ``[shard][slice] -> ids``.

    A seeded permutation is cut into ``shards`` contiguous parts of near-equal size (sizes
    differ by at most 1), and each part into ``slices`` contiguous parts the same way.
    """
    if shards < 1 or slices < 1:
        raise ValueError(f"shards and slices must be >= 1, got {shards} and {slices}")
    if n_items < shards:
        raise ValueError(f"cannot split {n_items} items into {shards} shards")
    ids = list(range(n_items))
    random.Random(seed).shuffle(ids)
    return [[list(sl) for sl in _split(part, slices)] for part in _split(ids, shards)]


def _split(seq: Sequence[int], parts: int) -> list[list[int]]:
    q, r = divmod(len(seq), parts)
    out, start = [], 0
    for i in range(parts):
        size = q + (1 if i < r else 0)
        out.append(list(seq[start:start + size]))
        start += size
    return out


def stage_epochs(epochs: float, slices: int) -> float:
    """Epochs per slice stage, e' = 2e/(R+1) (Bourtoule+ 2021, §V): same total work as e
    epochs over the whole shard."""
    return 2.0 * float(epochs) / (slices + 1)


def planned_steps(n_items: int, cfg: TrainConfig) -> int:
    """Optimiser steps :func:`obliviate.training.train_loop` takes on ``n_items`` items in one
    process (0 for no items): ceil(epochs · ceil(ceil(n/batch)/accum)), or ``max_steps``."""
    if n_items <= 0:
        return 0
    per_epoch = max(1, math.ceil(math.ceil(n_items / cfg.batch_size) / cfg.grad_accum))
    return cfg.max_steps or max(1, int(math.ceil(cfg.epochs * per_epoch)))


def stage_seed(seed: int, shard: int, stage: int) -> int:
    return int(seed) * 1_000_003 + 1009 * (shard + 1) + stage


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

    def __init__(self, base: Any, tokenizer: Any, items: dict[int, tuple[str, str]],
                 assignment: list[list[list[int]]], settings: dict[str, Any]) -> None:
        self.tokenizer = tokenizer
        self.items = dict(items)
        self.assignment = [[list(sl) for sl in shard] for shard in assignment]
        self.settings = dict(settings)
        self.cfg = from_dict(TrainConfig, self.settings["train"], "sisa train")
        self.template = PromptTemplate(**self.settings["template"])
        self.removed = int(self.settings.get("removed", 0))
        self.n_shards = len(self.assignment)
        self.n_slices = len(self.assignment[0])
        self.peft_cfg = self.settings.get("peft")
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

    def eval(self) -> "SISAEnsemble":
        return self.train(False)

    def train(self, mode: bool = True) -> "SISAEnsemble":
        """Set train/eval mode of every constituent (``torch.nn.Module.train`` semantics)."""
        for m in ([self.peft_model] if self.peft_cfg else self.models):
            m.train(mode)
        self.training = mode
        return self

    def to(self, device: Any) -> "SISAEnsemble":
        for m in ([self.peft_model] if self.peft_cfg else self.models):
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
        return replace(self.cfg, epochs=stage_epochs(self.cfg.epochs, self.n_slices),
                       seed=stage_seed(self.cfg.seed, s, r))

    def _run_shard(self, s: int, start: int, accelerator: Any, log: list[dict[str, float]]) -> int:
        """Re-run stages ``start..R`` of shard ``s`` from checkpoint ``start - 1``."""
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
                res = train_loop(model, nll, self._encode(ids), self._stage_cfg(s, r),
                                 pad_id_of(self.tokenizer), accelerator=accelerator,
                                 desc=f"sisa shard {s} stage {r}", progress=False)
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
    ) -> tuple["SISAEnsemble", dict[str, Any]]:
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
        pairs = [(it.question, it.answer) if isinstance(it, QAItem) else tuple(it) for it in items]
        if not pairs:
            raise DataError("SISA needs a training set: the request has no full/forget/retain items")
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
            "shards": len(assignment), "slices": len(assignment[0]), "init": init,
            "peft": dict(peft) if peft else None, "train": to_dict(train),
            "template": {"name": tmpl.name, "system_prompt": tmpl.system_prompt,
                         "date_string": tmpl.date_string},
            "base_path": str(Path(base_path).resolve()) if base_path else None, "removed": 0,
        }
        ens = cls(base, tokenizer, dict(enumerate(pairs)), assignment, settings)
        log: list[dict[str, float]] = []
        steps = sum(ens._run_shard(s, 1, accelerator, log) for s in range(ens.n_shards))
        return ens, {"steps": steps, "log": log}

    # ------------------------------------------------------------------ deletion

    def forget(self, items: Sequence[QAItem | tuple[str, str]], accelerator: Any = None) -> ForgetReport:
        """Delete ``items`` (matched by exact question and answer; every copy in D is removed)
        and retrain only the affected shards from their last checkpoint before the earliest
        affected slice. Raises :class:`DataError` for an item that is not in the training set."""
        by_pair: dict[tuple[str, str], list[int]] = {}
        for i, pair in self.items.items():
            by_pair.setdefault(pair, []).append(i)
        drop: set[int] = set()
        for row, it in enumerate(items, start=1):
            pair = (it.question, it.answer) if isinstance(it, QAItem) else tuple(it)
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
        steps = sum(self._run_shard(s, r, accelerator, log) for s, r in sorted(first.items()))
        full = sum(
            planned_steps(sum(len(sl) for sl in shard[:r]), self._stage_cfg(s, r))
            for s, shard in enumerate(self.assignment) for r in range(1, self.n_slices + 1)
        )
        return ForgetReport(len(drop), sorted(first), first, steps, full,
                            planned_steps(len(self.items), self.cfg), log)

    # ------------------------------------------------------------------ inference

    def _shard_logprobs(self, s: int, **kwargs: Any) -> tuple[Any, Any]:
        import torch

        out = self.shard_model(s)(**kwargs)
        return torch.log_softmax(out.logits.float(), dim=-1), out

    def __call__(self, input_ids: Any, attention_mask: Any = None, position_ids: Any = None,
                 **_ignored: Any) -> _Output:
        """``.logits`` = log of the shards' averaged next-token probabilities, ``(B, T, V)``."""
        import torch

        total = None
        with torch.no_grad():
            for s in range(self.n_shards):
                lp, _ = self._shard_logprobs(s, input_ids=input_ids, attention_mask=attention_mask,
                                             position_ids=position_ids)
                total = lp if total is None else torch.logaddexp(total, lp)
        return _Output(total - math.log(self.n_shards))

    def generate(self, input_ids: Any, attention_mask: Any = None, max_new_tokens: int = 20,
                 do_sample: bool = False, use_cache: bool = True, pad_token_id: int | None = None,
                 eos_token_id: int | None = None, **_ignored: Any) -> Any:
        """Greedy decoding from the averaged distribution; left-padded batches; one KV cache
        per shard (``use_cache=False`` recomputes the whole prefix each step: same result).
        Returns prompt + new ids; sequences that emitted EOS are continued with ``pad_token_id``."""
        import torch

        if do_sample:
            raise ValueError("SISAEnsemble.generate supports greedy decoding only (do_sample=False)")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        pad = pad_token_id if pad_token_id is not None else (eos_token_id or 0)
        seq, mask = input_ids, attention_mask
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        caches: list[tuple[str, Any] | None] = [None] * self.n_shards
        step_ids, step_pos = seq, positions
        done = torch.zeros(seq.shape[0], dtype=torch.bool, device=seq.device)
        with torch.no_grad():
            for _ in range(max_new_tokens):
                total = None
                for s in range(self.n_shards):
                    kw: dict[str, Any] = {"attention_mask": mask, "use_cache": use_cache}
                    if use_cache:
                        kw.update(input_ids=step_ids, position_ids=step_pos)
                        if caches[s] is not None:
                            kw[caches[s][0]] = caches[s][1]
                    else:
                        kw.update(input_ids=seq, position_ids=positions)
                    lp, out = self._shard_logprobs(s, **kw)
                    if use_cache:
                        caches[s] = _returned_cache(out)
                    lp = lp[:, -1]
                    total = lp if total is None else torch.logaddexp(total, lp)
                nxt = total.argmax(-1)
                nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
                if eos_token_id is not None:
                    done = done | (nxt == eos_token_id)
                seq = torch.cat([seq, nxt[:, None]], dim=1)
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
                step_pos = positions[:, -1:] + 1
                positions = torch.cat([positions, step_pos], dim=1)
                step_ids = nxt[:, None]
                if bool(done.all()):
                    break
        return seq

    # ------------------------------------------------------------------ identity, save, load

    def fingerprint(self) -> str:
        """Content hash of the settings, the assignment and every shard's final weights."""
        import numpy as np

        h = hashlib.sha256()
        h.update(json.dumps({"settings": self.settings, "assignment": self.assignment},
                            sort_keys=True).encode())
        states = [self.checkpoints[s][self.n_slices] for s in range(self.n_shards)]
        if self.peft_cfg:  # the shared base matters too
            from obliviate.models.loading import model_fingerprint

            h.update(model_fingerprint(self.peft_model.get_base_model()).encode())
        for state in states:
            for name in sorted(state or {}):
                flat = state[name].reshape(-1)
                step = max(1, flat.numel() // 4096)
                h.update(name.encode())
                h.update(np.ascontiguousarray(flat[::step].float().numpy()).tobytes())
        return "sisa:sha256:" + h.hexdigest()[:16]

    def save_pretrained(self, path: str | Path, **_ignored: Any) -> None:
        """Write the ensemble folder (module docstring). Checkpoints that contained a deleted
        item were replaced by :meth:`forget`, so no saved file holds forgotten data."""
        from safetensors.torch import save as st_save

        from obliviate.io import atomic_write_bytes, write_json, write_jsonl
        from obliviate.models.loading import WRAPPER_FILE

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        settings = dict(self.settings)
        if not settings.get("base_path"):
            self._base_for_saving().save_pretrained(path / "base", safe_serialization=True)
            settings["base_path"] = None
        for s in range(self.n_shards):
            first = 0 if self.peft_cfg else 1  # full models start from the base itself
            for r in range(first, self.n_slices + 1):
                state = self.checkpoints[s][r]
                assert state is not None
                data = st_save({k: v.contiguous() for k, v in state.items()})
                atomic_write_bytes(path / "checkpoints" / f"shard{s}" / f"slice{r}.safetensors", data)
        write_jsonl(path / "data.jsonl",
                    [{"id": i, "question": q, "answer": a} for i, (q, a) in sorted(self.items.items())])
        self.tokenizer.save_pretrained(path)
        from obliviate.inference import WRAPPER_SCHEMA

        write_json(path / WRAPPER_FILE, {
            "wrapper": "sisa", "schema": WRAPPER_SCHEMA, "format_version": FORMAT_VERSION,
            "method": "sisa", "paper": SISA_PAPER, "settings": settings,
            "assignment": self.assignment, "fingerprint": self.fingerprint(),
        })

    def _base_for_saving(self) -> Any:
        if self.peft_cfg:
            return copy.deepcopy(self.peft_model).unload()
        base = copy.deepcopy(self.models[0])
        self_state = self.checkpoints[0][0]
        import torch

        with torch.no_grad():
            for n, p in base.named_parameters():
                p.copy_(self_state[n])
        return base

    @classmethod
    def from_pretrained(cls, path: str | Path, spec: dict[str, Any] | None = None,
                        device: str | None = None) -> "SISAEnsemble":
        """Load a folder written by :meth:`save_pretrained` (safetensors only). ``spec`` is the
        already-read wrapper file (as :func:`obliviate.inference.load_wrapper` passes it)."""
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM

        from obliviate.io import read_json, read_jsonl
        from obliviate.models.loading import WRAPPER_FILE, load_tokenizer

        path = Path(path)
        meta_path = path / WRAPPER_FILE
        meta = spec if spec is not None else read_json(meta_path)
        if meta.get("wrapper") != "sisa":
            raise ValueError(f"{meta_path} is not a SISA ensemble (wrapper={meta.get('wrapper')!r})")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{meta_path}: unsupported SISA format_version "
                             f"{meta.get('format_version')!r} (this obliviate reads {FORMAT_VERSION})")
        settings = meta["settings"]
        base_dir = settings.get("base_path") or str(path / "base")
        if not Path(base_dir, "config.json").exists():
            raise FileNotFoundError(f"{meta_path}: the base model folder {base_dir} is missing")
        base = AutoModelForCausalLM.from_pretrained(base_dir, use_safetensors=True)
        items: dict[int, tuple[str, str]] = {}
        for n, row in enumerate(read_jsonl(path / "data.jsonl"), start=1):
            try:
                items[int(row["id"])] = (str(row["question"]), str(row["answer"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{path / 'data.jsonl'}: row {n} needs id, question, answer") from exc
        ens = cls(base, load_tokenizer(str(path)), items, meta["assignment"], settings)
        for s in range(ens.n_shards):
            first = 0 if ens.peft_cfg else 1
            for r in range(first, ens.n_slices + 1):
                f = path / "checkpoints" / f"shard{s}" / f"slice{r}.safetensors"
                if not f.exists():
                    raise FileNotFoundError(f"SISA checkpoint missing: {f}")
                ens.checkpoints[s][r] = load_file(str(f))
            ens._set_state(s, ens.checkpoints[s][ens.n_slices])
        if device:
            ens.to(device)
        return ens.eval()


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


# ----------------------------------------------------------------------------- the method


class SISAMethod:
    """Builder object of the ``sisa`` method: forget ``job.request.forget`` from a SISA
    ensemble - the model being unlearned when it is one (a folder loaded by ``load_model``),
    the folder ``ensemble``, or a new ensemble trained here on the request's full training set
    (``request.full``, else forget + retain) from ``job.model``."""

    def __init__(self, train: TrainConfig, shards: int = 4, slices: int = 4, init: str = "scratch",
                 peft: dict[str, Any] | None = None, ensemble: str | None = None) -> None:
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
                job.model, job.tokenizer, data, self.train, self.shards, self.slices, self.init,
                self.peft, job.template, base_path=job.model_path if self.init == "model" else None,
                accelerator=job.accelerator,
            )
            info.update(initial_training_steps=trained["steps"],
                        initial_training_s=round(time.perf_counter() - t0, 3))
            # exact only when the constituents' starting point never saw the data
            info["exact"] = self.init == "scratch"
        report = ens.forget(job.request.forget, accelerator=job.accelerator)
        info.update(removed=report.removed, shards_retrained=report.shards_retrained,
                    first_stage={str(k): v for k, v in report.first_stage.items()},
                    steps=report.steps, full_retrain_steps=report.full_retrain_steps,
                    single_model_steps=report.single_model_steps)
        if job.run_dir is not None:
            from obliviate.io import write_json, write_jsonl

            write_jsonl(job.run_dir / "train_log.jsonl", report.log)
            write_json(job.run_dir / "sisa_cost.json", info)
        job.model = ens
        n_train = ens.trainable_params_per_shard() * ens.n_shards
        return UnlearnOutput(ens, report.log, n_train, None, info)


def _build(train: TrainConfig, **options: Any) -> SISAMethod:
    return SISAMethod(train, **options)


def _register_wrapper() -> None:
    """Make saved ensembles loadable by ``obliviate.models.loading.load_model`` (through
    :func:`obliviate.inference.load_wrapper`, keyed by the file's ``"wrapper": "sisa"``)."""
    from obliviate.inference import WRAPPERS

    if "sisa" not in WRAPPERS._entries:  # noqa: SLF001 (no populate: avoids an import cycle)
        WRAPPERS.register("sisa", SISAEnsemble, description="SISA shard ensemble (averaged "
                          "next-token probabilities)", paper=SISA_PAPER)


_register_wrapper()


register_preset(MethodPreset(
    "sisa",
    "SISA exact unlearning: shard/slice-checkpointed constituents, retrain only affected shards",
    SISA_PAPER, builder=_build,
    options={"shards": 4, "slices": 4, "init": "scratch", "peft": None, "ensemble": None},
    train=SISA_TINY_TRAIN, kind="exact",
))
