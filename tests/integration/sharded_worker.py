"""Train a few steps of fine-tuning, GradDiff (also with a LoRA adapter or saliency masks), NPO,
GA+KL and RMU, in one process (no sharding) or in 2 processes with train.shard=ENGINE (fsdp under
`torchrun --nproc_per_node 2`, zero3 under `accelerate launch --config_file
examples/accelerate/zero3.yaml --num_processes 2`), with the same global batch.

Usage: sharded_worker.py train MODEL_DIR OUT_DIR BUILTIN_JSON [ENGINE] writes (rank 0) OUT_DIR/result.json:
each run's log rows and the logits of a fixed batch computed by the trained model (the sharded
one under FSDP) and by the consolidated copy; OUT_DIR/<run>/ holds the consolidated model
(save_unlearned), OUT_DIR/api_finetune and OUT_DIR/api_npo run folders of the public API.
sharded_worker.py load MODEL_DIR OUT_DIR BUILTIN_JSON (one plain process) loads every saved model
afresh and writes the same batch's logits to OUT_DIR/loaded.json.
"""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from obliviate import api, checkpoints
from obliviate.config import TrainConfig, from_dict
from obliviate.data.collate import pad_id_of
from obliviate.methods import functional as F
from obliviate.methods.base import UnlearnJob, build_method
from obliviate.models.loading import load_model, load_tokenizer
from obliviate.training import TrainResult, collate_encoded, get_accelerator, train_loop

mode, model_dir, out_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
builtin = json.loads(sys.argv[4])
engine = sys.argv[5] if len(sys.argv) > 5 else "fsdp"
torch.set_num_threads(1)
base = {"max_steps": 4, "batch_size": 2, "lr": 1e-3, "checkpoint": False}
base.update({"scheduler": "constant", "warmup_epochs": 0.0})
RUNS = {
    "finetune": {},
    "graddiff": {"activation_checkpointing": True},
    "npo": {},
    "ga_kl": {},
    "rmu": {},  # hooks on a decoder layer, a frozen reference, only MLP outputs trained
    "graddiff_lora": {},  # a LoRA adapter (r 4) on every linear layer
    "graddiff_saliency": {},  # SalUn masks (top 50% of |gradient|); not under ZeRO-3
    "ga_kl_bf16": {"mixed_precision": "bf16"},  # sharded runs only
}

tok = load_tokenizer(model_dir)
request = api.load_request("builtin", "forget10", builtin=builtin)
probe_job = UnlearnJob(None, tok, request, progress=False)  # type: ignore[arg-type]
probe_items = probe_job.encode_items(request.retain[:3])
probe = collate_encoded(probe_items, range(len(probe_items)), pad_id_of(tok))


def logits_of(model: torch.nn.Module) -> list:
    with torch.no_grad():
        out = model(input_ids=probe["input_ids"], attention_mask=probe["attention_mask"])
    return out.logits.float().tolist()


if mode == "load":
    loaded = {}
    for run in RUNS:
        if (out_dir / run).exists():  # not every run is trained by every engine
            loaded[run] = logits_of(load_model(out_dir / run))
    for run in ("api_finetune", "api_npo"):
        loaded[run] = logits_of(load_model(out_dir / run / "model"))
    (out_dir / "loaded.json").write_text(json.dumps(loaded))
    sys.exit(0)


