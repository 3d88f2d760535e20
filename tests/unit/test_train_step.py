"""The optimiser step of composed methods: forget and retain in one forward pass, fused AdamW,
one read from the device per optimiser step; the result is the straightforward computation's
(separate forward passes, the loss formulas written out, the plain AdamW loop) up to float
rounding (docs/methods.md, "Training speed")."""

from __future__ import annotations

import copy
import os
import sys

import pytest
import torch
import torch.nn.functional as tf

from obliviate.config import TrainConfig
from obliviate.data.templates import PromptTemplate, encode
from obliviate.methods.base import UnlearnJob, build_method, joint_logits
from obliviate.models.tiny import build_tiny_llama, train_tokenizer
from obliviate.optimizer import make_adamw
from obliviate.training import TrainingDiverged, train_loop

QA = [(f"Who is person {i}?", f"Person {i} is a {w} from town {i % 3}.") for i, w in enumerate(
    ["baker", "sailor", "potter", "judge", "pilot", "weaver", "chemist", "tailor", "smith"]
)]  # fmt: skip


@pytest.fixture(scope="module")
def small():
    tok = train_tokenizer([q + " " + a for q, a in QA], vocab_size=300)
    enc = [encode(tok, q, a, PromptTemplate()) for q, a in QA]
    return tok, enc


def _token_logp(logits, labels):
    """(B, T-1) log-probabilities of the label tokens and the answer mask, written out."""
    logp = torch.log_softmax(logits[:, :-1].double(), -1)
    target = labels[:, 1:]
    mask = target != -100
    picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return picked * mask, mask


def _nll(logits, labels):  # token mean over the batch
    lp, mask = _token_logp(logits, labels)
    return -lp.sum() / mask.sum()


def _by_hand(method, model, micro, ref_logp, cfg, alpha):
    """One optimiser step the straightforward way: a forward pass per batch, the loss from its
    formula (``alpha``: the retain term's weight), the plain AdamW loop. Returns the gradient it
    stepped with."""
    for fb, rb in micro:
        zf = model(input_ids=fb["input_ids"], attention_mask=fb["attention_mask"]).logits
        zr = model(input_ids=rb["input_ids"], attention_mask=rb["attention_mask"]).logits
        if method == "graddiff":  # -NLL(D_f) + alpha NLL(D_r)
            lf = -_nll(zf, fb["labels"])
        else:  # NPO: -(2/beta) mean log sigmoid(-beta (log pi - log pi_ref)) + alpha NLL(D_r)
            lp, _ = _token_logp(zf, fb["labels"])
            ratio = lp.sum(-1) - ref_logp[fb["index"]]
            lf = -(2 / 0.1) * tf.logsigmoid(-0.1 * ratio).mean()
        ((lf + alpha * _nll(zr, rb["labels"])) / cfg.grad_accum).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    torch.nn.utils.clip_grad_norm_(list(model.parameters()), cfg.max_grad_norm)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    opt.step()
    return grads


class _Grads:
    """Step hook keeping the accumulated gradient the trainer steps with."""

    def __init__(self) -> None:
        self.grads: dict[str, torch.Tensor] = {}

    def after_backward(self, model) -> None:
        self.grads = {n: p.grad.clone() for n, p in model.named_parameters()}

    def after_step(self, model) -> None:
        pass


