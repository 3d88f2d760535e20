#!/usr/bin/env bash
# Create .venv with the CPU build of torch (installed FIRST, so nothing pulls a CUDA build),
# then obliviate with its development extras. Idempotent: re-running only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import torch, obliviate; print('obliviate', obliviate.__version__, '| torch', torch.__version__)"
