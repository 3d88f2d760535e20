"""Neuron-level localisation (docs/methods.md, "Neuron-level localisation"): ``depn`` and
``selective_pruning`` find the MLP neurons that carry the forget data and switch them off.

A neuron is one input coordinate of a decoder block's MLP output projection (``down_proj`` of
Llama-like models, ``c_proj`` of GPT-2, ``dense_4h_to_h`` of GPT-NeoX; the mapping is
:mod:`obliviate.editing.arch`). Switching it off zeroes its column of the projection's weight,
which equals setting its activation to zero at every position; the result is an ordinary model
(saved and evaluated like any fine-tuned one). Neither method trains: of the ``train`` settings
only ``batch_size`` and ``max_length`` are used. The maths is in
:mod:`obliviate.methods.neuron_scores`.

- ``depn`` (Wu+ 2023, arXiv 2310.20138): integrated-gradient attribution of every neuron to the
  forget answers' probability (§3.2), per item; the privacy neuron aggregator (§3.3) keeps the
  ``neurons`` neurons detected for the most items; the privacy editor zeroes them (§3.4).
- ``selective_pruning`` (Pochinkov & Schoots 2024, arXiv 2403.01267): score each neuron by
  the ratio of its importance on the forget data to its importance on the retain data (§3) and
  prune the top ``fraction``, ``steps`` times, re-measuring after each pruning step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from obliviate.config import TrainConfig
from obliviate.data.collate import pad_id_of
from obliviate.methods.base import MethodPreset, UnlearnJob, UnlearnOutput

DEPN_PAPER = "Wu+ EMNLP 2023 (DEPN), arXiv 2310.20138"
SP_PAPER = "Pochinkov & Schoots 2024 (selective pruning), arXiv 2403.01267"
OBJECTIVES = ("prob", "logprob")


@dataclass
class MLPNeurons:
    """The MLP output projections of a model, one per layer, and the number of neurons of each;
    ``conv1d``: the weights are stored as (d_in, d_out) (GPT-2)."""

    downs: list[Any]
    conv1d: bool = False

    @classmethod
    def of(cls, model: Any) -> MLPNeurons:
        from obliviate.editing.arch import EditableModel

        arch = EditableModel(model)
        return cls([arch.down(i) for i in range(arch.n_layers)], arch.spec.conv1d)

    def weight(self, layer: int) -> Any:
        """The projection's weight as (d_out, d_in), a view of the parameter."""
        w = self.downs[layer].weight
        return w.T if self.conv1d else w

    @property
    def sizes(self) -> list[int]:
        return [int(self.weight(i).shape[1]) for i in range(len(self.downs))]

    def locate(self, index: int) -> tuple[int, int]:
        """(layer, neuron in the layer) of a global neuron index."""
        for layer, size in enumerate(self.sizes):
            if index < size:
                return layer, index
            index -= size
        raise ValueError(f"neuron index out of range ({sum(self.sizes)} neurons)")

    def zero(self, indices: Sequence[int]) -> None:
        """Zero the weight columns of the given global neuron indices (in place)."""
        import torch

        with torch.no_grad():
            for index in indices:
                layer, j = self.locate(int(index))
                self.weight(layer)[:, j] = 0