@pytest.mark.parametrize("mode", ["one_forward", "pack"])
@pytest.mark.parametrize("method", ["npo", "graddiff"])
def test_one_step_equals_separate_forward_passes(tiny_models, method, mode) -> None:
    from obliviate import api
    from obliviate.models.loading import load_model, load_tokenizer

    tok, model = load_tokenizer(tiny_models["target"]), load_model(tiny_models["target"])
    request = api.load_request("builtin", "forget10", builtin=tiny_models["builtin"])
    train = {"batch_size": 4, "grad_accum": 2, "max_steps": 1, "lr": 1e-4, "warmup_epochs": 0}
    # the joint pass (stacked, or packed rows with the LM head at answer positions only),
    # checked against separate padded passes by hand
    train[mode] = True
    m = build_method(method, {"train": {**train, "scheduler": "constant", "checkpoint": False}})
    cfg = m.train
    job = UnlearnJob(model, tok, request, progress=False)
    forget = job.encode_items(request.forget, cfg.max_length)
    retain = job.encode_items(request.retain, cfg.max_length)
    start = copy.deepcopy(model)
    m.forget.setup(job, forget, cfg)
    micro, calls, hook = [], [], _Grads()
    model.get_decoder().register_forward_pre_hook(lambda *a: calls.append(1))

    def loss_fn(net, fb, rb, step):
        micro.append(({k: v.clone() for k, v in fb.items()}, rb))
        return m.loss(net, fb, rb, job)

    train_loop(model, loss_fn, forget, cfg, tok.pad_token_id, retain, hooks=[hook], progress=False)
    assert len(micro) == cfg.grad_accum
    # one pass per micro-batch (+1: collapse check; packing: +3, its check of the first packed
    # pass against the two padded ones)
    assert len(calls) == cfg.grad_accum + (4 if mode == "pack" else 1)
    with torch.no_grad():
        ref_logp = torch.stack([_token_logp(
            start(input_ids=torch.tensor([e.input_ids])).logits, torch.tensor([e.labels])
        )[0].sum() for e in forget])  # fmt: skip
    before = {n: p.detach().clone() for n, p in start.named_parameters()}
    start.train()
    assert m.alpha == {"graddiff": 8.8, "npo": 1.0}[method]  # the presets' retain weights
    want_grads = _by_hand(method, start, micro, ref_logp, cfg, m.alpha)
    n_clear = n_all = 0
    for (name, got), want in zip(model.named_parameters(), start.parameters()):
        g = want_grads[name]
        torch.testing.assert_close(hook.grads[name], g, atol=1e-6, rtol=1e-5, msg=name)
        # AdamW's first step is ~lr * sign(g): where |g| is at float-noise level the sign is
        # noise, so weights are compared where the gradient is clearly non-zero (most entries)
        clear = g.abs() > 1e-5
        n_clear, n_all = n_clear + int(clear.sum()), n_all + g.numel()
        torch.testing.assert_close(got[clear], want[clear], atol=1e-6, rtol=0, msg=name)
        assert (want - before[name])[clear].abs().max() > 0.5 * cfg.lr  # the step moved it
    assert n_clear > 0.75 * n_all  # NPO ~0.97, GradDiff ~0.8 of the entries


def test_joint_logits_equal_those_of_separate_passes(small) -> None:
    from obliviate.data.collate import pad_batch

    tok, enc = small
    model = build_tiny_llama(tok, "xs").eval()
    fb = pad_batch([e.input_ids for e in enc[:3]], tok.pad_token_id)
    rb = pad_batch([e.input_ids + e.input_ids[1:4] for e in enc[3:7]], tok.pad_token_id)
    with torch.no_grad():
        zf, zr = joint_logits(model, fb, rb, tok.pad_token_id)
        for z, b in ((zf, fb), (zr, rb)):
            alone = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
            assert z.shape == alone.shape
            keep = b["attention_mask"].bool()
            torch.testing.assert_close(z[keep], alone[keep], atol=1e-5, rtol=1e-5)


def test_a_term_that_runs_the_model_itself_is_not_fused(small) -> None:
    from obliviate.methods.gradient import GradientAscentTerm

    class Doubled(GradientAscentTerm):  # a plugin replacing __call__ of a built-in term
        def __call__(self, model, batch, job):
            return 2 * super().__call__(model, batch, job)

    assert GradientAscentTerm().shares_forward() and not Doubled().shares_forward()
    tok, enc = small
    model = build_tiny_llama(tok, "xs").eval()
    m = build_method("graddiff")
    job = UnlearnJob(model, tok, None, progress=False)  # type: ignore[arg-type]
    from obliviate.data.collate import pad_batch

    fb = pad_batch([e.input_ids for e in enc[:3]], tok.pad_token_id, [e.labels for e in enc[:3]])
    rb = pad_batch([e.input_ids for e in enc[3:6]], tok.pad_token_id, [e.labels for e in enc[3:6]])
    with torch.no_grad():
        plain, _ = m.loss(model, fb, rb, job)
        m.forget = Doubled()
        doubled, logs = m.loss(model, fb, rb, job)
    retain = m.alpha * logs["retain_loss"]  # the weighted retain term, the same in both
    torch.testing.assert_close(doubled - retain, 2 * (plain - retain))


