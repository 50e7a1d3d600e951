"""Paper-style panels and result tables for the Fig. 3 reproductions (supplement 7.7.2-7.7.3),
from the metrics.csv / summary.json that `neurodyn train` writes.

Usage: python experiments/_fig3_plot.py linear|nonlinear FOLDER [EXPERIMENT.toml]
Writes FOLDER/fig3_<kind>_regression.png and FOLDER/results.md (the tables of the README).

Rule labels are `<rule>_<init>_a<leak>` (init r = R-Init, nt = negative transpose, ssa = R-Init
stabilised by SSA) plus bp, pbp, fa_r, fa_nt. Colours follow Table 1: leak 0 blue, 1e-3 yellow,
1e-2 red; NDI solid, DI dashed (DI's steady state equals NDI's here, so dashed lies on solid),
SLDI dash-dot; in the stability panels negative-transpose feedback is dotted.
"""

import json
import sys
import tomllib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _metrics import BASELINE_STYLE  # noqa: E402

from neurodyn.io.metrics import read_metrics  # noqa: E402

LEAK = {"a0": ("tab:blue", "0"), "a1e-3": ("goldenrod", "1e-3"), "a1e-2": ("tab:red", "1e-2")}
FIXED = {
    **BASELINE_STYLE,
    "fa_nt": dict(color="tab:green", lw=1.5, label="FA (-50 W^T)"),
    "di_ssa_a0": dict(color="tab:purple", lw=1.5, ls="-.", label="DI SSA, leak 0"),
    "di_r_a0_ode": dict(color="tab:cyan", lw=1.5, ls=":", label="DI leak 0, method ode"),
}
LINESTYLE = {"ndi": "-", "di": "--", "sldi": "-."}
CIRCUIT_RULES = ("di_", "sldi_")


def style(label, stability=False):
    if label in FIXED:
        return dict(FIXED[label])
    rule, init, leak = label.split("_")
    color, text = LEAK[leak]
    st = dict(color=color, ls=LINESTYLE[rule], lw=1.4 if rule == "ndi" else 2.0, label=f"{rule.upper()} leak {text}")
    if stability:
        st["label"] += f" ({init})"
        if init == "nt" and rule == "di":
            st["ls"] = ":"
    return st


def load(folder):
    """``{label: {column: np.array}}`` (:func:`neurodyn.io.metrics.read_metrics`), without the
    columns that only other rules fill."""
    data = {}
    for label, cols in read_metrics(folder).items():
        data[label] = {k: v for k, v in cols.items() if not np.all(np.isnan(v))}
        absc = [v for k, v in data[label].items() if k.startswith("abscissa_S24_layer")]
        if absc:
            data[label]["abscissa_max"] = np.max(absc, axis=0)
    # test error normalised like the training error (7.7.2): by its largest value over rules and evaluations
    peak = max(np.nanmax(d["test_loss"]) for d in data.values())
    for d in data.values():
        d["test_nmse"] = d["test_loss"] / peak
    return data


def family(data, init):
    """BP, PBP and the rules with feedback ``init`` ("r": R-Init and SSA, "nt": negative transpose)."""
    inits = ("_r_", "_ssa_") if init == "r" else ("_nt",)
    return [k for k in data if k in ("bp", "pbp") or any(s in k + "_" for s in inits)]


def panel(ax, data, labels, key, title, stability=False):
    for i, label in enumerate(labels):
        d = data[label]
        if key not in d:
            continue
        spread = 0.04 * i / max(len(labels) - 1, 1) - 0.02  # separates overlapping stable fractions
        y = d[key] + (spread if key == "steady_state_stable" else 0.0)
        ax.plot(d["step"], y, **style(label, stability))
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("iteration")
    ax.grid(alpha=0.3)
    if key.endswith("nmse"):
        ax.set_yscale("log")
    if key == "abscissa_max":
        ax.axhline(0, color="k", lw=0.8)
        ax.set_yscale("symlog", linthresh=1e-4)
    if key == "steady_state_stable":
        ax.set_ylim(-0.05, 1.05)
    if key.endswith("nmse") or stability:
        ax.legend(fontsize=6.5, ncol=2)


