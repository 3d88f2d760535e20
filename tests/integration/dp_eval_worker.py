"""Run alone or under `torchrun --nproc_per_node 2` (tests/integration/test_dp_eval.py).

``cli OUT ARGS...``: the obliviate command ARGS (``eval ...``), this rank's standard output
    kept in OUT/stdout-<rank>.txt and the evaluation folders it wrote in OUT/writes-<rank>.json.
``api OUT TARGET RETAIN BUILTIN_JSON``: (1) every rank evaluates the in-memory target on
    builtin-wmdp (multiple choice) inside ``data_parallel()``; (2) rank 0 alone evaluates it on
    TOFU (the default mode, no generation) while the other ranks wait at a barrier. Rank 0
    writes both results to OUT/api.json; OUT/writes-<rank>.json as above.
"""

import contextlib
import json
import os
import sys
from pathlib import Path

import torch

from obliviate import runs

mode, out = sys.argv[1], Path(sys.argv[2])
rank = int(os.environ.get("RANK", "0"))
torch.set_num_threads(1)
written: list[str] = []
original_write_eval = runs.write_eval


def recording_write_eval(run_dir, result, meta):  # type: ignore[no-untyped-def]
    written.append(str(run_dir))
    return original_write_eval(run_dir, result, meta)


runs.write_eval = recording_write_eval  # looked up at call time by api.evaluate and retain_eval

if mode == "cli":
    from obliviate.cli import main

    with open(out / f"stdout-{rank}.txt", "w") as f, contextlib.redirect_stdout(f):
        code = main(sys.argv[3:])
    (out / f"writes-{rank}.json").write_text(json.dumps(written))
    sys.exit(code)

from obliviate import api  # noqa: E402
from obliviate.models.loading import load_model, load_tokenizer  # noqa: E402
from obliviate.parallel_eval import data_parallel, launched_world_size  # noqa: E402

target, retain, builtin = sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
world = launched_world_size()
if world > 1:
    import torch.distributed as dist

    dist.init_process_group("gloo")
tok, net = load_tokenizer(target), load_model(target)


def record(result):  # type: ignore[no-untyped-def]
    return {"metrics": result.metrics, "samples": result.samples}


with data_parallel():
    mcq = api.evaluate(
        net,
        tokenizer=tok,
        benchmark="builtin-wmdp",
        builtin={"n_people": builtin["n_people"]},
        out=out / "mcq",
        progress=False,
    )
alone = None
if rank == 0:  # the others are not evaluating: a data-parallel split here would hang
    alone = api.evaluate(
        net,
        tokenizer=tok,
        split="forget10",
        builtin=builtin,
        retain_model=retain,
        settings={"generate": False},
        reuse=False,
        progress=False,
    )
if world > 1:
    dist.barrier()
if rank == 0:
    (out / "api.json").write_text(json.dumps({"mcq": record(mcq), "alone": record(alone)}))
(out / f"writes-{rank}.json").write_text(json.dumps(written))
if world > 1:
    dist.destroy_process_group()