def nll(m: torch.nn.Module, b: dict, _r: object, _s: int) -> tuple:
    logits = m(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    return F.nll_loss(logits, b["labels"]), {}


def crash_after_step_3(kind: str, count: int) -> None:
    """The training loop's kill point: every rank stops after optimiser step 3."""
    if kind == "step" and count == 3:
        raise KeyboardInterrupt("simulated interruption")


acc = get_accelerator()
world = acc.num_processes
sharded = world > 1
base["grad_accum"] = 2 // world
base["shard"] = engine if sharded else "none"
results = {}
for run, extra in RUNS.items():
    if (run == "ga_kl_bf16" and not sharded) or (run == "graddiff_saliency" and engine == "zero3"):
        continue
    train = {**base, **extra}
    model = load_model(model_dir)
    job = UnlearnJob(model, tok, request, accelerator=acc, progress=False)
    if run == "finetune":
        data = job.encode_items(request.retain)
        res = train_loop(
            model,
            lambda m, b, _r, _s: (
                F.nll_loss(
                    m(**{k: b[k] for k in ("input_ids", "attention_mask")}).logits, b["labels"]
                ),
                {},
            ),
            data,
            from_dict(TrainConfig, train),
            pad_id_of(tok),
            accelerator=acc,
            progress=False,
        )
        final, log = res.model, res.log
    else:
        extra_options = {"_lora": {"peft": {"r": 4}}, "_saliency": {"saliency": 0.5}}
        options = next((o for end, o in extra_options.items() if run.endswith(end)), {})
        name = run.split("_")[0] if run.endswith(tuple(extra_options)) else run
        method = build_method(name.removesuffix("_bf16"), {"train": train, **options})
        output = method.unlearn(job)
        final, log = output.model, output.train_log
    # the model trained in place (sharded); an adapter's sharded wrapper is not kept
    trained = None if run.endswith("_lora") else logits_of(model)
    if acc.is_main_process:
        api.save_unlearned(final, tok, out_dir / run)
    results[run] = {
        "loss": [r["loss"] for r in log],
        "rows": log,
        "logits": trained,
        "consolidated_logits": logits_of(final),
        "sharded": any(isinstance(p, DTensor) or hasattr(p, "ds_id") for p in model.parameters()),
    }
    acc.wait_for_everyone()

# resume: interrupted after step 3 with a checkpoint at step 2, then resumed to step 4
resume_cfg = from_dict(TrainConfig, {**base, "checkpoint": True, "checkpoint_every": 2})
ckpt = out_dir / "resume_ckpt"
retain_data = UnlearnJob(None, tok, request).encode_items(request.retain)  # type: ignore[arg-type]


def fine_tune_with_checkpoints() -> TrainResult:
    """Fine-tune a fresh copy of the target, resuming from ``ckpt`` when it holds a checkpoint."""
    return train_loop(
        load_model(model_dir),
        nll,
        retain_data,
        resume_cfg,
        pad_id_of(tok),
        accelerator=acc,
        progress=False,
        checkpoint_dir=ckpt,
    )


kill_point = checkpoints.kill_point
checkpoints.kill_point = crash_after_step_3
try:
    fine_tune_with_checkpoints()
    raise AssertionError("the interruption did not happen")
except KeyboardInterrupt:
    pass
checkpoints.kill_point = kill_point
resumed = fine_tune_with_checkpoints()
results["finetune_resumed"] = {
    "loss": [r["loss"] for r in resumed.log],
    "rows": resumed.log,
    "consolidated_logits": logits_of(resumed.model),
    "checkpoint_left": ckpt.exists(),
}
if acc.is_main_process:
    api.save_unlearned(resumed.model, tok, out_dir / "finetune_resumed")
acc.wait_for_everyone()

# the public API path: api.finetune and api.unlearn write run folders from rank 0
api.finetune(
    data="builtin",
    split="retain90",
    out=out_dir / "api_finetune",
    model=model_dir,
    train={**base, "max_steps": 2},
    builtin=builtin,
    accelerator=acc,
    progress=False,
)
api.unlearn(
    model_dir,
    method="npo",
    split="forget10",
    out=out_dir / "api_npo",
    builtin=builtin,
    overrides={"train": {**base, "max_steps": 2}},
    accelerator=acc,
    progress=False,
)
if sharded:
    dist.barrier()
if acc.is_main_process:
    target = logits_of(load_model(model_dir))
    summary = {"world": world, "runs": results, "target_logits": target}
    (out_dir / "result.json").write_text(json.dumps(summary))
