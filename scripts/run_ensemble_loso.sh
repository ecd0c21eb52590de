#!/usr/bin/env bash
# Train the fr_regressor_v2 ensemble seed by seed with frreg-train, then point at
# the validator. The trainer's parser is the authoritative interface: this script
# passes only flags that `frreg-train --help` lists, and tests/test_wrapper*.py
# runs it against the real parser so it cannot drift again.
#
# Usage: scripts/run_ensemble_loso.sh [EXTRA frreg-train FLAGS...]
# As the fork's wrapper does, it runs from the repository root (the directory
# above scripts/), so relative paths below are taken from there, whatever the cwd.
#   CORPUS_JSONL  corpus to train on  (default $repo_root/runs/phase_a/full_grid/per_frame_canonical6.jsonl)
#   OUT_DIR       where loso_seed{N}.json land (default $repo_root/runs/ensemble_v2_real,
#                 the fork's, where its runbook's next step looks)
#   SEEDS         space-separated seeds (default "0 1 2 3 4")
#   LOG_DIR       per-seed logs (default "$OUT_DIR/logs")
#   FRREG_TRAIN   trainer command (default frreg-train)
# Exit status: 0 all seeds trained, 2 corpus missing, else the trainer's status.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

CORPUS_JSONL="${CORPUS_JSONL:-$repo_root/runs/phase_a/full_grid/per_frame_canonical6.jsonl}"
OUT_DIR="${OUT_DIR:-$repo_root/runs/ensemble_v2_real}"
SEEDS="${SEEDS:-0 1 2 3 4}"
LOG_DIR="${LOG_DIR:-$OUT_DIR/logs}"
read -r -a TRAIN_CMD <<< "${FRREG_TRAIN:-frreg-train}"

if [[ ! -f "$CORPUS_JSONL" ]]; then
  echo "run_ensemble_loso.sh: corpus $CORPUS_JSONL not found." >&2
  echo "  Produce it first (runbook step 0): frreg-corpus --builtin --out $CORPUS_JSONL" >&2
  exit 2
fi

mkdir -p "$OUT_DIR" "$LOG_DIR"
for seed in $SEEDS; do
  log="$LOG_DIR/seed${seed}_$(date -u +%Y%m%dT%H%M%SZ).log"
  echo "== seed $seed -> $log"
  "${TRAIN_CMD[@]}" --seeds "$seed" --corpus "$CORPUS_JSONL" --out-dir "$OUT_DIR" "$@" 2>&1 | tee "$log"
done

# The next step names absolute paths: it works from any directory.
absolute() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s' "$repo_root/$1" ;; esac; }
seed_list=$(set -f; set -- $SEEDS; IFS=,; echo "$*")
echo "All seeds trained. Next, gate the ensemble and write the verdict:"
printf '  frreg-validate %q --seeds %s --corpus %q\n' \
  "$(absolute "$OUT_DIR")" "$seed_list" "$(absolute "$CORPUS_JSONL")"
