"""Real quantisers of the quantisation attack (optimum-quanto, torchao), their choice and the
simulated fallback: the weights really are low-bit integers, the model still runs, the audit
uses a real quantiser by default and says when it falls back. The torchao tests run where
torchao is installed (it is optional: docs/audit.md)."""

from __future__ import annotations

import pytest
import torch

from obliviate.audits import quantisers as Q
from obliviate.audits.quantisers import (
    FALLBACK_NOTICE,
    check_quantiser,
    quantise_with,
    resolve_quantiser,
)
from obliviate.audits.settings import AuditSettings
from obliviate.models.tiny import build_tiny_llama, train_tokenizer

TEXTS = ["Question: Who is Ann?\nAnswer: Ann is a sailor from Paris."] * 4


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, vocab_size=300)


@pytest.fixture(scope="module")
def model(tok):
    torch.manual_seed(0)
    return build_tiny_llama(tok, "xs", max_positions=128).eval()


def _linears(net):
    return {n: m for n, m in net.named_modules() if n.split(".")[-1].endswith("proj")}


def _logits(net, tok):
    ids = tok(TEXTS[:2], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return net(input_ids=ids).logits


def _check_close_at_8_bits(q, model, tok):
    ref, out = _logits(model, tok), _logits(q, tok)
    assert torch.isfinite(out).all()
    # 8-bit weights: logits move by well under 1 % of their spread, the argmax hardly at all
    assert (out - ref).abs().max() < 0.01 * (ref.max() - ref.min())
    assert (out.argmax(-1) == ref.argmax(-1)).float().mean() > 0.95


def test_torchao_stores_low_bit_integer_weights(model, tok):
    pytest.importorskip("torchao")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for bits in (8, 4):
        q, count = quantise_with(model, "torchao", bits)
        assert count == 2 * 7  # q, k, v, o, gate, up, down in each of the 2 blocks
        for name, lin in _linears(q).items():
            w = lin.weight
            assert type(w).__name__ == "IntxUnpackedToInt8Tensor", name
            lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
            assert lo <= int(w.qdata.min()) and int(w.qdata.max()) <= hi
            deq = w.dequantize()
            assert max(len(torch.unique(row)) for row in deq) <= 2**bits
            assert not torch.equal(deq, before[f"{name}.weight"])
        # lm_head and embeddings stay full precision, the original model is untouched
        assert type(q.lm_head.weight) is torch.nn.Parameter
        assert torch.equal(q.lm_head.weight, before["lm_head.weight"])
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
        if bits == 8:
            _check_close_at_8_bits(q, model, tok)
        else:
            assert torch.isfinite(_logits(q, tok)).all()


def test_torchao_group_size(model):
    pytest.importorskip("torchao")
    q, _ = quantise_with(model, "torchao", 4, group_size=32)
    deq = q.model.layers[0].mlp.down_proj.weight.dequantize()  # (128, 512): 16 groups per row
    groups = deq.reshape(128, 16, 32)
    assert max(len(torch.unique(g)) for g in groups.reshape(-1, 32)) <= 16
    with pytest.raises(ValueError, match="must divide"):
        quantise_with(model, "torchao", 4, group_size=96)


def test_quanto_replaces_linears_with_qlinear(model, tok):
    pytest.importorskip("optimum.quanto")
    q, count = quantise_with(model, "quanto", 8)
    assert count == 14
    assert {type(m).__name__ for m in _linears(q).values()} == {"QLinear"}
    assert type(q.lm_head).__name__ == "Linear"
    _check_close_at_8_bits(q, model, tok)
    q4, _ = quantise_with(model, "quanto", 4)
    w = q4.model.layers[0].mlp.down_proj.weight  # 512 inputs: quanto's groups of 128
    deq = w.dequantize().reshape(128, 4, 128)
    assert max(len(torch.unique(g)) for g in deq.reshape(-1, 128)) <= 16
    assert torch.isfinite(_logits(q4, tok)).all()


def test_auto_prefers_installed_real_quantiser(monkeypatch):
    monkeypatch.setattr(Q, "has_compiler", lambda: True)
    monkeypatch.setattr(Q, "installed", lambda name: name in ("torchao", "quanto"))
    assert resolve_quantiser("auto", (8, 4), None) == ("quanto", None)
    assert resolve_quantiser("auto", (8, 4), None, "cuda:0") == ("quanto", None)  # no bnb
    assert resolve_quantiser("auto", (8, 4), 32) == ("torchao", None)  # quanto: its own groups
    assert resolve_quantiser("auto", (8, 6), None) == ("torchao", None)  # quanto: 2/4/8 bits
    monkeypatch.setattr(Q, "installed", lambda name: name == "quanto")
    name, notice = resolve_quantiser("auto", (8, 4), 32)
    assert name == "rtn" and "simulated" in notice
    monkeypatch.setattr(Q, "has_compiler", lambda: False)  # quanto's CPU 4-bit kernel
    assert resolve_quantiser("auto", (8, 4), None)[0] == "rtn"
    assert resolve_quantiser("auto", (8,), None) == ("quanto", None)
    with pytest.raises(ValueError, match="no C\\+\\+ compiler"):
        resolve_quantiser("quanto", (4,), None)
    monkeypatch.setattr(Q, "has_compiler", lambda: True)
    monkeypatch.setattr(Q, "installed", lambda name: name in ("bnb", "quanto"))
    assert resolve_quantiser("auto", (8, 4), None, "cuda:0") == ("bnb", None)
    assert resolve_quantiser("auto", (8, 4), None, "cpu") == ("quanto", None)


def test_fallback_to_simulation_with_one_line_notice(monkeypatch):
    monkeypatch.setattr(Q, "installed", lambda name: name == "rtn")
    name, notice = resolve_quantiser("auto", (8, 4), None)
    assert name == "rtn" and notice == FALLBACK_NOTICE and "\n" not in notice
    assert "pip install 'obliviate[audit]'" in notice
    with pytest.raises(ValueError, match=r"quanto is not installed: pip install optimum-quanto \("):
        resolve_quantiser("quanto", (8, 4), None)
    with pytest.raises(ValueError, match=r"torchao is not installed: pip install torchao, or"):
        resolve_quantiser("torchao", (8, 4), None)


def test_bad_quantiser_settings_are_one_sentence_errors(monkeypatch):
    monkeypatch.setattr(Q, "installed", lambda name: True)
    with pytest.raises(ValueError, match="needs a model on a CUDA GPU"):
        resolve_quantiser("bnb", (8, 4), None, "cpu")
    with pytest.raises(ValueError, match="unknown quantiser 'gptq'"):
        check_quantiser("gptq", (8,), None)
    with pytest.raises(ValueError, match=r"supports 4/8 bits, not \[3\]"):
        check_quantiser("bnb", (8, 3), None)
    with pytest.raises(ValueError, match="chooses its own groups"):
        check_quantiser("quanto", (4,), 64)
    assert AuditSettings().quantiser == "auto"
    with pytest.raises(ValueError, match="supports 2/4/8 bits"):
        AuditSettings(quantiser="quanto", quant_bits=(6,))


SMALL = {"n_people": 20, "qa_per_person": 2, "n_world_facts": 4}  # forget10: 4 items


@pytest.fixture(scope="module")
def folder(tmp_path_factory, model, tok):
    path = tmp_path_factory.mktemp("quant") / "model"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _audit(folder, **settings):
    from obliviate.audits.runner import run_audit

    logs: list[str] = []
    res = run_audit(
        folder,
        folder,
        folder,
        split="forget10",
        builtin=SMALL,
        settings={"attacks": ["quantise"], "max_new_tokens": 2, **settings},
        log=logs.append,
    )
    return res, logs


def test_audit_uses_a_real_quantiser_by_default(folder):
    pytest.importorskip("optimum.quanto")
    res, logs = _audit(folder, quant_bits=[4])
    assert res.info["quantiser"] == "quanto" and res.settings["quantiser"] == "auto"
    assert "[unlearned] 4-bit quantisation (quanto)" in logs
    assert not any("simulated" in line for line in logs)
    from obliviate.audits.report import audit_markdown

    assert "quantisation: optimum-quanto integer weights (its own groups)" in audit_markdown(res)


def test_audit_falls_back_to_the_simulation_with_a_notice(folder, monkeypatch):
    monkeypatch.setattr(Q, "installed", lambda name: name == "rtn")
    res, logs = _audit(folder, quant_bits=[8])
    assert res.info["quantiser"] == "rtn"
    assert logs.count(FALLBACK_NOTICE) == 1
    assert "[retain] 8-bit quantisation (rtn)" in logs
    with pytest.raises(ValueError, match="quantiser torchao is not installed"):
        _audit(folder, quantiser="torchao")