def _count_reads(monkeypatch) -> list[str]:
    """Record every read of a tensor value into Python (a host synchronisation on a GPU) made
    by obliviate's own code (the model's internals are not the trainer's to change)."""
    seen: list[str] = []
    for name in ("__bool__", "__float__", "__int__", "item", "tolist"):
        real = getattr(torch.Tensor, name)

        def wrapped(self, *a, _real=real, _name=name, **k):
            caller = sys._getframe(1).f_code.co_filename
            if f"{os.sep}obliviate{os.sep}" in caller:
                seen.append(f"{_name} in {caller}")
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, wrapped)
    return seen


def test_the_loop_reads_the_device_once_per_optimiser_step(small, monkeypatch) -> None:
    tok, enc = small

    def loss_fn(m, b, rb, step):
        z = m(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        loss = z.float().pow(2).mean()
        return loss, {"part": loss.detach() / 2}

    reads = {}
    for accum in (1, 3):
        model = build_tiny_llama(tok, "xs")
        cfg = TrainConfig(lr=1e-4, batch_size=1, grad_accum=accum, max_steps=3, allow_collapse=True)
        seen = _count_reads(monkeypatch)
        res = train_loop(model, loss_fn, enc, cfg, tok.pad_token_id, progress=False)
        monkeypatch.undo()
        assert res.steps == 3 and res.log[-1]["part"] == pytest.approx(res.log[-1]["loss"] / 2)
        reads[accum] = len(seen)
    assert reads[3] == reads[1], f"device reads grow with the micro-batches: {reads}"


def test_a_nan_loss_in_a_later_micro_batch_stops_before_the_step(small) -> None:
    tok, enc = small
    model = build_tiny_llama(tok, "xs")
    before = [p.detach().clone() for p in model.parameters()]

    def loss_fn(m, b, rb, step):
        z = m(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        bad = float("nan") if len(calls) == 2 else 1.0
        calls.append(1)
        return z.float().mean() * bad, {}

    calls: list[int] = []
    cfg = TrainConfig(lr=1e-2, batch_size=1, grad_accum=4, max_steps=2)
    with pytest.raises(TrainingDiverged, match=r"the loss became nan at step 0; lower"):
        train_loop(model, loss_fn, enc, cfg, tok.pad_token_id, progress=False)
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_adamw_implementations(small) -> None:
    tok, _ = small
    params = list(build_tiny_llama(tok, "xs").parameters())
    assert make_adamw(params, TrainConfig()).defaults["fused"] is True  # auto on CPU
    assert make_adamw(params, TrainConfig(adamw="foreach")).defaults["foreach"] is True
    plain = make_adamw(params, TrainConfig(adamw="plain")).defaults
    assert plain["foreach"] is False and not plain["fused"]
    meta = [torch.nn.Parameter(torch.zeros(2, device="meta"))]
    assert make_adamw(meta, TrainConfig()).defaults["foreach"] is True  # auto falls back
    with pytest.raises(ValueError, match=r"adamw=fused: no fused AdamW kernel .*meta"):
        make_adamw(meta, TrainConfig(adamw="fused"))
    with pytest.raises(ValueError, match=r"adamw='fast': choose one of auto, fused"):
        TrainConfig(adamw="fast")


@pytest.mark.slow
def test_compiled_training_gives_the_same_losses(small) -> None:
    tok, enc = small

    def loss_fn(m, b, rb, step):
        z = m(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        return torch.nn.functional.cross_entropy(
            z[:, :-1].flatten(0, 1), b["input_ids"][:, 1:].flatten()
        ), {}

    logs = {}
    for compiled in (False, True):
        model = build_tiny_llama(tok, "xs")
        cfg = TrainConfig(lr=1e-3, batch_size=3, max_steps=3, compile=compiled, allow_collapse=True)
        logs[compiled] = train_loop(model, loss_fn, enc, cfg, tok.pad_token_id, progress=False).log
    assert [r["loss"] for r in logs[True]] == pytest.approx(
        [r["loss"] for r in logs[False]], abs=1e-4
    )