@contextlib.contextmanager
def _scaled(down: Any, scale: Any) -> Iterator[None]:
    """Multiply the input of ``down`` (B, T, d) by ``scale`` (B, d) during the block."""

    def hook(_module: Any, args: tuple) -> tuple:
        x = args[0]
        return (x * scale[:, None, :].to(x.dtype), *args[1:])

    handle = down.register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def _inference(model: Any) -> Iterator[None]:
    """Evaluation mode with the parameters' gradients off; both restored afterwards."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    was_training = bool(getattr(model, "training", False))
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def depn_attributions(
    model: Any, neurons: MLPNeurons, batches: Sequence[dict], steps: int, objective: str
) -> Any:
    """Per-item attributions ``(n_items, n_neurons)`` of every neuron to F, the probability of
    the item's answer (``prob``: P(Y|X) = Π_t p(y_t | X, y_<t), DEPN's target) or its
    log-probability (``logprob``). Layer by layer, the layer's neurons are scaled together by
    α along the integration path while the other layers are untouched (knowledge neurons,
    Dai+ 2022, arXiv 2104.08696); :func:`~obliviate.methods.neuron_scores.riemann_integrated_gradients`
    sums the gradients. ``batches`` hold ``input_ids``, ``attention_mask`` and ``labels``."""
    import torch

    from obliviate.methods import functional as F
    from obliviate.methods.neuron_scores import riemann_integrated_gradients

    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    rows = []
    with _inference(model):
        for batch in batches:
            per_layer = []
            for layer, size in enumerate(neurons.sizes):
                down = neurons.downs[layer]

                def grad_at(s: Any, down: Any = down, batch: dict = batch) -> Any:
                    s = s.clone().requires_grad_(True)
                    with torch.enable_grad(), _scaled(down, s):
                        out = model(
                            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                        )
                        logp, mask = F.token_logprobs(out.logits, batch["labels"])
                        value = F.sequence_logprob(logp, mask)
                        if objective == "prob":
                            value = value.exp()
                        (grad,) = torch.autograd.grad(value.sum(), s)
                    return grad

                shape = (batch["input_ids"].shape[0], size)
                per_layer.append(riemann_integrated_gradients(grad_at, shape, steps))
            rows.append(torch.cat(per_layer, dim=1))
    if not rows:
        raise ValueError("DEPN needs forget items to attribute: the forget set is empty")
    return torch.cat(rows)


def activation_stats(model: Any, neurons: MLPNeurons, batches: Sequence[dict]) -> list[Any]:
    """One :class:`~obliviate.methods.neuron_scores.ActivationStats` per layer: the neurons'
    activations (the inputs of the output projections) at every non-padding token."""
    import torch

    from obliviate.methods.neuron_scores import ActivationStats

    stats = [ActivationStats() for _ in neurons.downs]
    handles = []
    current: dict[str, Any] = {}

    def make_hook(layer: int) -> Any:
        def hook(_module: Any, args: tuple) -> None:
            stats[layer].add(args[0], current["mask"])

        return hook

    for layer, down in enumerate(neurons.downs):
        handles.append(down.register_forward_pre_hook(make_hook(layer)))
    try:
        with _inference(model), torch.no_grad():
            for batch in batches:
                current["mask"] = batch["attention_mask"]
                model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    finally:
        for h in handles:
            h.remove()
    return stats


def _batches(job: UnlearnJob, items: list[Any], cfg: TrainConfig) -> list[dict]:
    from obliviate.data.collate import pad_batch

    enc = job.encode_items(items, cfg.max_length)
    pad = pad_id_of(job.tokenizer)
    device = next(job.model.parameters()).device
    out = []
    for i in range(0, len(enc), cfg.batch_size):
        part = enc[i : i + cfg.batch_size]
        batch = pad_batch([e.input_ids for e in part], pad, [e.labels for e in part])
        out.append({k: v.to(device) for k, v in batch.items()})
    return out


def _where(neurons: MLPNeurons, indices: Sequence[int]) -> dict[str, list[int]]:
    """``{"layer": [neuron, ...]}`` for the method's info."""
    out: dict[str, list[int]] = {}
    for index in indices:
        layer, j = neurons.locate(int(index))
        out.setdefault(str(layer), []).append(j)
    return {k: sorted(v) for k, v in sorted(out.items(), key=lambda kv: int(kv[0]))}


