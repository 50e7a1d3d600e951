#!/usr/bin/env bash
# Regenerates the student-teacher comparison for seeds 0-3:
#   neurodyn train experiment.toml --seed S  -> seedS/ (metrics.csv, summary.json, learning_curves.png)
#   ../_rule_comparison.py                   -> results.md and comparison.png (median and range over seeds)
# Scratch outputs (checkpoints) go to $SCRATCH.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SCRATCH="${SCRATCH:-$ROOT/out/scratch/student_teacher}"
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
cd "$ROOT"
for seed in 0 1 2 3; do
  start=$(date +%s); status=0
  neurodyn train "$HERE/experiment.toml" --seed "$seed" --out "$SCRATCH/seed$seed" --no-progress || status=$?
  [ "$status" -eq 0 ] || [ "$status" -eq 3 ] || exit "$status"
  echo "seed $seed: $(( $(date +%s) - start )) s wall"
  mkdir -p "$HERE/seed$seed"
  cp "$SCRATCH/seed$seed"/metrics.csv "$SCRATCH/seed$seed"/summary.json "$SCRATCH/seed$seed"/learning_curves.png "$HERE/seed$seed/"
done
python experiments/_rule_comparison.py "$HERE" "$HERE"/seed0 "$HERE"/seed1 "$HERE"/seed2 "$HERE"/seed3 \
  --title "student-teacher 6-6-6 (thesis 5.1.3), online"
