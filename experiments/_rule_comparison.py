"""Table and figure of rules trained side by side by `neurodyn train`, from one or more
output folders (one per seed), read with the package's `neurodyn.io.metrics.read_metrics`.

    python experiments/_rule_comparison.py OUT RUN [RUN ...] [--title TEXT] [--samples-label TEXT]

Writes OUT/results.md (final values per rule: median and range over the runs) and
OUT/comparison.png (test loss, test accuracy or train loss, and the angles of the first
layer's update to BP's and to the Gauss-Newton-target update, against the updates).
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


def _final(runs, label, key):
    vals = [r[label][key][-1] for r in runs if label in r and key in r[label]]
    return np.asarray(vals, float)


def _nanmin(v):
    return np.nan if v is None or np.all(np.isnan(v)) else float(np.nanmin(v))


def _fmt(v, spec=".3g", pct=False):
    v = v[np.isfinite(v)] if v.size else v
    if not v.size:
        return "–"
    scale = 100.0 if pct else 1.0
    med = f"{scale * np.median(v):{spec}}"
    return med if v.size == 1 else f"{med} ({scale * v.min():{spec}}–{scale * v.max():{spec}})"


def table(runs, statuses, labels) -> list[str]:
    has_acc = any("test_accuracy" in r[label] for r in runs for label in r)
    head = ["rule", "test accuracy (%)" if has_acc else None, "test loss", "train loss", "angle W1 to BP (deg)",
            "angle W1 to GN target (deg)", "cycles converged / stable (min)", "s per update", "status"]
    head = [h for h in head if h]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label in labels:
        row = [f"`{label}`"]
        if has_acc:
            row.append(_fmt(_final(runs, label, "test_accuracy"), ".1f", pct=True))
        row += [_fmt(_final(runs, label, "test_loss")), _fmt(_final(runs, label, "train_loss"))]
        row += [_fmt(_final(runs, label, "angle_bp_W1"), ".1f"), _fmt(_final(runs, label, "angle_gn_W1"), ".1f")]
        conv = [_nanmin(r[label].get("steady_state_converged")) for r in runs if label in r]
        stab = [_nanmin(r[label].get("steady_state_stable")) for r in runs if label in r]
        row.append("–" if np.all(np.isnan(conv)) else f"{np.nanmin(conv):.2f} / {np.nanmin(stab):.2f}")
        per = [np.nanmedian(r[label]["wall_per_update_s"][2:]) for r in runs if label in r and len(r[label]["step"]) > 2]
        row.append(f"{np.median(per):.2g}" if per else "–")
        bad = sorted({s.get(label, "missing") for s in statuses} - {"completed"})
        row.append("; ".join(bad) if bad else "completed")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def figure(runs, labels, out: Path, title: str, samples_label: str):
    has_acc = any("test_accuracy" in r[label] for r in runs for label in r)
    panels = [("test_loss", "test loss", True), ("test_accuracy", "test accuracy (%)", False) if has_acc else ("train_loss", "train loss", True),
              ("angle_bp_W1", "angle of the W1 update to BP's (deg)", False), ("angle_gn_W1", "angle of the W1 update to the GN-target update (deg)", False)]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), layout="constrained")
    for i, label in enumerate(labels):
        style = dict(color=f"C{i % 10}", ls="--" if label.startswith("bp") else "-", label=label)
        for ax, (key, _, _) in zip(axes.flat, panels):
            curves = [r[label][key] for r in runs if label in r and key in r[label]]
            if not curves or np.all(np.isnan(curves[0])):
                continue
            n = min(len(c) for c in curves)
            steps = runs[0][label]["step"][:n]
            stack = np.stack([c[:n] for c in curves]) * (100.0 if key == "test_accuracy" else 1.0)
            ax.plot(steps, np.nanmedian(stack, axis=0), **style)
            if len(curves) > 1:
                ax.fill_between(steps, np.nanmin(stack, axis=0), np.nanmax(stack, axis=0), color=style["color"], alpha=0.12)
    for ax, (key, ylabel, log) in zip(axes.flat, panels):
        ax.set_xlabel(samples_label)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        if key.startswith("angle"):
            ax.set_ylim(0, 180)
            ax.set_yticks(range(0, 181, 30))
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    spread = f" (median, band: min-max over {len(runs)} seeds)" if len(runs) > 1 else ""
    fig.suptitle(title + spread)
    fig.savefig(out / "comparison.png", dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--title", default="")
    ap.add_argument("--samples-label", default="updates (online: samples)")
    args = ap.parse_args(argv)
    runs = [read_metrics(r) for r in args.runs]
    statuses = [json.loads((r / "summary.json").read_text())["status"] for r in args.runs]
    labels = list(dict.fromkeys(label for r in runs for label in r))
    lines = [f"# {args.title or 'Results'}", "", f"Final evaluation of {len(runs)} run(s): median (min–max over runs). "
             "Angles: the first layer's update on the probe samples. Cycles: plastic circuits at the end of a cycle, "
             "DI/SLDI at the Newton fixed point. s per update: median over the evaluation intervals after the first "
             "two (compilation excluded).", ""]
    lines += table(runs, statuses, labels)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    figure(runs, labels, args.out, args.title, args.samples_label)
    print(f"wrote {args.out}/results.md, comparison.png")


if __name__ == "__main__":
    main()