class DEPN:
    """Builder object of ``depn`` (module docstring): attribute, aggregate, zero."""

    def __init__(
        self,
        train: TrainConfig,
        neurons: int = 20,
        threshold: float = 0.2,
        steps: int = 20,
        objective: str = "prob",
    ) -> None:
        if neurons < 1 or steps < 1:
            raise ValueError(f"depn needs neurons >= 1 and steps >= 1, got {neurons} and {steps}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"depn threshold must be in [0, 1], not {threshold}")
        if objective not in OBJECTIVES:
            raise ValueError(f"depn objective must be one of {', '.join(OBJECTIVES)}")
        self.train, self.neurons, self.threshold = train, int(neurons), float(threshold)
        self.steps, self.objective = int(steps), objective

    def unlearn(self, job: UnlearnJob) -> UnlearnOutput:
        from obliviate.methods.neuron_scores import privacy_neurons

        if not job.request.forget:
            raise ValueError("depn needs a forget set: give --forget")
        neurons = MLPNeurons.of(job.model)
        batches = _batches(job, job.request.forget, self.train)
        att = depn_attributions(job.model, neurons, batches, self.steps, self.objective)
        chosen = privacy_neurons(att, self.threshold, self.neurons)
        neurons.zero(chosen)
        d_out = int(neurons.weight(0).shape[0])
        info = {
            "neurons": len(chosen),
            "asked": self.neurons,
            "layers": _where(neurons, chosen),
            "attribution": [round(float(att[:, j].sum()), 6) for j in chosen],
        }
        return UnlearnOutput(job.model, [], len(chosen) * d_out, None, info)


class SelectivePruning:
    """Builder object of ``selective_pruning`` (module docstring)."""

    def __init__(
        self,
        train: TrainConfig,
        fraction: float = 0.02,
        steps: int = 1,
        importance: str = "abs",
        eps: float = 1e-5,
    ) -> None:
        from obliviate.methods.neuron_scores import IMPORTANCE

        if not 0.0 < fraction <= 1.0 or steps < 1:
            raise ValueError(
                f"selective_pruning needs 0 < fraction <= 1 and steps >= 1, got {fraction}, {steps}"
            )
        if importance not in IMPORTANCE:
            raise ValueError(
                f"selective_pruning importance must be one of {', '.join(IMPORTANCE)}, "
                f"not {importance!r}"
            )
        if eps <= 0:
            raise ValueError(f"selective_pruning eps must be > 0, got {eps}")
        self.train, self.fraction, self.steps = train, float(fraction), int(steps)
        self.importance, self.eps = importance, float(eps)

    def unlearn(self, job: UnlearnJob) -> UnlearnOutput:
        if not job.request.forget or not job.request.retain:
            raise ValueError(
                "selective_pruning compares the forget and the retain data: give both --forget "
                "and --retain"
            )
        neurons = MLPNeurons.of(job.model)
        forget = _batches(job, job.request.forget, self.train)
        retain = _batches(job, job.request.retain, self.train)
        pruned = prune_selectively(
            job.model, neurons, forget, retain, self.fraction, self.steps, self.importance, self.eps
        )
        d_out = int(neurons.weight(0).shape[0])
        info = {"neurons": len(pruned), "layers": _where(neurons, pruned)}
        return UnlearnOutput(job.model, [], len(pruned) * d_out, None, info)


def prune_selectively(
    model: Any,
    neurons: MLPNeurons,
    forget: Sequence[dict],
    retain: Sequence[dict],
    fraction: float,
    steps: int,
    kind: str = "abs",
    eps: float = 1e-5,
) -> list[int]:
    """Selective pruning, ``steps`` rounds: measure the importances on both datasets, score
    every neuron not yet pruned, zero the top ``fraction`` of all neurons. Returns the pruned
    global indices in the order they were pruned."""
    import torch

    from obliviate.methods.neuron_scores import importance, pruning_scores, top_fraction

    allowed = torch.ones(sum(neurons.sizes), dtype=torch.bool)
    pruned: list[int] = []
    for _ in range(steps):
        if not bool(allowed.any()):
            break
        f_stats = activation_stats(model, neurons, forget)
        r_stats = activation_stats(model, neurons, retain)
        f_imp = torch.cat([importance(s, kind) for s in f_stats])
        r_imp = torch.cat([importance(s, kind) for s in r_stats])
        chosen = top_fraction(pruning_scores(f_imp, r_imp, eps), fraction, allowed).tolist()
        neurons.zero(chosen)
        allowed[chosen] = False
        pruned.extend(int(j) for j in chosen)
    return pruned


def _build_depn(train: TrainConfig, **options: Any) -> DEPN:
    return DEPN(train, **options)


def _build_sp(train: TrainConfig, **options: Any) -> SelectivePruning:
    return SelectivePruning(train, **options)


NEURON_TRAIN = {"batch_size": 8}

DEPN_METHOD = MethodPreset(
    "depn",
    "DEPN: integrated-gradient attribution of MLP neurons to the forget answers, zero the top "
    "20 privacy neurons",
    DEPN_PAPER,
    builder=_build_depn,
    options={"neurons": 20, "threshold": 0.2, "steps": 20, "objective": "prob"},
    train=NEURON_TRAIN,
    kind="editing",
)

SELECTIVE_PRUNING = MethodPreset(
    "selective_pruning",
    "Selective pruning: zero the 2% of MLP neurons most important to forget relative to retain "
    "(mean |activation| ratio)",
    SP_PAPER,
    builder=_build_sp,
    options={"fraction": 0.02, "steps": 1, "importance": "abs", "eps": 1e-5},
    train=NEURON_TRAIN,
    kind="editing",
)
