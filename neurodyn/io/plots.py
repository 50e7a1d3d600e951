"""Figures (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

MAX_TRACE_PANELS = 6
MAX_UNITS = 5


def convergence_plot(path: Path, ts: np.ndarray, distance: np.ndarray, rate: np.ndarray, traces: dict[str, np.ndarray], title: str) -> None:
    """Distance to the fixed point and ``max|dy/dt|`` against t (log scale), then traces
    of a few units of each state variable (first sample)."""
    names = list(traces)[:MAX_TRACE_PANELS]
    ncol = 3
    nrow = 1 + -(-len(names) // ncol)
    fig = plt.figure(figsize=(12, 3.2 * nrow), layout="constrained")
    grid = fig.add_gridspec(nrow, ncol)
    ax = fig.add_subplot(grid[0, :])
    tiny = np.finfo(float).tiny
    ax.semilogy(ts, np.maximum(distance, tiny), label=r"$\max|y(t) - y^*|$ (distance to fixed point)")
    ax.semilogy(ts, np.maximum(rate, tiny), label=r"$\max|dy/dt|$")
    ax.set_xlabel("t")
    ax.set_title(title)
    ax.legend(loc="upper right")
    ax.grid(True, which="major", alpha=0.3)
    for i, name in enumerate(names):
        a = fig.add_subplot(grid[1 + i // ncol, i % ncol])
        y = traces[name].reshape(len(ts), -1)[:, :MAX_UNITS]
        a.plot(ts, y)
        a.set_title(f"{name} (first {y.shape[1]} units, sample 0)", fontsize=9)
        a.set_xlabel("t")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def spectrum_plot(path: Path, spectra: dict[str, np.ndarray], target: float | None, title: str) -> None:
    """Eigenvalues in the complex plane (one marker set per entry of ``spectra``), with the
    imaginary axis and the stability target."""
    fig, ax = plt.subplots(figsize=(7, 5), layout="constrained")
    markers = iter(["o", "x", "+", "s"])
    for label, eig in spectra.items():
        eig = np.asarray(eig)
        ax.scatter(eig.real, eig.imag, marker=next(markers), s=22, label=f"{label} (abscissa {np.max(eig.real):.3g})")
    ax.axvline(0.0, color="k", lw=0.8)
    if target is not None:
        ax.axvline(target, color="tab:red", ls="--", lw=0.8, label=f"target {target:.3g}")
    ax.set_xlabel("Re(lambda)")
    ax.set_ylabel("Im(lambda)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def learning_curves_plot(path: Path, rows: list[dict], title: str) -> None:
    """One panel per metric against the training step, one line per rule."""
    skip = {"rule", "step", "wall_s", "steady_state_converged"}
    metrics = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in skip]
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    ncol = 3
    nrow = -(-len(metrics) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(13, 3.2 * nrow), layout="constrained", squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for rule in rules:
            pts = [(r["step"], r[metric]) for r in rows if r["rule"] == rule and metric in r and r[metric] is not None]
            if pts:
                x, y = zip(*pts)
                ax.plot(x, y, label=rule)
        if any(k in metric for k in ("loss", "nmse", "residual")):
            ax.set_yscale("log")
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
