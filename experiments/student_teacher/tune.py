"""Small learning-rate grid for experiments/student_teacher/run.py (tuning seeds 100, 101,
disjoint from the evaluation seeds 0..4; 1000 online samples). Prints, per learner and
rate, the median final train loss (0.5 ||h_2 - t||^2) and the number of diverged seeds;
writes tune.json next to this file. README.md says how run.py's LR follows from it
(and where it departs from the grid).

Usage:  python experiments/student_teacher/tune.py [--samples 1000] [--methods ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import run as R

GRID = {
    "bp": (0.001, 0.003, 0.01),
    "bp_frozen": (0.001, 0.003, 0.01),
    "mixture_single_exact": (0.001, 0.003, 0.01),
    "mixture_single_learned": (0.003, 0.01),
    "mixture_two_learned": (0.003, 0.01),
    "burst": (0.001, 0.003, 0.01),
    "cdtp": (0.01, 0.02),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--methods", nargs="*", default=list(GRID))
    args = ap.parse_args()
    weights, xs, ts, data = R.stack_seeds([100, 101], args.samples)
    out_file = Path(__file__).resolve().parent / "tune.json"
    out = json.loads(out_file.read_text()) if out_file.exists() else {}
    for m in args.methods:
        for lr in GRID[m]:
            t0 = time.perf_counter()
            metrics, _ = R.run_method(m, lr, weights, xs, ts, data, evals=1)
            fin = metrics["train_loss"][:, -1]
            bad = int(np.sum(~np.isfinite(fin) | (fin > metrics["train_loss"][:, 0])))
            out.setdefault(m, {})[str(lr)] = {"train_loss_final_median": float(np.median(fin)), "diverged": bad}
            print(f"{m:24s} lr {lr:<6g} final train loss {np.median(fin):10.4g}  diverged {bad}  ({time.perf_counter() - t0:.0f} s)", flush=True)
            out_file.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
