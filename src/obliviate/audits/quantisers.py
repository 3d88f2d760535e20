"""Real weight quantisers for the quantisation attack, with the simulation as the fallback.

The quantisation attack (docs/audit.md) quantises a copy of a model's ``nn.Linear`` weights
(``lm_head`` kept) with one of:

- ``torchao``: ``torchao.quantization.quantize_`` with ``IntxWeightOnlyConfig`` (symmetric
  integer weights of ``bits`` bits, one scale per output channel or per ``group_size`` input
  columns); runs on CPU and GPU. The weights become torchao's ``IntxUnpackedToInt8Tensor``.
- ``quanto``: ``optimum.quanto.quantize`` + ``freeze`` with ``qint8`` (symmetric, per output
  channel), ``qint4`` or ``qint2`` (affine, groups of up to 128 input columns, quanto's choice);
  the layers become quanto's ``QLinear``. CPU and GPU; on the CPU its 2/4-bit kernel is a C++
  extension that torch compiles on first use (a C++ compiler is needed; 1-3 minutes on 2 cores,
  once per installation).
- ``bnb``: bitsandbytes through transformers' ``BitsAndBytesConfig`` (LLM.int8 for 8 bits, NF4
  blocks of 64 for 4 bits, the quantisers of Zhang+ 2024, arXiv 2410.16454); the model is
  saved and reloaded quantised onto its CUDA device. Needs a CUDA GPU.
- ``rtn``: the simulated symmetric round-to-nearest of :mod:`obliviate.audits.quantise`
  (weights quantised and dequantised in torch, any bit width 2-16).

``auto`` (the default) takes ``bnb`` for a model on a CUDA device when bitsandbytes is installed,
else ``quanto`` (the ``audit`` extra installs it), else ``torchao``, else ``rtn`` with a one-line
notice; a quantiser that cannot do the requested bits or groups is passed over. A quantiser named
explicitly that is not installed is an error. torchao is not in the extra: once installed,
transformers imports it on every model load (seconds, and log lines on stderr).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

QUANTISERS = ("auto", "torchao", "quanto", "bnb", "rtn")
REAL_ORDER = ("quanto", "torchao")  # auto's CPU preference, first installed (and fitting) wins
_MODULE = {"torchao": "torchao", "quanto": "optimum.quanto", "bnb": "bitsandbytes"}
_PIP = {"torchao": "torchao", "quanto": "optimum-quanto", "bnb": "bitsandbytes"}
BITS: dict[str, tuple[int, ...]] = {
    "torchao": (2, 3, 4, 5, 6, 7, 8),
    "quanto": (2, 4, 8),
    "bnb": (4, 8),
    "rtn": tuple(range(2, 17)),
}
FALLBACK_NOTICE = (
    "quantisation: no real quantiser is installed (pip install 'obliviate[audit]' adds optimum-quanto); "
    "using the simulated round-to-nearest fallback (docs/audit.md)"
)


def installed(name: str) -> bool:
    """Whether the library behind quantiser ``name`` can be imported (``rtn`` always)."""
    if name == "rtn":
        return True
    try:
        return importlib.util.find_spec(_MODULE[name]) is not None
    except (ImportError, ValueError):  # a parent package missing (optimum) or a broken install
        return False


def has_compiler() -> bool:
    """Whether torch can build C++ extensions here (quanto's CPU kernel for 2/4-bit weights is
    compiled on its first use, once per installation)."""
    return shutil.which(os.environ.get("CXX", "c++")) is not None


def check_quantiser(name: str, bits: Sequence[int], group_size: int | None) -> None:
    """Raise ValueError when ``name`` is unknown or cannot do ``bits`` / ``group_size`` (pure)."""
    if name not in QUANTISERS:
        raise ValueError(f"unknown quantiser {name!r}; choose one of {', '.join(QUANTISERS)}")
    if name == "auto":
        return
    bad = [b for b in bits if b not in BITS[name]]
    if bad:
        raise ValueError(
            f"quantiser {name} supports {'/'.join(map(str, BITS[name]))} bits, not {bad}; "
            "change quant_bits or use quantiser=rtn"
        )
    if group_size is not None and name in ("quanto", "bnb"):
        raise ValueError(
            f"quantiser {name} chooses its own groups; leave quant_group_size unset "
            "or use quantiser=torchao or rtn"
        )


def resolve_quantiser(
    name: str, bits: Sequence[int], group_size: int | None, device: Any = "cpu"
) -> tuple[str, str | None]:
    """The quantiser that will run for ``name`` on a model on ``device``, and a notice to print
    (``None`` when there is nothing to say). Raises ValueError for an explicit quantiser that is
    not installed or does not fit ``bits`` / ``group_size`` / the device."""
    check_quantiser(name, bits, group_size)
    on_cuda = str(device).startswith("cuda")
    if name == "auto":
        candidates = (["bnb"] if on_cuda and group_size is None else []) + list(REAL_ORDER)
        for cand in candidates:
            fits = all(b in BITS[cand] for b in bits)
            if cand == "quanto" and any(b < 8 for b in bits) and not on_cuda:
                fits = fits and has_compiler()
            if fits and (group_size is None or cand == "torchao") and installed(cand):
                return cand, None
        if any(installed(c) for c in REAL_ORDER):
            return "rtn", (
                f"quantisation: no installed real quantiser does {list(bits)}-bit weights"
                f"{' in groups' if group_size else ''}; using the simulated round-to-nearest "
                "fallback (docs/audit.md)"
            )
        return "rtn", FALLBACK_NOTICE
    if not installed(name):
        extra = " (or 'obliviate[audit]')" if name == "quanto" else ""
        raise ValueError(
            f"quantiser {name} is not installed: pip install {_PIP[name]}{extra}, "
            "or choose quantiser=rtn"
        )
    if name == "quanto" and any(b < 8 for b in bits) and not on_cuda and not has_compiler():
        raise ValueError(
            "quantiser quanto compiles a C++ extension for 2/4-bit weights on the CPU and no C++ "
            "compiler was found (install g++ or set CXX), or choose quantiser=rtn"
        )
    if name == "bnb" and not on_cuda:
        raise ValueError(
            f"quantiser bnb (bitsandbytes) needs a model on a CUDA GPU, this one is on {device}; "
            "use quantiser=torchao, quanto or rtn"
        )
    return name, None


def model_device(model: Any) -> Any:
    """The device of the model's first parameter (``cpu`` when it has none)."""
    for p in model.parameters():
        return p.device
    return "cpu"


