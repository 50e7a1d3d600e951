"""Supplementary table and figure for the thesis student-teacher runs, beside the shared
``../_rule_comparison.py`` (final values): test loss at chosen points of the training
(curves that keep the runs which stopped early), and the target-propagation diagnostics of thesis 5.38-5.41 (figures 5.8 and 5.16).

    python details.py OUT RUN [RUN ...] --at 20000,60000,120000 [--title TEXT] [--per-epoch N]

Writes OUT/details.md and OUT/signals.png (median over the runs, band min-max).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from neurodyn.io.metrics import read_metrics  # noqa: E402


def fmt(v, spec=".3g"):
    v = np.asarray(v, float)
    v = v[np.isfinite(v)]
    if not v.size:
        return "–"
    return f"{np.median(v):{spec}}" if v.size == 1 else f"{np.median(v):{spec}} ({v.min():{spec}}–{v.max():{spec}})"


def at(curve, step):
    i = np.flatnonzero(curve["step"] == step)
    return curve["test_loss"][i[0]] if i.size else np.nan


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--at", required=True, help="comma-separated steps for the test-loss table")
    ap.add_argument("--per-epoch", type=int, default=0, help="mini-batches per epoch (labels the table in epochs)")
    ap.add_argument("--title", default="")
    args = ap.parse_args(argv)
    steps = [int(s) for s in args.at.split(",")]
    runs = [read_metrics(r) for r in args.runs]
    status = [json.loads((r / "summary.json").read_text())["status"] for r in args.runs]
    labels = list(dict.fromkeys(label for r in runs for label in r))

    def when(s):
        return f"{s // args.per_epoch} epochs" if args.per_epoch and s % args.per_epoch == 0 else f"{s} mini-batches"

    lines = [f"# {args.title or 'Details'}", "", f"{len(runs)} runs (seeds); median (min–max) over the runs that reached the point.", "",
             "## Test loss (0.5 ||h_L - t||^2, mean over the test set)", "",
             "| rule | start | " + " | ".join(when(s) for s in steps) + " | runs diverged |", "|---" * (len(steps) + 3) + "|"]
    for label in labels:
        row = [fmt([at(r[label], 0) for r in runs])] + [fmt([at(r[label], s) for r in runs]) for s in steps]
        bad = sum(s.get(label, "missing") != "completed" for s in status)
        lines.append(f"| `{label}` | " + " | ".join(row) + f" | {bad} of {len(runs)} |")
    lines += ["", "## Learning signal of the hidden layer (probe samples)", "",
              "Angles of the W_1 update to BP's and to the Gauss-Newton-target update: mean over the evaluations "
              "after the start. `e_rec`, `e_approx`: mean norms of the reconstruction and approximation errors of the "
              "hidden target (thesis 5.40-5.41), median over the evaluations after the start (feedback pre-training "
              "included for the learned-inverse rules).", "",
              "| rule | angle to GN (deg) | angle to BP (deg) | e_rec | e_approx |", "|---|---|---|---|---|"]
    for label in labels:
        vals = {k: [] for k in ("angle_gn_W1", "angle_bp_W1", "e_rec_h1", "e_approx_h1")}
        for r in runs:
            c = r[label]
            for k in vals:
                if k in c and np.any(np.isfinite(c[k][1:])):
                    agg = np.nanmean if k.startswith("angle") else np.nanmedian
                    vals[k].append(agg(c[k][1:]))
        lines.append(f"| `{label}` | {fmt(vals['angle_gn_W1'], '.1f')} | {fmt(vals['angle_bp_W1'], '.1f')} | "
                     f"{fmt(vals['e_rec_h1'], '.2g')} | {fmt(vals['e_approx_h1'], '.2g')} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "details.md").write_text("\n".join(lines) + "\n")

    # curves padded with NaN after a run stops (diverged), so the other runs still show
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6), layout="constrained")
    keys = ("test_loss", "e_approx_h1", "e_rec_h1")
    for i, label in enumerate(labels):
        for ax, key in zip(axes, keys):
            curves = [r[label] for r in runs if key in r[label] and np.any(np.isfinite(r[label][key]))]
            if not curves:
                continue
            x = max((c["step"] for c in curves), key=len)
            stack = np.full((len(curves), len(x)), np.nan)
            for j, c in enumerate(curves):
                stack[j, : len(c[key])] = c[key]
            stack = np.maximum(stack, 1e-17)
            n_ok = np.sum(np.isfinite(stack), axis=0)
            short = sum(len(c[key]) < len(x) for c in curves)
            name = label + (f" ({short} of {len(curves)} runs stopped)" if short and key == "test_loss" else "")
            ax.plot(x, np.nanmedian(stack, axis=0), color=f"C{i % 10}", ls="--" if label.startswith("bp") else "-", label=name)
            if len(curves) > 1:
                ax.fill_between(x, np.nanmin(stack, axis=0), np.nanmax(stack, axis=0), where=n_ok > 1, color=f"C{i % 10}", alpha=0.12)
    names = ("test loss", "||e_approx|| = ||hhat_1 - h_1 - e_TP|| (5.41)", "||e_rec|| = ||hhat_1(o) - h_1|| (5.40)")
    for ax, name in zip(axes, names):
        ax.set_yscale("log")
        ax.set_xlabel("mini-batches")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle((args.title + ": " if args.title else "") + "test loss and hidden-target errors (median over the runs at each point, band: min-max)")
    fig.savefig(args.out / "signals.png", dpi=100)
    plt.close(fig)
    print(f"wrote {args.out}/details.md, signals.png")


if __name__ == "__main__":
    main()
