#!/usr/bin/env bash
# Shared by the rule comparisons: `_train_and_compare.sh FOLDER TITLE [NAME ...]` runs, for each
# NAME (default: experiment),
#   neurodyn train FOLDER/NAME.toml -> metrics.csv, summary.json, learning_curves.png
#   ../_rule_comparison.py          -> results.md, comparison.png
# into FOLDER (NAME = experiment) or FOLDER/NAME. Needs `neurodyn` on PATH and, for MNIST, the
# t10k IDX files in the folder $NEURODYN_DATA (neurodyn reads that variable).
# Checkpoints stay in $SCRATCH.
set -euo pipefail
HERE="$(cd "$1" && pwd)"
TITLE="$2"
shift 2
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SCRATCH="${SCRATCH:-${TMPDIR:-/tmp}/neurodyn_$(basename "$HERE")}"
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
cd "$ROOT"
for name in "${@:-experiment}"; do
  out="$HERE"; [ "$name" = experiment ] || out="$HERE/$name"
  mkdir -p "$out"
  start=$(date +%s); status=0
  neurodyn train "$HERE/$name.toml" --out "$SCRATCH/$name" --no-progress || status=$?
  # exit status 3: a rule diverged (non-finite weights); its curve stops there, the others are complete
  [ "$status" -eq 0 ] || [ "$status" -eq 3 ] || exit "$status"
  echo "$name: $(( $(date +%s) - start )) s wall"
  cp "$SCRATCH/$name"/metrics.csv "$SCRATCH/$name"/summary.json "$SCRATCH/$name"/learning_curves.png "$out"/
  python experiments/_rule_comparison.py "$out" "$out" --title "$TITLE ($name)"
done
