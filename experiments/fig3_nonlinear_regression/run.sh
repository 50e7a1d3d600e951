#!/usr/bin/env bash
# Regenerates Fig. 3g-k (nonlinear regression) for the paper's teacher (paper_teacher/) and the
# input-dependent variant (teacher_scale1/). Run from anywhere; see README.md for the measured
# runtime. Pass config names (paper_teacher, teacher_scale1) to run only those.
# Writes metrics.csv, summary.json, learning_curves.png (neurodyn's panels) and
# fig3_nonlinear_regression.png (paper-style panels, ../_fig3_plot.py) into <config>/. The bulky
# checkpoint.npz / metrics.npz stay in the scratch folder $SCRATCH/<config>.
# Tools: $NEURODYN (default: `neurodyn` on PATH) and $PYTHON (default: `python` on PATH).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="${NEURODYN:-neurodyn}"
PY="${PYTHON:-python}"
SCRATCH="${SCRATCH:-$ROOT/out/scratch/fig3_nonlinear_regression}"
configs=("$@")
[ ${#configs[@]} -eq 0 ] && configs=(paper_teacher teacher_scale1)
cd "$ROOT"
status=0
for c in "${configs[@]}"; do
  start=$(date +%s)
  # a diverged rule makes `neurodyn train` exit non-zero after writing its results: keep going
  "$BIN" train "experiments/fig3_nonlinear_regression/$c.toml" --out "$SCRATCH/$c" --no-progress || status=$?
  echo "$c: training wall $(( $(date +%s) - start )) s"
  mkdir -p "$HERE/$c"
  cp "$SCRATCH/$c"/metrics.csv "$SCRATCH/$c"/summary.json "$SCRATCH/$c"/learning_curves.png "$HERE/$c/"
  "$PY" "$ROOT/experiments/_fig3_plot.py" nonlinear "$HERE/$c" "$HERE/$c.toml"
done
exit $status
