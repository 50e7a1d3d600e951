#!/usr/bin/env bash
# Regenerates the thesis student-teacher reproductions (Meulemans 2019, sections 5.1.3 and
# 5.2.2) for seeds 0-2, one experiment file after the other:
#   exact_inverses.toml   -> exact/        (5.1.3: TP-EI, RTP-EI, GN, BP, frozen BP; online)
#   learned_inverses.toml -> learned/      (5.2.2, 6-6-6: TP-AI, DTP-AI, original TP/DTP, ...)
#   contracting.toml      -> contracting/  (5.2.2, 6-6-4)
# Each: neurodyn train FILE --seed S -> DIR/seedS/ (metrics.csv, summary.json, through
# ../_train_seed.sh); ../_rule_comparison.py -> DIR/results.md, DIR/comparison.png;
# details.py -> DIR/details.md, DIR/signals.png. Then check_exact_inverses.py (direct
# numpy checks of tp_exact against Gauss-Newton). Scratch outputs (checkpoints) go to $SCRATCH.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SCRATCH="${SCRATCH:-$ROOT/out/scratch/thesis_student_teacher_tp}"
SEEDS="${SEEDS:-0 1 2}"
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
cd "$ROOT"
total=$(date +%s)
run() {  # run FILE DIR TITLE AT PER_EPOCH
  local file=$1 dir=$2 title=$3 at=$4 per_epoch=$5 runs=()
  for seed in $SEEDS; do
    SCRATCH="$SCRATCH" bash experiments/_train_seed.sh "$HERE/$file" "$HERE/$dir/seed$seed" "$seed"
    runs+=("$HERE/$dir/seed$seed")
  done
  python experiments/_rule_comparison.py "$HERE/$dir" "${runs[@]}" --title "$title" --samples-label "mini-batches"
  python "$HERE/details.py" "$HERE/$dir" "${runs[@]}" --at "$at" --per-epoch "$per_epoch" --title "$title"
}
run exact_inverses.toml exact "thesis 5.1.3: student-teacher 6-6-6, exact inverses, online" 10000,30000,60000,120000 2000
run learned_inverses.toml learned "thesis 5.2.2: student-teacher 6-6-6, learned inverses, batches of 32" 1000,2000,4000,7000 0
run contracting.toml contracting "thesis 5.2.2: student-teacher 6-6-4 (contracting), learned inverses, batches of 32" 1000,2000,4000,7000 0
start=$(date +%s)
python "$HERE/check_exact_inverses.py" | tee "$HERE/check_exact_inverses.txt"
echo "checks: $(( $(date +%s) - start )) s wall"
echo "total: $(( $(date +%s) - total )) s wall"
