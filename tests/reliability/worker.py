"""One training job per process, for the kill/resume tests (not a test module).

``python worker.py JOB SETTINGS_JSON OUT [OUT ...]`` runs JOB (``loop``, ``unlearn``,
``finetune``, ``sisa``, ``erase``) with its checkpoints under OUT and writes the final weights
under ``OUT/final``, for each OUT in turn; with ``"reference": true`` it first runs the same
job uninterrupted, without checkpoints, into ``OUT/reference``. The tests interrupt it with the
documented hook ``OBLIVIATE_KILL_AT`` (:mod:`obliviate.checkpoints`) and compare ``final`` with
``reference``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

QA = [
    (f"Who is person {i}?", f"Person {i} is a {w} from town {i % 3}.")
    for i, w in enumerate(
        ["baker", "sailor", "potter", "judge", "pilot", "weaver", "chemist", "tailor"]
    )
]


def _save_state(state: dict[str, Any], folder: Path) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.detach().contiguous().clone() for k, v in state.items()},
        str(folder / "w.safetensors"),
    )


def loop(out: Path, s: dict[str, Any], checkpoint: Path | None) -> None:
    """The trainer itself: a tiny Llama with attention dropout (and a LoRA adapter)."""
    from obliviate.config import TrainConfig
    from obliviate.data.templates import PromptTemplate, encode
    from obliviate.methods import functional as F
    from obliviate.models.tiny import build_tiny_llama, train_tokenizer
    from obliviate.seeding import seed_everything
    from obliviate.training import train_loop

    tok = train_tokenizer([q + " " + a for q, a in QA], vocab_size=300)
    enc = [encode(tok, q, a, PromptTemplate()) for q, a in QA]
    model = build_tiny_llama(tok, "xs", seed=1)
    for m in model.modules():
        if hasattr(m, "attention_dropout"):
            m.attention_dropout = float(s.get("dropout", 0.1))
    if s.get("lora"):
        from obliviate.models.selection import apply_peft

        seed_everything(0)
        model = apply_peft(model, {"r": 4, "lora_alpha": 8, "lora_dropout": 0.1})

    def nll(m: Any, b: dict, rb: Any, step: int) -> Any:
        if step == s.get("stop_at"):  # an in-process interruption (Ctrl-C)
            raise KeyboardInterrupt
        lf = F.nll_loss(
            m(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits, b["labels"]
        )
        lr = F.nll_loss(
            m(input_ids=rb["input_ids"], attention_mask=rb["attention_mask"]).logits, rb["labels"]
        )
        return lf + lr, {"retain_loss": float(lr.detach())}

    cfg = TrainConfig(
        lr=1e-3,
        epochs=3,
        batch_size=3,
        warmup_epochs=0,
        checkpoint_every=1,
        grad_accum=int(s.get("grad_accum", 1)),
    )
    train_loop(
        model,
        nll,
        enc,
        cfg,
        tok.pad_token_id,
        retain_set=enc[:4],
        progress=False,
        checkpoint_dir=checkpoint,
    )
    _save_state({k: v for k, v in model.state_dict().items()}, out)


def api_job(job: str, out: Path, s: dict[str, Any], checkpoint: bool) -> None:
    """``api.unlearn`` / ``api.finetune`` as a user runs them; the model folder is the result."""
    from obliviate import api

    train = {**s.get("train", {}), "checkpoint": checkpoint, "checkpoint_every": 1}
    if job == "finetune":
        api.finetune(
            data="builtin",
            split="forget10",
            out=out,
            size="xs",
            train=train,
            builtin=s["builtin"],
            progress=False,
        )
    else:
        over = {**s.get("overrides", {}), "train": train}
        api.unlearn(
            s["target"],
            s.get("method", "graddiff"),
            out=out,
            builtin=s["builtin"],
            split="forget10",
            overrides=over,
            progress=False,
        )
    if not checkpoint:
        assert not (out / "checkpoint").exists()


def erase(out: Path, s: dict[str, Any], checkpoint: Path | None) -> None:
    """A diffusion eraser on the random tiny UNet (its own optimisation loop)."""
    from obliviate.diffusion.builtin import builtin_request
    from obliviate.diffusion.methods import make_eraser
    from obliviate.diffusion.shapes import ShapesSpec
    from obliviate.diffusion.testing import random_tiny_model

    model = random_tiny_model(seed=0)
    eraser = make_eraser(s.get("eraser", "esd-x"), s.get("overrides", {}), preset="builtin")
    eraser.erase(
        model,
        builtin_request(ShapesSpec(), "red"),
        seed=3,
        checkpoint_dir=checkpoint,
        checkpoint_every=1,
    )
    _save_state(model.unet.state_dict(), out)


def run(job: str, out: Path, s: dict[str, Any], checkpoint: bool) -> None:
    ck = out / "ckpt" if checkpoint else None
    if job == "loop":
        loop(out, s, ck)
    elif job == "erase":
        erase(out, s, ck)
    else:
        api_job(job, out, s, checkpoint)


def main() -> None:
    import torch

    torch.set_num_threads(1)
    job, s, roots = sys.argv[1], json.loads(sys.argv[2]), [Path(a) for a in sys.argv[3:]]
    for root in roots:  # several: each resumed in turn, in one process
        if s.get("reference") and not (root / "reference").exists():
            run(job, root / "reference.tmp", s, checkpoint=False)
            shutil.move(str(root / "reference.tmp"), str(root / "reference"))
        if s.get("kill"):  # the test hook, for the checkpointed run only
            os.environ["OBLIVIATE_KILL_AT"] = s["kill"]
        run(job, root / "final", s, checkpoint=True)


if __name__ == "__main__":
    main()
