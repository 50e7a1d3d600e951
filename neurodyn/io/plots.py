"""Figures (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

MAX_TRACE_PANELS = 6
MAX_UNITS = 5


def _positive(y: np.ndarray) -> np.ndarray:
    """Values for a log axis: exact zeros (e.g. weights frozen by a gate) become gaps."""
    y = np.asarray(y, dtype=float)
    return np.where(y > 0, y, np.nan)


def _mark_jumps(ax, jumps, label: bool = True) -> None:
    """Dashed vertical lines at the jump times (phase boundaries)."""
    for i, t in enumerate(jumps):
        ax.axvline(t, color="0.5", ls="--", lw=0.7, label="jump times (phase boundaries)" if label and i == 0 else None)


def convergence_plot(
    path: Path,
    ts: np.ndarray,
    distance: np.ndarray,
    rate: np.ndarray | None,
    traces: dict[str, np.ndarray],
    title: str,
    *,
    jumps=(),
    distance_label: str | None = None,
    rates: dict[str, np.ndarray] | None = None,
) -> None:
    """Distance to the fixed point and ``max|dy/dt|`` against t (log scale), then traces
    of a few units of each state variable (first sample). Time-dependent runs pass their
    ``jumps`` (drawn as dashed lines), a ``distance_label`` saying which fixed point is
    meant, and several labelled ``rates`` (e.g. neural and weights) instead of ``rate``."""
    names = list(traces)[:MAX_TRACE_PANELS]
    ncol = 3
    nrow = 1 + -(-len(names) // ncol)
    fig = plt.figure(figsize=(12, 3.2 * nrow), layout="constrained")
    grid = fig.add_gridspec(nrow, ncol)
    ax = fig.add_subplot(grid[0, :])
    ax.semilogy(ts, _positive(distance), label=distance_label or r"$\max|y(t) - y^*|$ (distance to fixed point)")
    curves = dict(rates or {})
    if rate is not None:
        curves[r"$\max|dy/dt|$"] = rate
    for label, r in curves.items():
        ax.semilogy(ts, _positive(r), label=label)
    _mark_jumps(ax, jumps)
    ax.set_xlabel("t")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8 if jumps else None)
    ax.grid(True, which="major", alpha=0.3)
    for i, name in enumerate(names):
        a = fig.add_subplot(grid[1 + i // ncol, i % ncol])
        y = traces[name].reshape(len(ts), -1)[:, :MAX_UNITS]
        a.plot(ts, y)
        _mark_jumps(a, jumps, label=False)
        a.set_title(f"{name} (first {y.shape[1]} units, sample 0)", fontsize=9)
        a.set_xlabel("t")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def weights_plot(
    path: Path,
    ts: np.ndarray,
    weights: dict[str, np.ndarray],
    initial: dict[str, np.ndarray],
    jumps,
    title: str,
    tau_w: dict[str, float] | None = None,
) -> None:
    """One row per plastic array: ``||W(t) - W(0)||_F`` against t, and the change
    ``W_ij(t) - W_ij(0)`` of the ``MAX_UNITS`` entries that changed most; jump times
    (phase boundaries) dashed."""
    names = list(weights)
    fig, axes = plt.subplots(len(names), 2, figsize=(12, 3.0 * len(names)), layout="constrained", squeeze=False)
    for row, name in zip(axes, names):
        W = weights[name].reshape(len(ts), -1)
        W0 = np.asarray(initial[name]).reshape(-1)
        change = np.linalg.norm(W - W0[None], axis=1)
        tau = f", tau_w = {tau_w[name]:g}" if tau_w else ""
        row[0].plot(ts, change)
        _mark_jumps(row[0], jumps)
        row[0].set_title(rf"{name}: $\|W(t) - W(0)\|_F${tau}", fontsize=9)
        row[0].set_xlabel("t")
        row[0].grid(alpha=0.3)
        if jumps:
            row[0].legend(fontsize=8)
        top = np.argsort(-np.abs(W[-1] - W0))[:MAX_UNITS]
        shape = np.asarray(initial[name]).shape
        for j in top:
            row[1].plot(ts, W[:, j] - W0[j], label=f"{name}{[int(i) for i in np.unravel_index(j, shape)]}")
        _mark_jumps(row[1], jumps, label=False)
        row[1].set_title(f"{name}: change W(t) - W(0) of the {len(top)} entries that changed most", fontsize=9)
        row[1].set_xlabel("t")
        row[1].legend(fontsize=7)
        row[1].grid(alpha=0.3)
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
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


_UNITS = (
    ("angle_", "degrees"), ("abscissa_", "max Re(eigenvalue)"), ("norm_", "Frobenius norm"), ("wall_per_update", "s per update"),
    ("steady_state_residual", "max |dy/dt|"), ("steady_state_", "fraction of samples"), ("test_accuracy", "fraction correct"),
    ("train_nmse", "normalised MSE"), ("train_loss", "loss"), ("test_loss", "loss"),
)


def learning_curves_plot(path: Path, rows: list[dict], title: str) -> None:
    """One panel per metric against the training step, one line per rule."""
    skip = {"rule", "step", "wall_s", "steady_state_converged"}
    metrics = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in skip]
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    ncol = 3
    nrow = -(-len(metrics) // ncol)
    height = 3.2 * nrow
    fig, axes = plt.subplots(nrow, ncol, figsize=(13, height), squeeze=False)
    # fixed margins (in inches) instead of constrained layout, which took half the drawing time
    fig.subplots_adjust(left=0.07, right=0.985, bottom=0.55 / height, top=1 - 0.75 / height, wspace=0.28, hspace=0.9 / 3.2 * 1.2)
    for ax, metric in zip(axes.flat, metrics):
        for rule in rules:
            pts = [(r["step"], r[metric]) for r in rows if r["rule"] == rule and metric in r and r[metric] is not None]
            if pts:
                x, y = zip(*pts)
                ax.plot(x, y, label=rule)
        if any(k in metric for k in ("loss", "nmse", "residual", "wall_per_update")):
            ax.set_yscale("log")
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("update (mini-batch)")
        ax.set_ylabel(next((unit for prefix, unit in _UNITS if metric.startswith(prefix)), ""), fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)


#: axis labels of a model sweep's metrics (time in units of the neural time constant tau)
SWEEP_METRICS = {
    "spectral_abscissa": "spectral abscissa at the fixed point (1/tau)", "residual": "residual of the fixed point, max |F(h*)|",
    "t_final": "time to steady state (tau)", "num_steps": "solver steps to steady state", "wall_time_s": "wall time per simulation (s)",
}


def sweep_plot(path: Path, summary: dict) -> None:
    """A sweep's final metric (mean over seeds, one standard deviation as a band) against
    its first swept option, one line per rule and value of the other swept options; without
    a numeric swept option, one point per setting and rule. Settings drawn at random (a
    random sweep or a search) are points with one standard deviation as error bars."""
    metric, swept = summary["metric"], summary["swept"]
    entries = [e for e in summary["settings"] if metric in e]
    fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    numeric = bool(swept) and all(isinstance(e["values"][swept[0]], (int, float)) for e in entries)
    lines: dict = {}
    for e in entries:
        rest = ", ".join(f"{p} = {e['values'][p]:.3g}" if isinstance(e["values"][p], float) else f"{p} = {e['values'][p]}" for p in swept[1:])
        who = e.get("rule") or e.get("kind", "")
        label = f"{who} ({rest})" if rest else who
        x = e["values"][swept[0]] if numeric else e["setting"]
        lines.setdefault(label, []).append((x, e[metric]["mean"], e[metric]["std"]))
    drawn = summary.get("mode", "grid") != "grid"  # settings drawn at random: points, not lines
    for label, pts in lines.items():
        x, m, s = (np.asarray(v, float) for v in zip(*sorted(pts)))
        if drawn:
            ax.errorbar(x, m, yerr=s, fmt="o", ms=4, capsize=2, label=label)
            continue
        (line,) = ax.plot(x, m, marker="o", label=label)
        ax.fill_between(x, m - s, m + s, color=line.get_color(), alpha=0.2, lw=0)
    for rule, b in summary.get("best", {}).items() if numeric and len(entries) > len(summary.get("best", {})) else ():
        ax.plot(b["values"][swept[0]], b[metric]["mean"], marker="*", ms=14, color="k", ls="none", zorder=5,
                label=f"best for {rule}" if len(summary["best"]) > 1 else "best setting")
    if numeric:
        xs = np.asarray([e["values"][swept[0]] for e in entries], float)
        if np.all(xs > 0) and xs.max() / xs.min() >= 10:
            ax.set_xscale("log")
        ax.set_xlabel(swept[0])
    else:
        ax.set_xlabel("setting (summary.json lists its values)")
    means = np.asarray([e[metric]["mean"] for e in entries], float)
    if means.size and np.all(means > 0) and means.max() / means.min() >= 100:
        ax.set_yscale("log")
    ax.set_ylabel(f"{SWEEP_METRICS.get(metric, 'final ' + metric.replace('_', ' '))}\n(mean +- 1 s.d. over seeds)")
    kind = {"grid": "grid sweep", "random": "random sweep", "optuna": "Optuna search"}[summary.get("mode", "grid")]
    ax.set_title(f"{kind} of {summary['file']}")
    ax.grid(alpha=0.3)
    if lines:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.savefig(path, dpi=110)
    plt.close(fig)
