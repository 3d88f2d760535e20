"""SOUL (``train.optimizer=soul``, obliviate.soul): the update rule against hand-computed values
on a 2-parameter problem, the optimiser wrapper, the settings, and a checkpointed run
interrupted and resumed bit-identically (the optimiser state is saved and restored exactly)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from obliviate.config import TrainConfig, from_dict
from obliviate.soul import SOUL, soul_step

HP = dict(lr=0.1, beta1=0.9, beta2=0.95, rho=0.04, batch=10, weight_decay=0.1)


def test_one_step_on_two_parameters_matches_the_hand_computed_update() -> None:
    theta = torch.tensor([1.0, -2.0], dtype=torch.float64)
    grad = torch.tensor([0.5, -0.001], dtype=torch.float64)
    m0 = torch.tensor([0.2, 0.0], dtype=torch.float64)
    h0 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    new, m, h = soul_step(theta, grad, m0, h0, 1, **HP)
    # m = 0.9*[0.2, 0] + 0.1*[0.5, -0.001] = [0.23, -0.0001]
    assert torch.allclose(m, torch.tensor([0.23, -0.0001], dtype=torch.float64), atol=1e-15)
    # h = 0.95*[1, 0] + 0.05*[0.25, 1e-6] = [0.9625, 5e-8]  (refreshed: (1 - 1) % 1 == 0)
    assert torch.allclose(h, torch.tensor([0.9625, 5e-8], dtype=torch.float64), atol=1e-15)
    # rho*B*h = 0.4*h = [0.385, 2e-8]; m / that = [0.597402..., -5000] -> clip -> [0.5974.., -1]
    # theta*(1 - 0.1*0.1) = [0.99, -1.98]; minus 0.1*ratio -> [0.93025974..., -1.88]
    expected = torch.tensor([0.99 - 0.1 * 0.23 / 0.385, -1.88], dtype=torch.float64)
    assert torch.allclose(new, expected, atol=1e-12)
    assert torch.equal(theta, torch.tensor([1.0, -2.0], dtype=torch.float64))  # not in place


def test_the_hessian_estimate_is_kept_between_refreshes() -> None:
    theta = torch.tensor([1.0, -2.0], dtype=torch.float64)
    grad = torch.tensor([0.5, -0.001], dtype=torch.float64)
    m0 = torch.tensor([0.2, 0.0], dtype=torch.float64)
    h0 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    new, m, h = soul_step(theta, grad, m0, h0, 2, **{**HP, "every": 2})  # (2-1) % 2 != 0
    assert torch.equal(h, h0)
    # denominators [0.4, eps]: ratio [0.575, -1e11 -> -1]
    expected = torch.tensor([0.99 - 0.1 * 0.575, -1.88], dtype=torch.float64)
    assert torch.allclose(new, expected, atol=1e-12)
    # no curvature at all: every coordinate moves by lr * sign(m)
    new, _, _ = soul_step(theta, grad, m0, torch.zeros(2), 2, **{**HP, "weight_decay": 0.0})
    assert torch.allclose(new, theta - 0.1 * torch.sign(m), atol=1e-12)
    with pytest.raises(ValueError, match="1-based"):
        soul_step(theta, grad, m0, h0, 0, **HP)


def test_the_optimizer_applies_the_rule_and_keeps_its_state() -> None:
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = SOUL([p], lr=0.1, betas=(0.9, 0.95), rho=0.04, batch=10, weight_decay=0.1)
    theta, m, h = p.detach().clone(), torch.zeros(2), torch.zeros(2)
    for step, g in enumerate(([0.5, -0.001], [-0.3, 0.2]), start=1):
        p.grad = torch.tensor(g)
        opt.step()
        theta, m, h = soul_step(theta, torch.tensor(g), m, h, step, **HP)
        assert torch.equal(p.detach(), theta)
    state = opt.state_dict()["state"][0]
    assert torch.equal(state["exp_avg"], m) and torch.equal(state["hessian"], h)
    assert float(state["step"]) == 2.0


def test_the_setting_reaches_every_gradient_method_and_bad_values_are_one_sentence() -> None:
    from obliviate.methods.base import build_method
    from obliviate.optimizer import make_optimizer

    method = build_method("npo", {"train": {"optimizer": "soul", "soul_rho": "0.1"}})
    assert method.train.optimizer == "soul" and method.train.soul_rho == 0.1
    opt = make_optimizer([torch.nn.Parameter(torch.zeros(2))], method.train)
    assert isinstance(opt, SOUL) and opt.defaults["rho"] == 0.1
    assert opt.defaults["betas"] == (0.9, 0.95) and opt.defaults["batch"] == 5120
    with pytest.raises(ValueError, match=r"optimizer='sophia': choose one of adamw, soul"):
        from_dict(TrainConfig, {"optimizer": "sophia"})
    with pytest.raises(ValueError, match=r"soul_beta2=1.0: must be in \[0, 1\)"):
        TrainConfig(soul_beta2=1.0)
    with pytest.raises(ValueError, match="soul_every=0"):
        TrainConfig(soul_every=0)


QA = [(f"Who is person {i}?", f"Person {i} is a {w}.") for i, w in enumerate("abcdefgh")]


def _run(checkpoint: Any, stop_at: int | None = None) -> dict[str, torch.Tensor]:
    from obliviate.data.templates import PromptTemplate, encode
    from obliviate.methods import functional as F
    from obliviate.models.tiny import build_tiny_llama, train_tokenizer
    from obliviate.training import train_loop

    tok = train_tokenizer([q + " " + a for q, a in QA], vocab_size=300)
    enc = [encode(tok, q, a, PromptTemplate()) for q, a in QA]
    model = build_tiny_llama(tok, "xs", seed=1)

    def loss(m: Any, b: dict, rb: Any, step: int) -> Any:
        if step == stop_at:
            raise KeyboardInterrupt
        out = m(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        ret = m(input_ids=rb["input_ids"], attention_mask=rb["attention_mask"]).logits
        return F.ga_loss(out, b["labels"]) + F.nll_loss(ret, rb["labels"]), {}

    cfg = TrainConfig(
        lr=1e-3,
        epochs=3,
        batch_size=3,
        warmup_epochs=0,
        checkpoint_every=1,
        optimizer="soul",
        allow_collapse=True,  # ascent on a tiny model: the result, not its quality, is compared
    )
    train_loop(
        model,
        loss,
        enc,
        cfg,
        tok.pad_token_id,
        retain_set=enc[:4],
        progress=False,
        checkpoint_dir=checkpoint,
    )
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_an_interrupted_soul_run_resumes_bit_identically(tmp_path, capsys) -> None:
    from obliviate.checkpoints import step_dirs

    torch.set_num_threads(1)
    reference = _run(None)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        _run(ckpt, stop_at=5)
    saved = torch.load(step_dirs(ckpt)[0] / "optim.pt", weights_only=True)["optimizer"]
    first = saved["state"][0]
    assert set(first) == {"step", "exp_avg", "hessian"} and float(first["step"]) == 5.0
    assert any(bool(s["hessian"].abs().sum() > 0) for s in saved["state"].values())
    capsys.readouterr()
    resumed = _run(ckpt)
    assert "resuming training from step 5" in capsys.readouterr().err
    assert reference.keys() == resumed.keys()
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
