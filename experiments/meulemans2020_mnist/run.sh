#!/usr/bin/env bash
# Regenerates the MNIST target-propagation comparison over seeds 0-4 with one sweep:
#   neurodyn sweep experiment.toml -> $SCRATCH/meulemans2020_mnist (the five seeds vmapped)
#   trial k (seed k)               -> seedk/ (metrics.csv, summary.json); the sweep's summary.json -> sweep_summary.json
#   table.py                       -> results.md and curves.png (mean +- std over the seeds)
# A killed run continues where it stopped when started again (--resume).
# Needs the MNIST t10k IDX files in $NEURODYN_DATA. Checkpoints stay in $SCRATCH.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
SCRATCH="${SCRATCH:-${TMPDIR:-/tmp}/neurodyn}"
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
out="$SCRATCH/meulemans2020_mnist"
resume=()
[ -f "$out/sweep.json" ] && resume=(--resume)
start=$(date +%s); status=0
neurodyn sweep "$HERE/experiment.toml" --out "$out" --workers 1 --no-progress "${resume[@]}" || status=$?
[ "$status" -eq 0 ] || [ "$status" -eq 3 ] || exit "$status"
echo "sweep of 5 seeds: $(( $(date +%s) - start )) s wall"
runs=()
for trial in "$out"/trials/trial_*; do
  seed=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["seed"])' "$trial/summary.json")
  mkdir -p "$HERE/seed$seed"
  cp "$trial"/metrics.csv "$HERE/seed$seed"/
  # the trial's summary, naming the experiment file by its path in the repository
  python -c 'import json, sys; s = json.load(open(sys.argv[1])); s["experiment_file"] = "experiments/meulemans2020_mnist/experiment.toml"; json.dump(s, open(sys.argv[2], "w"), indent=2)' \
    "$trial/summary.json" "$HERE/seed$seed/summary.json"
  runs+=("$HERE/seed$seed")
done
cp "$out"/summary.json "$HERE/sweep_summary.json"
python "$HERE/table.py" "$HERE" "${runs[@]}"
