"""Cost of model fingerprints (every weight byte, docs/run-format.md "Model fingerprints").

Writes a safetensors model folder of ``--mib`` MiB and times :func:`model_fingerprint` on it:
the first call (streamed sha256), a second call (in-process cache), a call after the in-process
cache is cleared (the on-disk cache, as in a new process), and an in-memory model of the same
size (all bytes of every parameter).

    PYTHONPATH=src python perf/fingerprint_speed.py --mib 128
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time


def main() -> None:
    import torch
    from safetensors.torch import save_file

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=128, help="model size in MiB (multiple of 16)")
    args = parser.parse_args()
    root = tempfile.mkdtemp()
    os.environ["OBLIVIATE_CACHE"] = os.path.join(root, "cache")
    from obliviate.models import fingerprint as fpm

    folder = os.path.join(root, "model")
    os.makedirs(folder)
    tensors = {f"model.layers.{i}.w": torch.randn(2048, 2048) for i in range(args.mib // 16)}
    save_file(tensors, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(folder, "config.json"), "w") as fh:
        fh.write("{}")
    old = time.time() - 60  # older than the racy window: cacheable
    for f in os.listdir(folder):
        os.utime(os.path.join(folder, f), (old, old))
    mib = os.path.getsize(os.path.join(folder, "model.safetensors")) / 2**20

    def timed(x: object) -> tuple[str, float]:
        t = time.perf_counter()
        fp = fpm.model_fingerprint(x)
        return fp, time.perf_counter() - t

    a, t1 = timed(folder)
    b, t2 = timed(folder)
    fpm.clear_memory_cache()
    c, t3 = timed(folder)
    assert a == b == c
    net = torch.nn.Module()
    for k, v in tensors.items():
        net.register_parameter(k.replace(".", "_"), torch.nn.Parameter(v))
    _, t4 = timed(net)
    print(
        f"folder {mib:.0f} MiB: first {t1:.3f} s ({mib / t1:.0f} MiB/s), cached in-process "
        f"{t2 * 1e3:.2f} ms, cached on disk {t3 * 1e3:.2f} ms; in-memory {mib:.0f} MiB: "
        f"{t4:.3f} s ({mib / t4:.0f} MiB/s)"
    )
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
