#!/usr/bin/env bash
# The CUDA checks, for a machine with an NVIDIA GPU (none of frreg's CI machines has one):
# the batched engine's agreement with the reference loop on CUDA, then the full recipe
# timed on the GPU. One line per figure; record them in the README with the GPU model.
#
#   bash benchmarks/device_check.sh          # from the repository root, after `make install`
#
# Exit status: 0 when everything ran and the agreement tests passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "device_check: no CUDA device visible to torch; nothing to check" >&2
  exit 1
fi
"$PY" -c 'import torch; p = torch.cuda.get_device_properties(0); print(f"gpu: {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}")'

rc=0
if "$PY" -m pytest -q -p no:cacheprovider tests/test_batched.py -k cuda -rA 2>&1 | tail -n 15 | grep -E "PASSED|FAILED|ERROR|passed|failed"; then :; fi
if ! "$PY" -m pytest -q -p no:cacheprovider tests/test_batched.py -k cuda >/dev/null 2>&1; then
  echo "agreement on CUDA: FAILED (rerun: $PY -m pytest tests/test_batched.py -k cuda)"
  rc=1
else
  echo "agreement on CUDA: passed (held-out PLCC vs the reference loop, seeds 0 and 1)"
fi

"$PY" benchmarks/bench_train.py --device cuda --kernel torch 2>&1 \
  | grep -E "^(cpu|torch|gpu|batched full recipe|straightforward full recipe|ratio|full recipe)" \
  || rc=1
exit $rc
