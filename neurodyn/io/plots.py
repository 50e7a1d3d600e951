"""Figures (matplotlib, Agg backend)."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

MAX_TRACE_PANELS = 6
MAX_UNITS = 5
#: the time axis of every simulation figure (the vector fields are written with tau = 1)
TIME_LABEL = "time t (units of the neural time constant tau)"


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
    ax.semilogy(ts, _positive(distance), label=distance_label or r"$\max|y(t) - y^*|$ (distance to the fixed point)")
    curves = dict(rates or {})
    if rate is not None:
        curves[r"$\max|dy/dt|$"] = rate
    for label, r in curves.items():
        ax.semilogy(ts, _positive(r), label=label)
    _mark_jumps(ax, jumps)
    ax.set_xlabel(TIME_LABEL)
    ax.set_ylabel("distance (state units),\nrate (state units / tau)", fontsize=9)
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0.0)
    ax.grid(True, which="major", alpha=0.3)
    units = 0
    for i, name in enumerate(names):
        a = fig.add_subplot(grid[1 + i // ncol, i % ncol])
        y = traces[name].reshape(len(ts), -1)[:, :MAX_UNITS]
        units = max(units, y.shape[1])
        for j in range(y.shape[1]):
            a.plot(ts, y[:, j], color=f"C{j}", marker="." if len(ts) < 60 else None, ms=3)
        _mark_jumps(a, jumps, label=False)
        a.set_title(f"{name}: first {y.shape[1]} units, sample 0", fontsize=9)
        a.set_xlabel(TIME_LABEL, fontsize=8)
        a.set_ylabel(f"{name} (state units)", fontsize=8)
        a.grid(alpha=0.3)
    if units:
        fig.legend([plt.Line2D([], [], color=f"C{j}") for j in range(units)], [f"unit {j}" for j in range(units)],
                   loc="outside lower center", ncol=units, fontsize=8, frameon=False)
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
    """One row per plastic array: its distance ``||W(t) - W(0)||_F`` from the initial
    weights against t, and the change ``W_ij(t) - W_ij(0)`` of the ``MAX_UNITS`` entries
    that changed most (legend beside the panel); jump times (phase boundaries) dashed, named
    once in the figure's legend."""
    names = list(weights)
    fig, axes = plt.subplots(len(names), 2, figsize=(12.5, 2.9 * len(names) + 0.6), layout="constrained", squeeze=False)
    for row, name in zip(axes, names):
        W = weights[name].reshape(len(ts), -1)
        W0 = np.asarray(initial[name]).reshape(-1)
        change = np.linalg.norm(W - W0[None], axis=1)
        tau = f" (tau_w = {tau_w[name]:g} tau)" if tau_w else ""
        row[0].plot(ts, change, color="k", lw=1.4)
        row[0].set_title(f"{name}{tau}: distance from its initial value", fontsize=9)
        row[0].set_ylabel(rf"$\|{name}(t) - {name}(0)\|_F$" + "\n(weight units)", fontsize=8)
        top = np.argsort(-np.abs(W[-1] - W0))[:MAX_UNITS]
        shape = np.asarray(initial[name]).shape
        for k, j in enumerate(top):
            index = ", ".join(str(int(i)) for i in np.unravel_index(j, shape))
            row[1].plot(ts, W[:, j] - W0[j], color=f"C{k}", label=f"{name}[{index}]")
        row[1].set_title(f"{name}: the {len(top)} entries that changed most", fontsize=9)
        row[1].set_ylabel(f"{name}_ij(t) - {name}_ij(0)\n(weight units)", fontsize=8)
        row[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, title="entry [i, j]", title_fontsize=7)
        for ax in row:
            _mark_jumps(ax, jumps, label=False)
            ax.set_xlabel(TIME_LABEL, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    if len(jumps):
        fig.legend([plt.Line2D([], [], color="0.5", ls="--", lw=0.7)], ["jump times (phase boundaries)"],
                   loc="outside lower center", fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def spectrum_plot(path: Path, spectra: dict[str, np.ndarray], target: float | None, title: str) -> None:
    """Eigenvalues in the complex plane, one marker set per entry of ``spectra`` (before and
    after an optimisation: open and filled), each set's abscissa as a dotted line, the
    unstable half-plane shaded and the stability target dashed; a symmetric-log real axis
    where the real parts span more than three decades."""
    fig, ax = plt.subplots(figsize=(8.5, 5), layout="constrained")
    styles = iter([dict(marker="o", facecolors="none", edgecolors="tab:blue", s=36, lw=1.0),
                   dict(marker="o", color="tab:orange", s=12), dict(marker="x", color="tab:green", s=20),
                   dict(marker="+", color="tab:purple", s=24)])
    re_all = []
    for label, eig in spectra.items():
        eig = np.asarray(eig)
        st = next(styles)
        ax.scatter(eig.real, eig.imag, label=f"{label}: {eig.size} eigenvalues", zorder=3, **st)
        colour = st.get("edgecolors", st.get("color"))
        ax.axvline(float(np.max(eig.real)), color=colour, ls=":", lw=1.2, label=f"{label}: spectral abscissa {np.max(eig.real):.3g}")
        re_all.append(eig.real)
    re_all = np.concatenate(re_all) if re_all else np.zeros(1)
    if target is not None:
        ax.axvline(target, color="tab:red", ls="--", lw=1.0, label=f"target: abscissa below {target:.3g}")
    ax.axvline(0.0, color="k", lw=0.8)
    span = np.abs(re_all[re_all != 0])
    left = min(float(re_all.min()), 0.0)
    right = max(float(re_all.max()), target if target is not None else 0.0, 0.0)
    pad = 0.1 * (right - left) or 0.1
    if span.size and span.max() / span.min() > 1e3:
        ax.set_xscale("symlog", linthresh=float(span.min()))
        limits = (left * 1.5 if left < 0 else -span.min(), right * 1.5 if right > 0 else span.min())
    else:
        limits = (left - pad, right + pad)
    ax.axvspan(0.0, limits[1], color="tab:red", alpha=0.08, lw=0, label="unstable half-plane, Re > 0")
    ax.set_xlim(*limits)
    ax.set_xlabel("real part of the eigenvalue (1/tau; a mode decays as exp(Re t))")
    ax.set_ylabel("imaginary part (rad/tau)")
    fig.suptitle(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)


_UNITS = (
    ("angle_", "degrees"), ("abscissa_", "max Re(eigenvalue) (1/tau)"), ("norm_", "Frobenius norm"), ("wall_per_update", "s per update"),
    ("steady_state_residual", "max |dy/dt|"), ("steady_state_", "fraction of samples"), ("test_accuracy", "fraction correct"),
    ("train_nmse", "normalised MSE"), ("train_loss", "loss"), ("test_loss", "loss"), ("null_space", "fraction of the update"),
    ("e_rec", "relative error"), ("e_approx", "relative error"),
)

#: panel titles in words: (pattern with one layer number, title)
_TITLES = (
    (r"angle_bp_W(\d+)", "angle of the W{} update to BP's"), (r"angle_gn_W(\d+)", "angle of the W{} update to the Gauss-Newton-target update"),
    (r"null_space_W(\d+)", "null-space fraction of the W{} update"), (r"norm_W(\d+)", "Frobenius norm of W{}"),
    (r"e_rec_h(\d+)", "reconstruction error e_rec, layer {}"), (r"e_approx_h(\d+)", "Taylor-approximation error e_approx, layer {}"),
    (r"abscissa_S24_layer(\d+)", "spectral abscissa of S24, layer {}"), (r"norm_(\w+)", "Frobenius norm of the learned {}"),
)
_WORDS = {
    "train_loss": "training loss", "test_loss": "test loss", "test_accuracy": "test accuracy", "train_nmse": "normalised training error",
    "steady_state_residual": "steady-state residual of the circuit", "steady_state_stable": "fraction of samples at a stable fixed point",
    "wall_per_update_s": "wall time per update",
}
#: below these an angle (arccos near 1) or a null-space fraction is rounding noise, drawn as 0
ANGLE_NOISE_DEG = 1e-2
FRACTION_NOISE = 1e-6
_FAMILY_MAPS = ("Blues", "Oranges", "Greens", "Purples", "Reds", "Greys", "YlOrBr", "PuRd")
_STYLES = ("-", "--", ":", "-.")


def metric_title(metric: str) -> str:
    """A metrics column as words (``angle_bp_W1``: "angle of the W1 update to BP's")."""
    if metric in _WORDS:
        return _WORDS[metric]
    for pattern, title in _TITLES:
        m = re.fullmatch(pattern, metric)
        if m:
            return title.format(m.group(1))
    return metric.replace("_", " ")


def rule_styles(rules: list[str], families: dict[str, str]) -> dict[str, dict]:
    """A colour and line style per rule that stay distinct for many rules: one colour map
    per family (shades from dark to light), line styles cycling within a family."""
    by_family: dict[str, list[str]] = {}
    for rule in rules:
        by_family.setdefault(families.get(rule, "other"), []).append(rule)
    styles = {}
    for f, (family, members) in enumerate(by_family.items()):
        cmap = plt.get_cmap(_FAMILY_MAPS[f % len(_FAMILY_MAPS)])
        shades = np.linspace(0.95, 0.4, len(members)) if len(members) > 1 else [0.8]
        for i, (rule, shade) in enumerate(zip(members, shades)):
            styles[rule] = {"color": cmap(shade), "ls": _STYLES[i % len(_STYLES)], "family": family}
    return styles


def learning_curves_plot(path: Path, rows: list[dict], title: str, families: dict[str, str] | None = None) -> None:
    """One panel per metric against the training step, one line per rule; rules coloured
    by family (``families``: label -> family), one legend outside the panels, angles and
    null-space fractions at rounding noise drawn as 0, log axes where values span
    decades, titles in words."""
    skip = {"rule", "step", "wall_s", "steady_state_converged"}
    metrics = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in skip]
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    styles = rule_styles(rules, families or {})
    ncol = 3
    nrow = -(-len(metrics) // ncol)
    height = max(3.0 * nrow, 0.22 * (len(rules) + 2 * len({v["family"] for v in styles.values()})) + 1.5)
    legend_w = 2.6
    fig, axes = plt.subplots(nrow, ncol, figsize=(13 + legend_w, height), squeeze=False)
    # fixed margins (in inches) instead of constrained layout, which took half the drawing time
    fig.subplots_adjust(left=0.06, right=1 - (legend_w + 0.2) / (13 + legend_w), bottom=0.55 / height, top=1 - 0.75 / height,
                        wspace=0.3, hspace=0.9 / 3.0 * 1.25)
    for ax, metric in zip(axes.flat, metrics):
        for rule in rules:
            pts = [(r["step"], r[metric]) for r in rows if r["rule"] == rule and metric in r and r[metric] is not None]
            if pts:
                x, y = (np.asarray(v, float) for v in zip(*pts))
                if metric.startswith("angle_"):
                    y = np.where(np.abs(y) < ANGLE_NOISE_DEG, 0.0, y)
                elif metric.startswith("null_space"):
                    y = np.where(np.abs(y) < FRACTION_NOISE, 0.0, y)
                st = styles[rule]
                ax.plot(x, np.where(np.isfinite(y), y, np.nan), color=st["color"], ls=st["ls"], lw=1.4, label=rule)
        if any(k in metric for k in ("loss", "nmse", "residual", "wall_per_update")):
            ax.set_yscale("log")
        elif not metric.startswith(("angle_", "null_space", "steady_state_stable", "test_accuracy")):
            _log_if_decades(ax)
        ax.set_title(metric_title(metric), fontsize=9)
        ax.set_xlabel("update (mini-batch)", fontsize=8)
        ax.set_ylabel(next((unit for prefix, unit in _UNITS if metric.startswith(prefix)), ""), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    handles, labels = [], []
    for family in dict.fromkeys(v["family"] for v in styles.values()):
        handles.append(plt.Line2D([], [], ls="none"))
        labels.append(family)
        for rule in rules:
            if styles[rule]["family"] == family:
                handles.append(plt.Line2D([], [], color=styles[rule]["color"], ls=styles[rule]["ls"], lw=1.6))
                labels.append(f"  {rule}")
    legend = fig.legend(handles, labels, loc="upper right", bbox_to_anchor=(1.0, 1 - 0.75 / height), fontsize=8, frameon=False, handlelength=2.4)
    for text, label in zip(legend.get_texts(), labels):
        if not label.startswith("  "):
            text.set_fontweight("bold")
    fig.suptitle(f"{title}: learning curves", y=1 - 0.2 / height)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _log_if_decades(ax, decades: float = 3.0) -> None:
    """A log axis where the non-negative values drawn span more than ``decades`` (symmetric
    log, linear below the smallest positive value, where some are exactly zero)."""
    ys = np.concatenate([np.asarray(line.get_ydata(), float) for line in ax.get_lines()] or [np.zeros(0)])
    ys = ys[np.isfinite(ys)]
    pos = ys[ys > 0]
    if not pos.size or np.any(ys < 0) or pos.max() / pos.min() <= 10**decades:
        return
    if np.all(ys > 0):
        ax.set_yscale("log")
    else:
        ax.set_yscale("symlog", linthresh=float(pos.min()))


#: axis labels of a model sweep's metrics (time in units of the neural time constant tau)
SWEEP_METRICS = {
    "spectral_abscissa": "spectral abscissa at the fixed point (1/tau)", "residual": "residual of the fixed point, max |F(h*)|",
    "t_final": "time to steady state (tau)", "num_steps": "solver steps to steady state", "wall_time_s": "wall time per simulation (s)",
}


def sweep_plot(path: Path, summary: dict) -> None:
    """A sweep's final metric (mean over seeds, one standard deviation as a band) against
    its first swept option (one tick per value where its values are not numbers), one line
    per rule and value of the other swept options (for settings drawn at random, one colour
    per rule); without a swept option, one point per setting and rule. Settings drawn at random (a
    random sweep or a search) are points with one standard deviation as error bars."""
    metric, swept = summary["metric"], summary["swept"]
    entries = [e for e in summary["settings"] if metric in e]
    fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    kind = {"grid": "grid sweep", "random": "random sweep", "optuna": "Optuna search"}[summary.get("mode", "grid")]
    ax.set_title(f"{kind} of {summary['file']}")
    if not entries:  # every trial failed: say so instead of drawing empty axes
        ax.text(0.5, 0.5, "no setting has a completed trial\n(summary.json counts the failed ones)", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    numeric = bool(swept) and all(isinstance(e["values"][swept[0]], (int, float)) and not isinstance(e["values"][swept[0]], bool) for e in entries)
    # a swept option whose values are not numbers (a list of layer sizes, a name): one tick per value
    categories = list(dict.fromkeys(str(e["values"][swept[0]]) for e in entries)) if swept and not numeric else []
    position = (lambda values: values[swept[0]]) if numeric else (lambda values: categories.index(str(values[swept[0]])))
    drawn = summary.get("mode", "grid") != "grid"  # settings drawn at random: points, not lines
    lines: dict = {}
    for e in entries:
        rest = ", ".join(f"{p} = {e['values'][p]:.3g}" if isinstance(e["values"][p], float) else f"{p} = {e['values'][p]}" for p in swept[1:])
        who = e.get("rule") or e.get("kind", "")
        # drawn settings differ in every option: one colour per rule (summary.json has the values)
        label = f"{who} ({rest})" if rest and not drawn else who
        x = position(e["values"]) if swept else e["setting"]
        lines.setdefault(label, []).append((x, e[metric]["mean"], e[metric]["std"]))
    for label, pts in lines.items():
        x, m, s = (np.asarray(v, float) for v in zip(*sorted(pts)))
        if drawn:
            ax.errorbar(x, m, yerr=s, fmt="o", ms=4, capsize=2, label=label)
            continue
        (line,) = ax.plot(x, m, marker="o", label=label)
        ax.fill_between(x, m - s, m + s, color=line.get_color(), alpha=0.2, lw=0)
    best = summary.get("best", {}) if swept and len(entries) > len(summary.get("best", {})) else {}
    for i, b in enumerate(best.values()):
        ax.plot(position(b["values"]), b[metric]["mean"], marker="*", ms=14, color="k", ls="none", zorder=5,
                label=("best setting of each rule" if len(best) > 1 else "best setting") if i == 0 else None)
    if numeric:
        xs = np.asarray([e["values"][swept[0]] for e in entries], float)
        if np.all(xs > 0) and xs.max() / xs.min() >= 10:
            ax.set_xscale("log")
        ax.set_xlabel(swept[0])
    elif categories:
        long = max(map(len, categories)) > 12 or len(categories) > 6
        ax.set_xticks(range(len(categories)), categories, rotation=30 if long else 0, ha="right" if long else "center")
        ax.set_xlabel(swept[0])
    else:
        ax.set_xlabel("setting (summary.json lists its values)")
    means = np.asarray([e[metric]["mean"] for e in entries], float)
    means = means[np.isfinite(means)]  # a completed trial may still report an infinite loss
    if means.size and np.all(means > 0) and means.max() / means.min() >= 100:
        ax.set_yscale("log")
    ax.set_ylabel(f"{SWEEP_METRICS.get(metric, 'final ' + metric.replace('_', ' '))}\n(mean +- 1 s.d. over seeds)")
    ax.grid(alpha=0.3)
    if lines:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.savefig(path, dpi=110)
    plt.close(fig)
