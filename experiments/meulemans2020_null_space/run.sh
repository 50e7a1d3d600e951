#!/usr/bin/env bash
# Regenerates the Fig. 2 reproduction (Meulemans et al. 2020) for seeds 0-4:
#   neurodyn train experiment.toml --seed S -> seedS/ (metrics.csv, summary.json; ../_train_seed.sh)
#   per_sample.py                           -> seedS/per_sample.csv (per-sample fractions at the end,
#                                              package metric and an independent SVD computation)
#   plot.py                                 -> fig2_null_space.png and results.md
# Checkpoints stay in $SCRATCH; runtime.csv records the wall time of each seed.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export SCRATCH="${SCRATCH:-$ROOT/out/scratch}"
cd "$ROOT"
echo "seed,train_s,per_sample_s" > "$HERE/runtime.csv"
for seed in ${SEEDS:-0 1 2 3 4}; do
  t0=$(date +%s)
  bash experiments/_train_seed.sh "$HERE/experiment.toml" "$HERE/seed$seed" "$seed"
  t1=$(date +%s)
  python "$HERE/per_sample.py" "$HERE/experiment.toml" "$SCRATCH/meulemans2020_null_space/seed$seed" "$HERE/seed$seed" --seed "$seed"
  t2=$(date +%s)
  echo "$seed,$((t1 - t0)),$((t2 - t1))" >> "$HERE/runtime.csv"
  echo "seed $seed: train $((t1 - t0)) s, per-sample $((t2 - t1)) s wall"
done
python "$HERE/plot.py" "$HERE"
