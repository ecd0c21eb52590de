#!/usr/bin/env bash
# The main job on the built-in default: the pytest ship gate, run from an empty
# directory. It produces a real libvmaf corpus from the built-in sources (the
# corpus is missing on a fresh machine), trains the 5-seed leave-one-source-out
# ensemble, prints the PLCC table and writes PROMOTE.json or HOLD.json.
# Exit status: 0 PROMOTE, 1 HOLD, anything else an error. Extra arguments go
# to pytest (e.g. --frreg-epochs=200 for the full recipe; through make:
# make demo ARGS=--frreg-epochs=200).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
demo="${DEMO_DIR:-$root/runs/demo}"
epochs=$(python -c 'from frreg.schema import DEMO_EPOCHS, DEFAULT_EPOCHS; print(DEMO_EPOCHS, DEFAULT_EPOCHS)')
read -r demo_epochs full_epochs <<< "$epochs"
mkdir -p "$demo"
cd "$demo"
echo "demo: built-in sources, ${demo_epochs} epochs per fold (the full recipe is ${full_epochs}: make demo ARGS=--frreg-epochs=${full_epochs})"
exec python -m pytest -p no:cacheprovider -n 2 \
  --frreg-corpus=corpus.jsonl --frreg-out-dir=. --frreg-cache-dir=cache \
  --frreg-epochs="$demo_epochs" "$@"
