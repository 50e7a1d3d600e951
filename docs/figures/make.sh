#!/usr/bin/env bash
# Regenerates the "after" figures of this folder with the committed code:
#   neurodyn simulate (the packaged default model) -> convergence_after.png
#   neurodyn train all_rules.toml (20 rules, 300 updates; about 10 min on 2 cores) -> learning_curves_after.png
#   neurodyn stability --optimize B1 on models/dynamic_inversion_expanding.toml with an
#     unstable random B1 -> spectrum_after.png
#   neurodyn simulate models/dendritic_mixture_two_phase.toml -> weights_after.png
# The "before" figures were drawn by the same commands with the code before each redesign
# (commit 3cea3e8 for convergence and learning curves, 04c18c1 for spectrum and weights).
# Run from the repository root, or set SKIP_TRAIN=1 to leave the learning curves alone.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SCRATCH="${SCRATCH:-$ROOT/out/scratch}/figures"
neurodyn simulate --out "$SCRATCH/simulate" > /dev/null
cp "$SCRATCH/simulate/convergence.png" "$HERE/convergence_after.png"
neurodyn stability "$ROOT/models/dynamic_inversion_expanding.toml" --optimize B1 \
    --set 'arrays.B1={init="uniform",low=-1.0,high=1.0,seed=3}' --out "$SCRATCH/stability" --no-progress > /dev/null
cp "$SCRATCH/stability/spectrum.png" "$HERE/spectrum_after.png"
neurodyn simulate "$ROOT/models/dendritic_mixture_two_phase.toml" --out "$SCRATCH/mixture" --no-progress > /dev/null
cp "$SCRATCH/mixture/weights.png" "$HERE/weights_after.png"
if [ "${SKIP_TRAIN:-0}" != 1 ]; then
    status=0
    neurodyn train "$HERE/all_rules.toml" --out "$SCRATCH/all_rules" --no-progress > /dev/null || status=$?
    [ "$status" -eq 0 ] || [ "$status" -eq 3 ] || exit "$status"   # 3: a rule diverged, its curve stops there
    cp "$SCRATCH/all_rules/learning_curves.png" "$HERE/learning_curves_after.png"
fi
