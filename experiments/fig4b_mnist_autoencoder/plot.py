"""Paper-style panels for Fig. 4b from metrics.csv (written by `neurodyn train`), and the
markdown table of the README (final losses, angles to BP and S24 abscissae over training).

Usage: python plot.py [FOLDER]   (writes fig4b_mnist_autoencoder.png and results.md into FOLDER)
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _metrics import BASELINE_STYLE, load, value  # noqa: E402
from _metrics import series as _series  # noqa: E402

EPOCH = 80  # updates of 100 images per epoch (8,000 training images)
STYLE = {
    **BASELINE_STYLE,
    "ndi_r_a1e-3": dict(color="tab:blue", lw=1.5, label="NDI R-Init, leak 1e-3"),
    "ndi_r_a1e-2": dict(color="goldenrod", lw=1.5, label="NDI R-Init, leak 1e-2"),
    "di_ssa_a1e-3": dict(color="tab:blue", lw=2.0, ls="--", label="DI SSA, leak 1e-3"),
    "di_ssa_a1e-2": dict(color="goldenrod", lw=2.0, ls="--", label="DI SSA, leak 1e-2"),
}
HIDDEN = range(1, 6)  # W1..W5 (W6 gets the output error itself under every rule)
LOOPS = range(2, 7)  # S24 loops of layers 2..6


def series(rows, key):
    return _series(rows, key, EPOCH)


def main(folder):
    data = load(folder)
    labels = [k for k in STYLE if k in data] + [k for k in data if k not in STYLE]
    n_epochs = max(int(r["step"]) for rows in data.values() for r in rows) / EPOCH
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5), layout="constrained")
    for ax, key, title in (
        (axes[0, 0], "train_loss", "training error 0.5||x - y||^2 (first 500 training images)"),
        (axes[0, 1], "test_loss", "test error 0.5||x - y||^2 (2,000 held-out images)"),
    ):
        for label in labels:
            x, y = series(data[label], key)
            ax.plot(x, y, marker="o", ms=2, **STYLE.get(label, dict(label=label)))
        ax.set_title(title, fontsize=10)
    for ax, l in zip((axes[0, 2], axes[1, 0]), (1, 3)):
        for label in labels:
            x, y = series(data[label], f"angle_bp_W{l}")
            ax.plot(x, y, marker="o", ms=2, **STYLE.get(label, dict(label=label)))
        ax.set_title(f"angle of the W{l} update to BP's (deg)", fontsize=10)
    ax = axes[1, 1]
    for label in labels:
        for l in LOOPS:
            x, y = series(data[label], f"abscissa_S24_layer{l}")
            if x:
                st = dict(STYLE.get(label, {}))
                st["label"] = f"{st.get('label', label)}, layer {l}" if l == 2 else None
                st["alpha"] = 0.4 + 0.12 * (l - 2)
                ax.plot(x, y, **st)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_title("max real eigenvalue of S24, layers 2-6 (each rule's B)", fontsize=10)
    ax = axes[1, 2]
    for label in labels:
        rows = data[label]
        ax.plot(range(1, 6), [value(rows[-1], f"angle_bp_W{l}") for l in HIDDEN], marker="o", **STYLE.get(label, dict(label=label)))
    ax.set_xticks(list(HIDDEN))
    ax.set_xlabel("layer")
    ax.set_title("final angle to BP per layer (deg)", fontsize=10)
    for ax in axes.flat[:5]:
        ax.set_xlabel("epoch (80 updates of 100 images)")
    for ax in axes.flat:
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(
        f"Fig. 4b reproduction: MNIST autoencoder 784-500-250-30-250-500-784, batch 100, lr 1e-6, split test-8k-2k, {n_epochs:g} epochs (seed 0)"
    )
    fig.savefig(Path(folder) / "fig4b_mnist_autoencoder.png", dpi=90)

    lines = [
        "| rule | train error start -> end | test error end | angle to BP, end (deg), W1..W5 | "
        "S24 abscissa, max over layers: start / end / max over training | DI fixed points: converged / stable, "
        "min over evaluations | wall (s) |",
        "|---|---|---:|---|---|---|---:|",
    ]
    for label in labels:
        rows = data[label]
        first, last = rows[0], rows[-1]
        angles = " / ".join(f"{value(last, f'angle_bp_W{l}'):.1f}" for l in HIDDEN)

        def worst(r):
            v = [value(r, f"abscissa_S24_layer{l}") for l in LOOPS]
            v = [x for x in v if x is not None]
            return max(v) if v else None

        sa = [worst(r) for r in rows]
        sa_text = "-" if sa[0] is None else f"{sa[0]:+.2e} / {sa[-1]:+.2e} / {max(sa):+.2e}"
        fixed = [(value(r, "steady_state_converged"), value(r, "steady_state_stable")) for r in rows]
        fixed_text = "-" if fixed[0][0] is None else f"{min(c for c, _ in fixed):.2f} / {min(v for _, v in fixed):.2f}"
        lines.append(
            f"| {label} | {value(first, 'train_loss'):.3f} -> {value(last, 'train_loss'):.3f} | {value(last, 'test_loss'):.3f} | "
            f"{angles} | {sa_text} | {fixed_text} | {value(last, 'wall_s'):.0f} |"
        )
    text = (
        "Errors: mean 0.5||x - y||^2 per image. Angles on the first 500 training images; S24 abscissa of each "
        "rule's feedback loops at the current weights (FA's B used as a DI feedback would be); wall: training "
        "time of the rule incl. evaluations and compilation.\n\n" + "\n".join(lines) + "\n"
    )
    (Path(folder) / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
