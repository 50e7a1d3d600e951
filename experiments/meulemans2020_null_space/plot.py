"""Fig. 2 of Meulemans et al. (2020) from the committed results: ``fig2_null_space.png`` and
``results.md`` in the experiment folder.

Reads ``experiment.toml``, ``seed*/metrics.csv`` (column ``null_space_W2``: the fraction
averaged over the 400 training samples at every epoch), ``seed*/per_sample.csv`` (the
per-sample fractions at the end of training) and ``runtime.csv``.

    python plot.py EXPERIMENT_DIR
"""

from __future__ import annotations

import argparse
import csv
import tomllib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

NAMES = {"dtp_pretrained": "DTP (pre-trained)", "ddtp_linear": "DDTP-linear", "bp": "BP (control)", "gn": "GN targets (control)"}
MAIN = ("dtp_pretrained", "ddtp_linear")
COLORS = {"dtp_pretrained": "tab:blue", "ddtp_linear": "tab:orange"}  # the paper's colours


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def load(root: Path):
    seeds = sorted((p for p in root.glob("seed*") if (p / "metrics.csv").is_file()), key=lambda p: int(p.name[4:]))
    curves, samples = {}, {}
    for d in seeds:
        s = int(d.name[4:])
        for r in read_csv(d / "metrics.csv"):
            c = curves.setdefault(r["rule"], {}).setdefault(s, {"step": [], "W1": [], "W2": []})
            c["step"].append(int(r["step"]))
            c["W1"].append(float(r["null_space_W1"]))
            c["W2"].append(float(r["null_space_W2"]))
        for r in read_csv(d / "per_sample.csv"):
            p = samples.setdefault(r["rule"], {}).setdefault(s, {"package": [], "direct": []})
            p["package"].append(float(r["package"]))
            p["direct"].append(float(r["direct"]))
    to_np = lambda tree: {k: {s: {q: np.asarray(v) for q, v in d.items()} for s, d in by.items()} for k, by in tree.items()}  # noqa: E731
    return [int(d.name[4:]) for d in seeds], to_np(curves), to_np(samples)


