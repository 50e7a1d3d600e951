#!/usr/bin/env bash
# Regenerates the small-MNIST comparison (experiment.toml -> this folder) and the burst-
# multiplexing diagnosis (burst_diagnosis.toml -> burst_diagnosis/): metrics.csv, summary.json,
# learning_curves.png, results.md, comparison.png (see ../_train_and_compare.sh).
exec "$(dirname "$0")/../_train_and_compare.sh" "$(dirname "$0")" "PCA-50 MNIST, 50-64-10, online" experiment burst_diagnosis
