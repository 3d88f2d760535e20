"""Run under `torchrun --nproc_per_node 2`: unlearning with 2 gloo processes on CPU.

Writes (rank 0 only) a JSON file with every rank's parameter checksum and retain indices.
"""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from obliviate import api
from obliviate.data.collate import pad_id_of
from obliviate.methods.base import UnlearnJob, build_method
from obliviate.models.loading import load_model, load_tokenizer
from obliviate.training import get_accelerator, train_loop

model_dir, out_dir = sys.argv[1], Path(sys.argv[2])
builtin = {"n_people": 10, "qa_per_person": 4, "n_world_facts": 4}
torch.set_num_threads(1)
acc = get_accelerator()

# 1) the public API path: rank 0 alone writes the run folder
res = api.unlearn(
    model_dir,
    method="graddiff",
    split="forget10",
    out=out_dir / "run",
    builtin=builtin,
    overrides={"train": {"max_steps": 3, "batch_size": 2, "lr": 1e-3}},
    accelerator=acc,
    progress=False,
)

# 2) the loop itself, to see what every rank drew
tok = load_tokenizer(model_dir)
model = load_model(model_dir)
request = api.load_request("builtin", "forget10", builtin=builtin)
job = UnlearnJob(model, tok, request, accelerator=acc, progress=False)
method = build_method("graddiff", {"train": {"max_steps": 3, "batch_size": 2, "lr": 1e-3}})
forget, retain = job.encode_items(request.forget), job.encode_items(request.retain)
result = train_loop(
    model,
    lambda m, fb, rb, s: method.loss(m, fb, rb, job),
    forget,
    method.train,
    pad_id_of(tok),
    retain_set=retain,
    accelerator=acc,
    progress=False,
)
unwrapped = acc.unwrap_model(model)
checksum = float(sum(p.detach().double().sum() for p in unwrapped.parameters()))
info = {
    "rank": acc.process_index,
    "world": acc.num_processes,
    "checksum": checksum,
    "retain_indices": result.retain_indices,
    "steps": result.steps,
    "config_world_size": res.config.get("world_size"),
}
gathered = [None] * acc.num_processes
dist.all_gather_object(gathered, info)
if acc.is_main_process:
    (out_dir / "ranks.json").write_text(json.dumps(gathered))
acc.wait_for_everyone()
