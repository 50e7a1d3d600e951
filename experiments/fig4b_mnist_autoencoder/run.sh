#!/usr/bin/env bash
# Regenerates the Fig. 4b reproduction (MNIST autoencoder, 4 rules, 10 epochs of mini-batches of 100).
# Measured: rules sum to 38 min on a shared 2-core CPU at load 5-13 (see README.md).
#   neurodyn train experiment.toml -> metrics.csv, summary.json, learning_curves.png
#   plot.py                         -> fig4b_mnist_autoencoder.png, results.md
# Needs `neurodyn` (pip install -e .) on PATH or in $NEURODYN, and the MNIST t10k IDX files
# in $NEURODYN_DATA (default: ../shared/data/mnist next to the repository).
# checkpoint.npz / metrics.npz stay in $SCRATCH; rerun with RESUME=1 to continue an
# interrupted run from its last evaluation.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="${NEURODYN:-neurodyn}"
PY="${PYTHON:-python}"
DATA="${NEURODYN_DATA:-$ROOT/../shared/data/mnist}"
SCRATCH="${SCRATCH:-${TMPDIR:-/tmp}/neurodyn_fig4b_mnist_autoencoder}"
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
cd "$ROOT"
start=$(date +%s)
status=0
"$BIN" train experiments/fig4b_mnist_autoencoder/experiment.toml --out "$SCRATCH" --data-dir "$DATA" --no-progress ${RESUME:+--resume} || status=$?
# exit status 3: a rule diverged (non-finite weights); its curve stops there, the others are complete
[ "$status" -eq 0 ] || [ "$status" -eq 3 ] || exit "$status"
echo "neurodyn train: $(( $(date +%s) - start )) s wall"
cp "$SCRATCH"/metrics.csv "$SCRATCH"/summary.json "$SCRATCH"/learning_curves.png "$HERE"/
"$PY" "$HERE"/plot.py "$HERE"
