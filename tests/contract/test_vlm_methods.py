"""Contract tests of unlearning on a random micro vision-language model: every gradient method
of obliviate.multimodal.methods.GRADIENT_METHODS and every method of
obliviate.registry.VLM_METHODS runs 2 optimiser steps (batch 8) through the one trainer and
must report finite losses, move some trainable parameter and no frozen one, for each model part
(language model only, vision tower + projector only, both)."""

from __future__ import annotations

import copy
import math
import re
import sys
from pathlib import Path

import pytest
import torch

from obliviate.multimodal.methods import GRADIENT_METHODS, PARTS, unlearn_vlm
from obliviate.multimodal.people import unlearning_request
from obliviate.registry import VLM_METHODS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from mm_micro import micro_vlm  # tests/unit/mm_micro.py

TRAIN = {"max_steps": 2, "batch_size": 8, "lr": 1e-3, "warmup_epochs": 0, "allow_collapse": True}
METHODS = [*GRADIENT_METHODS, *VLM_METHODS.names()]


@pytest.fixture(scope="module")
def micro():
    torch.set_num_threads(1)
    return micro_vlm()


def _run(micro, method: str, part: str) -> tuple[dict, dict, object]:
    model = copy.deepcopy(micro["model"])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    request = unlearning_request(micro["people"])
    out = unlearn_vlm(model, micro["tok"], request, method, part, {"train": TRAIN})
    after = dict(out.model.named_parameters())
    return before, after, out


def _moved(before: dict, after: dict, names: list[str]) -> list[str]:
    return [n for n in names if not torch.equal(before[n], after[n].detach())]


@pytest.mark.parametrize("method", METHODS)
def test_method_runs_on_a_vlm_and_moves_only_trainable_weights(micro, method) -> None:
    before, after, out = _run(micro, method, "both")
    assert out.train_log and len(out.train_log) == 2
    for row in out.train_log:
        assert math.isfinite(row["loss"]), row
    assert _moved(before, after, list(before))
    frozen = [n for n, p in after.items() if not p.requires_grad]
    assert not _moved(before, after, frozen)


@pytest.mark.parametrize("part", ["language", "vision"])
@pytest.mark.parametrize("method", ["graddiff", "npo", *VLM_METHODS.names()])
def test_part_selection_freezes_the_other_part(micro, method, part) -> None:
    before, after, _ = _run(micro, method, part)
    rx = re.compile(str(PARTS[part]))
    inside = [n for n in before if rx.search(n)]
    outside = [n for n in before if not rx.search(n)]
    assert inside and outside
    assert _moved(before, after, inside)
    assert not _moved(before, after, outside)


def test_unknown_method_and_part_are_one_sentence(micro) -> None:
    request = unlearning_request(micro["people"])
    with pytest.raises(ValueError, match="does not run on vision-language models"):
        unlearn_vlm(micro["model"], micro["tok"], request, "rome")
    with pytest.raises(ValueError, match="unknown model part"):
        unlearn_vlm(micro["model"], micro["tok"], request, "ga", "eyes")