def quantise_with(
    model: Any,
    quantiser: str,
    bits: int,
    group_size: int | None = None,
    skip: Sequence[str] = ("lm_head",),
) -> tuple[Any, int]:
    """A quantised copy of ``model`` (PEFT merged first) by ``quantiser`` (not ``auto``: see
    :func:`resolve_quantiser`). Returns ``(model, number of quantised linear layers)``."""
    import torch

    check_quantiser(quantiser, [bits], group_size)
    if quantiser == "rtn":
        from obliviate.audits.quantise import quantise_model

        return quantise_model(model, bits, group_size, skip)
    if quantiser == "bnb":
        return _bnb(model, bits, skip)
    net = copy.deepcopy(model)
    if hasattr(net, "merge_and_unload"):
        net = net.merge_and_unload()
    names = [
        name
        for name, m in net.named_modules()
        if isinstance(m, torch.nn.Linear) and name.split(".")[-1] not in skip
    ]
    if not names:
        raise ValueError("quantisation: the model has no nn.Linear weights to quantise")
    if quantiser == "torchao":
        _torchao(net, bits, group_size, set(names))
    else:
        _quanto(net, bits, names)
    net.eval()
    return net, len(names)


@contextlib.contextmanager
def _quiet_import() -> Iterator[None]:
    """Silence the import-time log lines of the quantisation libraries (missing GPU kernels)."""
    loggers = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree", "optimum.quanto")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _torchao(net: Any, bits: int, group_size: int | None, names: set[str]) -> None:
    import torch

    with _quiet_import():
        from torchao.quantization import IntxWeightOnlyConfig, quantize_
        from torchao.quantization.granularity import PerAxis, PerGroup

    for name, m in net.named_modules():
        if name in names and group_size is not None and m.in_features % group_size:
            raise ValueError(
                f"quant_group_size {group_size} must divide the input width of every quantised "
                f"layer ({name}: {m.in_features})"
            )
    config = IntxWeightOnlyConfig(
        weight_dtype=getattr(torch, f"int{bits}"),
        granularity=PerGroup(group_size) if group_size else PerAxis(0),
    )
    quantize_(net, config, filter_fn=lambda _m, fqn: fqn in names)


def _quanto(net: Any, bits: int, names: list[str]) -> None:
    with _quiet_import():
        from optimum.quanto import freeze, qint2, qint4, qint8, quantize

    qtype = {8: qint8, 4: qint4, 2: qint2}[bits]
    quantize(net, weights=qtype, include=names)
    freeze(net)


def _bnb(model: Any, bits: int, skip: Sequence[str]) -> tuple[Any, int]:
    """Save ``model`` and reload it quantised by bitsandbytes on its CUDA device (the first GPU
    for a model on the CPU)."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    net = copy.deepcopy(model)
    if hasattr(net, "merge_and_unload"):
        net = net.merge_and_unload()
    device = model_device(net)
    if not str(device).startswith("cuda"):  # e.g. the retain model next to a GPU-resident one
        device = "cuda"
    if bits == 8:
        config = BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(skip))
    else:
        config = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.float32,
            llm_int8_skip_modules=list(skip),
        )
    with tempfile.TemporaryDirectory() as tmp:
        net.save_pretrained(tmp)
        del net
        q = AutoModelForCausalLM.from_pretrained(
            tmp, quantization_config=config, device_map={"": str(device)}
        )
    count = sum(
        1
        for name, m in q.named_modules()
        if type(m).__name__ in ("Linear8bitLt", "Linear4bit") and name.split(".")[-1] not in skip
    )
    q.eval()
    return q, count