def figure(kind, data, folder, title):
    circuits = [k for k in data if k.startswith(CIRCUIT_RULES)]
    panels = [
        ("train_nmse", "r", "training NMSE, R-Init feedback"),
        ("train_nmse", "nt", "training NMSE, negative-transpose feedback" + (" (SLDI: B = -B1 B2)" if kind == "nonlinear" else "")),
        ("angle_bp_W1", "r", "angle of the W1 update to BP's (deg), R-Init"),
        ("angle_bp_W1", "nt", "angle of the W1 update to BP's (deg), neg. transpose"),
    ]
    if kind == "nonlinear":
        panels += [
            ("angle_bp_W2", "r", "angle of the W2 update to BP's (deg), R-Init"),
            ("angle_bp_W2", "nt", "angle of the W2 update to BP's (deg), neg. transpose"),
        ]
    panels += [
        ("abscissa_max", None, "circuit rules: S24 spectral abscissa (max over loops)"),
        ("steady_state_stable", None, "circuit rules: fraction of samples with a stable fixed point\n(lines spread over +-0.02 to separate them)"),
    ]
    ncol = len(panels) // 2
    fig, axes = plt.subplots(2, ncol, figsize=(4.8 * ncol, 8.5), layout="constrained")
    for ax, (key, init, text) in zip(axes.T.ravel(), panels):
        panel(ax, data, circuits if init is None else family(data, init), key, text, stability=init is None)
    fig.suptitle(title)
    out = Path(folder) / f"fig3_{kind}_regression.png"
    fig.savefig(out, dpi=80)
    print(f"wrote {out}")


def first_below(d, threshold):
    hit = np.nonzero(d["train_nmse"] <= threshold)[0]
    return f"{int(d['step'][hit[0]])}" if hit.size else "never"


def markdown(title, notes, header, rows):
    lines = [f"### {title}", "", *notes, "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows] + [""]


def tables(data, summary):
    status = summary.get("status", {})
    angles = [k for k in next(iter(data.values())) if k.startswith("angle_bp_W")][:-1]  # the output layer's is 0
    steps = next(iter(data.values()))["step"]
    marks = [int(steps[np.argmin(np.abs(steps - f * steps[-1]))]) for f in (0.05, 0.1, 0.25, 0.5)]
    fmt = lambda v: "" if np.isnan(v) else f"{v:.2e}"  # noqa: E731
    half = lambda d, k: np.nanmean(d[k][d["step"] >= d["step"][-1] / 2])  # noqa: E731
    errors, stability = [], []
    for label, d in data.items():
        at = [fmt(d["train_nmse"][d["step"] == m][0]) if m in d["step"] else "" for m in marks]
        errors.append([label, status.get(label, ""), f"{int(d['step'][-1])}", *map(fmt, (d[k][-1] for k in ("train_loss", "test_loss", "train_nmse", "test_nmse"))),
                       *at, first_below(d, 1e-2), first_below(d, 1e-4)])
        absc = ""
        if "abscissa_max" in d:
            absc = f"{d['abscissa_max'][0]:+.2e} / {np.max(d['abscissa_max']):+.2e} / {d['abscissa_max'][-1]:+.2e}"
        stable = f"{np.nanmin(d['steady_state_stable']):.2f}" if "steady_state_stable" in d else ""
        stability.append([label, *(f"{d[a][0]:.1f} / {half(d, a):.1f} / {d[a][-1]:.1f}" for a in angles),
                          "(no loop)" if label.startswith("fa_") else absc, stable])
    out = markdown(
        "Errors (last evaluation)",
        ["NMSE = loss / largest loss over all rules and evaluations (train and test normalised separately);",
         "`NMSE<=1e-2`, `NMSE<=1e-4`: first evaluated iteration at which the training NMSE is at most that."],
        ["rule", "status", "iters", "train loss", "test loss", "train NMSE", "test NMSE", *(f"NMSE @ {m}" for m in marks), "NMSE<=1e-2", "NMSE<=1e-4"],
        errors,
    )
    out += markdown(
        "Alignment with BP and stability",
        ["Angles (deg) between the rule's and BP's weight update on the evaluation samples: at the start, mean over",
         "the second half of training, last. S24 abscissa: largest real eigenvalue of the block matrices",
         "[[-I, B_l], [W_l, -alpha I]] (max over loops) at the start / largest over training / last; > 0 = the",
         "loop is unstable. `stable`: smallest fraction over training of evaluation samples whose fixed point",
         "has a Jacobian with negative spectral abscissa (circuit rules only)."],
        ["rule", *(f"{a[6:]} angle start / 2nd half / last" for a in angles), "S24 abscissa start / max / last", "stable (min)"],
        stability,
    )
    return "\n".join(out)


def main(kind, folder, experiment=None):
    folder = Path(folder)
    data = load(folder)
    summary = json.loads((folder / "summary.json").read_text()) if (folder / "summary.json").is_file() else {}
    title = f"Fig. 3 reproduction: {kind} regression"
    if experiment:
        exp = tomllib.loads(Path(experiment).read_text())
        title = f"{exp['name']}: {exp.get('description', '')} (seed {exp.get('seed', 0)})"
    figure(kind, data, folder, title)
    (folder / "results.md").write_text(tables(data, summary))
    print(f"wrote {folder / 'results.md'}")


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("linear", "nonlinear"):
        sys.exit(__doc__)
    main(*sys.argv[1:4])
