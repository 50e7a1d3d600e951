"""Paper-style panels for Fig. 4a from metrics.csv (written by `neurodyn train`), and the
markdown tables of the README (test accuracy per epoch; final metrics, angle to BP and
S24 abscissa over training).

Usage: python plot.py [FOLDER]   (writes fig4a_mnist.png and results.md into FOLDER)
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _metrics import BASELINE_STYLE, load, value  # noqa: E402
from _metrics import series as _series  # noqa: E402

EPOCH = 8000  # online samples per epoch (split test-8k-2k)
STYLE = {
    **BASELINE_STYLE,
    "ndi_r_a0": dict(color="tab:blue", lw=1.5, label="NDI R-Init, leak 0"),
    "ndi_r_a1e-2": dict(color="goldenrod", lw=1.5, label="NDI R-Init, leak 1e-2"),
    "di_ssa_a0": dict(color="tab:blue", lw=2.2, ls="--", label="DI SSA, leak 0"),
    "di_ssa_a1e-2": dict(color="goldenrod", lw=2.2, ls="--", label="DI SSA, leak 1e-2"),
    "di_nl_ssa_a0": dict(color="tab:purple", lw=1.8, ls=":", label="DI nonlinear ctrl, SSA, leak 0"),
}


def series(rows, key):
    return _series(rows, key, EPOCH)


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main(folder):
    data = load(folder)
    labels = [k for k in STYLE if k in data] + [k for k in data if k not in STYLE]
    n_epochs = max(int(r["step"]) for rows in data.values() for r in rows) // EPOCH
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5), layout="constrained")
    panels = [
        ("test_accuracy", "test error (%) on the 2,000 held-out images", lambda v: 100.0 * (1.0 - v), True),
        ("test_loss", "test cross-entropy", None, True),
        ("train_loss", "training cross-entropy (first 500 training images)", None, True),
        ("angle_bp_W1", "angle of the W1 update to BP's (deg, 500 training images)", None, False),
        ("abscissa_S24_layer2", "max real eigenvalue of S24 [[-I, B], [W2, -alpha I]]", None, False),
        ("steady_state_stable", "DI: fraction of samples with a stable fixed point", None, False),
    ]
    for ax, (key, title, fn, log) in zip(axes.flat, panels):
        for label in labels:
            x, y = series(data[label], key)
            if fn is not None:
                y = [fn(v) for v in y]
            ax.plot(x, y, marker="o", ms=3, **STYLE.get(label, dict(label=label)))
        if log:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch (8,000 online samples)")
        ax.grid(alpha=0.3, which="both")
    axes[1, 1].axhline(0, color="k", lw=0.8)
    axes[1, 1].set_yscale("symlog", linthresh=1e-2)
    axes[1, 2].set_ylim(-0.05, 1.05)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(
        f"Fig. 4a reproduction: MNIST 784-1000-10 tanh-softmax, online, lr 1e-3, wd 1e-6, split test-8k-2k, {n_epochs} epochs (seed 0)"
    )
    fig.savefig(Path(folder) / "fig4a_mnist.png", dpi=90)

    epochs = range(n_epochs + 1)
    acc = ["| rule | " + " | ".join(f"ep {e}" for e in epochs) + " |", "|---" * (n_epochs + 2) + "|"]
    final = [
        "| rule | test acc. (%) | test loss | train loss | angle W1 to BP (deg): start / end / max | "
        "S24 abscissa: start / end / max over training | stable fixed points (min) | wall (s) |",
        "|---|---:|---:|---:|---|---|---:|---:|",
    ]
    for label in labels:
        rows = data[label]
        by_step = {int(r["step"]): r for r in rows}
        acc.append(
            f"| {label} | "
            + " | ".join(fmt(100 * value(by_step[e * EPOCH], "test_accuracy"), ".2f") if e * EPOCH in by_step else "-" for e in epochs)
            + " |"
        )
        last = rows[-1]
        ang = [value(r, "angle_bp_W1") for r in rows]
        sa = [value(r, "abscissa_S24_layer2") for r in rows if value(r, "abscissa_S24_layer2") is not None]
        st = [value(r, "steady_state_stable") for r in rows if value(r, "steady_state_stable") is not None]
        final.append(
            f"| {label} | {100 * value(last, 'test_accuracy'):.2f} | {value(last, 'test_loss'):.4f} | {value(last, 'train_loss'):.4f} | "
            f"{ang[0]:.1f} / {ang[-1]:.1f} / {max(ang):.1f} | "
            + (f"{sa[0]:+.4f} / {sa[-1]:+.4f} / {max(sa):+.4f}" if sa else "-")
            + f" | {fmt(min(st) if st else None, '.3f')} | {value(last, 'wall_s'):.0f} |"
        )
    text = (
        "Test accuracy (%) on the 2,000 held-out images after each epoch:\n\n"
        + "\n".join(acc)
        + "\n\nFinal values (after the last epoch); angle and S24 abscissa over all evaluations (every 2,000 samples); "
        "stable fixed points: smallest fraction, over evaluations, of the 500 evaluation samples whose DI steady state has "
        "a Jacobian with negative spectral abscissa; wall: training time of the rule incl. evaluations and compilation.\n\n"
        + "\n".join(final)
        + "\n"
    )
    (Path(folder) / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
