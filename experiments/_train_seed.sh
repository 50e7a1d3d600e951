#!/usr/bin/env bash
# Shared by the per-seed reproductions: `_train_seed.sh FILE OUT SEED` runs
#   neurodyn train FILE --seed SEED --out $SCRATCH/<OUT's last two folders>
# and copies metrics.csv and summary.json into OUT. Exit status 3 (a rule diverged: its
# curve stops there and summary.json says when) is accepted; any other failure stops.
# Needs `neurodyn` on PATH; checkpoints stay in $SCRATCH.
set -euo pipefail
file=$1 out=$2 seed=$3
SCRATCH="${SCRATCH:-$(cd "$(dirname "$0")/.." && pwd)/out/scratch}"
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
scratch="$SCRATCH/$(basename "$(dirname "$out")")/$(basename "$out")"
start=$(date +%s); status=0
neurodyn train "$file" --seed "$seed" --out "$scratch" --no-progress || status=$?
[ "$status" -eq 0 ] || [ "$status" -eq 3 ] || exit "$status"
echo "$(basename "$file") seed $seed: $(( $(date +%s) - start )) s wall"
mkdir -p "$out"
cp "$scratch"/metrics.csv "$scratch"/summary.json "$out"/
