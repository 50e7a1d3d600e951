#!/usr/bin/env bash
# Regenerates the Fig. 4b reproduction (MNIST autoencoder, 4 rules, 10 epochs of mini-batches
# of 100): experiment.toml -> metrics.csv, summary.json, learning_curves.png; plot.py ->
# fig4b_mnist_autoencoder.png, results.md. Measured: rules sum to 38 min on a shared 2-core CPU
# at load 5-13 (see README.md).
# Environment (NEURODYN, PYTHON, NEURODYN_DATA, SCRATCH, RESUME=1): see ../_train_and_plot.sh.
exec "$(dirname "$0")/../_train_and_plot.sh" "$(dirname "$0")"
