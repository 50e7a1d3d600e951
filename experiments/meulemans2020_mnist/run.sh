#!/usr/bin/env bash
# Regenerates the MNIST target-propagation comparison for seeds 0-2 (SEEDS overrides):
#   neurodyn train experiment.toml --seed S -> seedS/ (metrics.csv, summary.json; ../_train_seed.sh)
#   table.py                                -> results.md and curves.png (mean +- std over seeds)
# Needs the MNIST t10k IDX files in $NEURODYN_DATA. Checkpoints stay in $SCRATCH.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export SCRATCH="${SCRATCH:-${TMPDIR:-/tmp}/neurodyn}"
cd "$ROOT"
runs=()
for seed in ${SEEDS:-0 1 2}; do
  bash experiments/_train_seed.sh "$HERE/experiment.toml" "$HERE/seed$seed" "$seed"
  runs+=("$HERE/seed$seed")
done
python "$HERE/table.py" "$HERE" "${runs[@]}"
