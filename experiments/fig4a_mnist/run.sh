#!/usr/bin/env bash
# Regenerates the Fig. 4a reproduction (MNIST 784-1000-10, 6 rule variants, 3 epochs):
# experiment.toml -> metrics.csv, summary.json, learning_curves.png; plot.py -> fig4a_mnist.png,
# results.md. Measured: rules sum to 44 min on a shared 2-core CPU at load 6-13 (see README.md).
# Environment (NEURODYN, PYTHON, NEURODYN_DATA, SCRATCH, RESUME=1): see ../_train_and_plot.sh.
exec "$(dirname "$0")/../_train_and_plot.sh" "$(dirname "$0")"
