#!/usr/bin/env bash
# Regenerates Fig. 3a-f (linear regression). Run from anywhere; see README.md for the runtime.
#  1. experiment.toml (all rules, clipping ||delta|| <= 10)  -> metrics.csv, summary.json,
#     learning_curves.png (neurodyn's panels), fig3_linear_regression.png and results.md
#     (../_fig3_plot.py)
#  2. no_clip.toml (control: the rules without a circuit, no clipping) -> no_clip/
#  3. dynamics_check.py: integrates the DI circuits at the initial and trained weights
#     -> dynamics_check.md
# checkpoint.npz / metrics.npz stay in the scratch folder $SCRATCH.
# Tools: $NEURODYN (default: `neurodyn` on PATH) and $PYTHON (default: `python` on PATH).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
BIN="${NEURODYN:-neurodyn}"
PY="${PYTHON:-python}"
SCRATCH="${SCRATCH:-$ROOT/out/scratch/fig3_linear_regression}"
start=$(date +%s)
"$BIN" train experiments/fig3_linear_regression/experiment.toml --out "$SCRATCH/main" --no-progress
echo "experiment.toml: training wall $(( $(date +%s) - start )) s"
cp "$SCRATCH/main"/metrics.csv "$SCRATCH/main"/summary.json "$SCRATCH/main"/learning_curves.png "$HERE"/
"$PY" experiments/_fig3_plot.py linear "$HERE" "$HERE/experiment.toml"
start=$(date +%s)
# without clipping a rule may diverge; `neurodyn train` then exits non-zero after writing its results
"$BIN" train experiments/fig3_linear_regression/no_clip.toml --out "$SCRATCH/no_clip" --no-progress || echo "(no_clip.toml: a rule diverged, see no_clip/summary.json)"
echo "no_clip.toml: training wall $(( $(date +%s) - start )) s"
mkdir -p "$HERE/no_clip"
cp "$SCRATCH/no_clip"/metrics.csv "$SCRATCH/no_clip"/summary.json "$SCRATCH/no_clip"/learning_curves.png "$HERE/no_clip/"
start=$(date +%s)
"$PY" "$HERE"/dynamics_check.py "$SCRATCH/main"
echo "dynamics_check.py: wall $(( $(date +%s) - start )) s"
