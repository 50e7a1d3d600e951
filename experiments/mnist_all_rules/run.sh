#!/usr/bin/env bash
# Regenerates the all-rules MNIST comparison: metrics.csv, summary.json, learning_curves.png,
# results.md, comparison.png (see ../_train_and_compare.sh for NEURODYN_DATA and SCRATCH).
exec "$(dirname "$0")/../_train_and_compare.sh" "$(dirname "$0")" "MNIST (PCA-50), 50-64-32-10, online" experiment
