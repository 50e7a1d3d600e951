#!/usr/bin/env bash
# Regenerates the "after" figures of this folder with the committed code:
#   neurodyn simulate (the packaged default model) -> convergence_after.png
#   neurodyn train all_rules.toml (20 rules, 300 updates; about 10 min on 2 cores) -> learning_curves_after.png
# The "before" figures were drawn the same way by the code of commit 3cea3e8 (before the redesign).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
SCRATCH="${SCRATCH:-${TMPDIR:-/tmp}/neurodyn}/figures"
neurodyn simulate --out "$SCRATCH/simulate" > /dev/null
cp "$SCRATCH/simulate/convergence.png" "$HERE/convergence_after.png"
status=0
neurodyn train "$HERE/all_rules.toml" --out "$SCRATCH/all_rules" --no-progress > /dev/null || status=$?
[ "$status" -eq 0 ] || [ "$status" -eq 3 ] || exit "$status"   # 3: a rule diverged, its curve stops there
cp "$SCRATCH/all_rules/learning_curves.png" "$HERE/learning_curves_after.png"
