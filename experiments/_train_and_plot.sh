#!/usr/bin/env bash
# Shared by the MNIST reproductions: `_train_and_plot.sh FOLDER` runs
#   neurodyn train FOLDER/experiment.toml -> metrics.csv, summary.json, learning_curves.png (copied to FOLDER)
#   python FOLDER/plot.py FOLDER          -> the figure and results.md
# Needs `neurodyn` (pip install -e .) on PATH or in $NEURODYN, and the MNIST t10k IDX files
# in the folder $NEURODYN_DATA (neurodyn reads that variable).
# checkpoint.npz / metrics.npz stay in $SCRATCH; rerun with RESUME=1 to continue an
# interrupted run from its last evaluation.
set -euo pipefail
HERE="$(cd "$1" && pwd)"
NAME="$(basename "$HERE")"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${NEURODYN:-neurodyn}"
PY="${PYTHON:-python}"
SCRATCH="${SCRATCH:-${TMPDIR:-/tmp}/neurodyn_$NAME}"
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
cd "$ROOT"
start=$(date +%s)
status=0
"$BIN" train "experiments/$NAME/experiment.toml" --out "$SCRATCH" --no-progress ${RESUME:+--resume} || status=$?
# exit status 3: a rule diverged (non-finite weights); its curve stops there, the others are complete
[ "$status" -eq 0 ] || [ "$status" -eq 3 ] || exit "$status"
echo "neurodyn train: $(( $(date +%s) - start )) s wall"
cp "$SCRATCH"/metrics.csv "$SCRATCH"/summary.json "$SCRATCH"/learning_curves.png "$HERE"/
"$PY" "$HERE"/plot.py "$HERE"
