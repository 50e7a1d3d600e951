"""Table 1 of Meulemans et al. (2020) beside ours: test error (mean and standard deviation
over seeds) per rule, the angles of the updates to BP's and to the Gauss-Newton-target
update, the null-space fraction, and a figure of the test error and the angles over training.

    python experiments/meulemans2020_mnist/table.py OUT RUN [RUN ...]

RUN: `neurodyn train` output folders (one per seed). Writes OUT/results.md and OUT/curves.png.
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

# Meulemans et al. 2020, Table 1, MNIST column: test error (%), mean +- std over 10 seeds.
# Bartunov et al. (2018) report SDTP and AO-SDTP on MNIST with a different network (their
# Table 1, 3 hidden layers of 500/1000): kept out of this column.
PAPER = {
    "bp": "1.98 ± 0.14", "dfa": "2.17 ± 0.14", "dtp": "2.39 ± 0.19", "dtp_pretrained": "2.26 ± 0.18",
    "dtp_drl": "2.21 ± 0.09", "ddtp_linear": "2.04 ± 0.08", "ddtp_rhl": "2.10 ± 0.14", "ddtp_control": "2.51 ± 0.08",
}


def _stat(values, scale=1.0, spec=".2f") -> str:
    v = scale * np.asarray([x for x in values if np.isfinite(x)], float)
    if not v.size:
        return "–"
    if v.size == 1:
        return f"{v[0]:{spec}}"
    return f"{v.mean():{spec}} ± {v.std(ddof=1):{spec}}"


def _final(runs, label, key):
    return [r[label][key][-1] for r in runs if label in r and key in r[label]]


def _mean_hidden(runs, label, prefix, layers):
    """Per run: the final value of ``prefix<l>`` averaged over the hidden layers."""
    out = []
    for r in runs:
        cols = [r[label][f"{prefix}{l}"][-1] for l in layers if label in r and f"{prefix}{l}" in r[label]]
        if cols:
            out.append(float(np.mean(cols)))
    return out


def table(runs, statuses, labels, hidden) -> list[str]:
    lines = ["| rule | test error (%) ours | Meulemans 2020 Table 1 (%) | train loss | angle to BP, W_1 (deg) | "
             "angle to GN target, hidden layers (deg) | null-space fraction, hidden layers | status |",
             "|---|---|---|---|---|---|---|---|"]
    for label in labels:
        err = [1.0 - a for a in _final(runs, label, "test_accuracy")]
        status = ", ".join(sorted({s.get(label, "?") for s in statuses}))
        lines.append(
            f"| `{label}` | {_stat(err, 100)} | {PAPER.get(label, '–')} | {_stat(_final(runs, label, 'train_loss'), spec='.3f')} "
            f"| {_stat(_final(runs, label, 'angle_bp_W1'), spec='.1f')} | {_stat(_mean_hidden(runs, label, 'angle_gn_W', hidden), spec='.1f')} "
            f"| {_stat(_mean_hidden(runs, label, 'null_space_W', hidden), spec='.3f')} | {status} |")
    return lines


def figure(runs, labels, hidden, out: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    colors = plt.cm.tab10(np.linspace(0, 1, 10))
    panels = [("test error (%)", lambda c: 100 * (1 - c["test_accuracy"])),
              ("angle to BP, W_1 (deg)", lambda c: c["angle_bp_W1"]),
              ("angle to GN target, mean over hidden layers (deg)", lambda c: np.mean([c[f"angle_gn_W{l}"] for l in hidden], axis=0))]
    for ax, (ylabel, value) in zip(axes, panels):
        for i, label in enumerate(labels):
            curves = [value(r[label]) for r in runs if label in r]
            n = min(len(c) for c in curves)
            y = np.asarray([c[:n] for c in curves])
            step = runs[0][label]["step"][:n]
            ax.plot(step, np.nanmean(y, axis=0), color=colors[i % 10], ls="-" if i < 10 else "--", label=label)
            ax.fill_between(step, np.nanmin(y, axis=0), np.nanmax(y, axis=0), color=colors[i % 10], alpha=0.15)
        ax.set_xlabel("update (mini-batches of 128)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8, ncol=2)
    fig.suptitle(f"MNIST 784-5x256-10 tanh, SGD: mean and range over {len(runs)} seeds")
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("runs", type=Path, nargs="+")
    args = ap.parse_args(argv)
    runs = [read_metrics(r) for r in args.runs]
    statuses = [json.loads((r / "summary.json").read_text()).get("status", {}) for r in args.runs]
    labels = list(dict.fromkeys(label for r in runs for label in r))
    n_layers = max(int(k[len("angle_bp_W"):]) for r in runs for c in r.values() for k in c if k.startswith("angle_bp_W"))
    hidden = range(1, n_layers)
    lines = ["# MNIST (8k/2k), 784-5x256-10 tanh, SGD: ours beside Meulemans et al. 2020, Table 1", "",
             f"Final evaluation of {len(runs)} seeds: mean ± standard deviation over seeds. The paper: 10 seeds, "
             "55k training images, 100 epochs, Adam (README.md lists every difference). Angles on 128 probe samples; "
             "null-space fraction on 64 of them.", ""]
    lines += table(runs, statuses, labels, hidden)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    figure(runs, labels, hidden, args.out)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