def fmt(v):
    return f"{v:.3g}" if abs(v) >= 1e-3 else f"{v:.1e}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", type=Path)
    root = p.parse_args().root
    exp = tomllib.loads((root / "experiment.toml").read_text())
    warmup = exp["rules"]["dtp_pretrained"]["warmup_steps"]
    epoch = exp["data"]["n_train"] // exp["training"]["batch_size"]
    seeds, curves, samples = load(root)

    # window of the paper's measurement: after the feedback pre-training
    def window(rule, s, key="W2"):
        c = curves[rule][s]
        return c[key][c["step"] > warmup]

    def at(rule, s, step, key="W2"):
        c = curves[rule][s]
        return float(c[key][c["step"] == step][0])

    # ---------------------------------------------------------------- figure
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10.5, 4.2), gridspec_kw={"width_ratios": [1, 1.9]})
    x = np.arange(len(MAIN))
    for i, rule in enumerate(MAIN):
        pooled = np.concatenate([samples[rule][s]["package"] for s in seeds])
        per_seed = [samples[rule][s]["package"].mean() for s in seeds]
        ax.bar(i, pooled.mean(), yerr=pooled.std(), color=COLORS[rule], alpha=0.85, width=0.6, capsize=8, error_kw={"lw": 1.5})
        ax.plot(np.full(len(seeds), i + 0.2) + np.linspace(-0.06, 0.06, len(seeds)), per_seed, "o", color="k", ms=4, label="seed means" if i == 0 else None)
    ax.set_xticks(x, [NAMES[r] for r in MAIN], fontsize=11)
    ax.set_ylabel(r"$\|\Delta W_2^{\mathrm{null}}\| \,/\, \|\Delta W_2\|$", fontsize=12)
    ax.set_ylim(0, 1)
    ax.set_title("end of training\n(bar: mean, error bar: std over samples)", fontsize=10)
    ax.legend(loc="upper right", fontsize=9, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)

    bx.axvspan(0, warmup / epoch, color="0.92", lw=0)
    bx.text(warmup / epoch / 2, 0.985, "feedback pre-training", ha="center", va="top", fontsize=9, color="0.3")
    for rule in MAIN:
        for k, s in enumerate(seeds):
            c = curves[rule][s]
            bx.plot(c["step"] / epoch, c["W2"], color=COLORS[rule], lw=1.2, alpha=0.8, label=NAMES[rule] if k == 0 else None)
    bx.set_xlabel(f"epoch ({epoch} samples, one feedback update each)", fontsize=11)
    bx.set_ylabel(r"$\|\Delta W_2^{\mathrm{null}}\| / \|\Delta W_2\|$, mean over samples", fontsize=11)
    bx.set_ylim(0, 1)
    bx.set_xlim(0, max(curves[MAIN[0]][seeds[0]]["step"]) / epoch)
    bx.set_title(f"during training, {len(seeds)} seeds (one line each); forward weights frozen throughout", fontsize=10)
    bx.legend(loc="center right", bbox_to_anchor=(1.0, 0.27), fontsize=10, frameon=False)
    bx.spines[["top", "right"]].set_visible(False)
    fig.suptitle("Meulemans et al. 2020, Fig. 2: null-space part of the update of $W_2$ (6-6-6-2 tanh, student-teacher)", fontsize=11)
    fig.tight_layout()
    fig.savefig(root / "fig2_null_space.png", dpi=150)

    # ---------------------------------------------------------------- results.md
    L = []
    L.append("# Results (generated by plot.py)\n")
    L.append(f"Seeds {', '.join(map(str, seeds))}; {len(samples[MAIN[0]][seeds[0]]['package'])} training samples each; "
             f"feedback pre-training for the first {warmup} steps ({warmup // epoch} epochs), forward weights frozen throughout.\n")
    L.append("## Null-space fraction of Delta W_2\n")
    L.append("`||Delta W_2^null|| / ||Delta W_2||`, per sample, then averaged. "
             "Columns: (1) after the pre-training, mean over the evaluations of epochs "
             f"{warmup // epoch + 1}-{max(curves[MAIN[0]][seeds[0]]['step']) // epoch} (each the mean over all samples; "
             "metrics.csv), mean +- std over seeds; (2) at the end, mean +- std over all samples of all seeds "
             "(the paper's error bar is the std over the samples of its one seed: (2b) gives that std per seed, min-max over seeds); (3) at step 0 (feedback untrained) and (4) at the end of the "
             "pre-training, mean over seeds.\n")
    L.append("| rule | (1) after pre-training, seeds | (2) end, samples | (2b) end, std over samples within a seed | (3) step 0 | (4) end of pre-training |")
    L.append("|---|---|---|---|---|---|")
    for rule in curves:
        w = np.array([window(rule, s).mean() for s in seeds])
        pooled = np.concatenate([samples[rule][s]["package"] for s in seeds])
        s0 = np.mean([at(rule, s, 0) for s in seeds])
        sw = np.mean([at(rule, s, warmup) for s in seeds])
        within = [samples[rule][s]["package"].std() for s in seeds]
        L.append(
            f"| {NAMES.get(rule, rule)} | {fmt(w.mean())} +- {fmt(w.std())} | {fmt(pooled.mean())} +- {fmt(pooled.std())} "
            f"| {fmt(min(within))}-{fmt(max(within))} | {fmt(s0)} | {fmt(sw)} |"
        )
    L.append("")
    L.append("Per seed, column (1): " + "; ".join(
        f"{NAMES[r]} " + ", ".join(fmt(window(r, s).mean()) for s in seeds) for r in MAIN) + ".\n")
    L.append("W_1 for reference (same window as (1)): " + "; ".join(
        f"{NAMES[r]} {fmt(np.mean([window(r, s, 'W1').mean() for s in seeds]))}" for r in MAIN) + ".\n")
    L.append("## Check of the metric\n")
    L.append("Per-sample fractions at the end of training from the package (`null_space_fraction`, row space of "
             "`d o / d W_2` in closed form, null part subtracted directly) against an independent "
             "computation (`per_sample.py`: Jacobian by automatic differentiation, null-space basis from a full SVD, "
             "`||V_null^T vec(Delta W_2)|| / ||vec(Delta W_2)||`, as the authors' code):\n")
    L.append("| rule | package, max over samples | direct, max over samples | max abs difference |")
    L.append("|---|---|---|---|")
    for rule in samples:
        pk = np.concatenate([samples[rule][s]["package"] for s in seeds])
        dr = np.concatenate([samples[rule][s]["direct"] for s in seeds])
        L.append(f"| {NAMES.get(rule, rule)} | {fmt(pk.max())} | {fmt(dr.max())} | {np.max(np.abs(pk - dr)):.1e} |")
    L.append("")
    L.append("BP's and exact Gauss-Newton targets' updates lie in the row space exactly (fraction 0): the package "
             "reports them at rounding level.\n")
    rt = read_csv(root / "runtime.csv") if (root / "runtime.csv").is_file() else []
    if rt:
        tr = [int(r["train_s"]) for r in rt]
        ps = [int(r["per_sample_s"]) for r in rt]
        L.append("## Runtime\n")
        L.append(f"Wall time per seed (shared 2-core CPU): `neurodyn train` {min(tr)}-{max(tr)} s, `per_sample.py` "
                 f"{min(ps)}-{max(ps)} s; {sum(tr) + sum(ps)} s for {len(rt)} seeds.\n")
    (root / "results.md").write_text("\n".join(L))
    print("\n".join(L))


if __name__ == "__main__":
    main()
