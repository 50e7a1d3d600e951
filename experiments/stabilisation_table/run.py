"""Stabilisation table: true SSA against the public heuristic on the Fig. S1 settings and 1000 -> 10.

Success rate, iterations, time per run, blow-ups and final spectral abscissa of
``neurodyn.core.stabilize.stabilize`` with ``method="ssa"`` (eps 1e-3, lr 1.0, <= 500
iterations, stall stop after 50 iterations without an SSA decrease, reduced two-block
Lyapunov solves) and ``method="heuristic"`` (the public approach: plain abscissa inside the
Lyapunov solves, lr 5e-2, 200 iterations unless stable, no stall stop, dense),
both optimising only B of the S24 block matrix ``[[-I, B], [W, -alpha I]]`` until its
spectral abscissa is below ``target_abscissa(c, 0.01)``, from the same draws:

- the Fig. S1 shapes 20 -> 20, 20 -> 10, 10 -> 20 with W, B ~ U(-1, 1), leaks
  {0, 0.01, 0.05, 0.1}, ``--inits`` draws per cell (default 50; the infeasible cell
  10 -> 20 at alpha = 0 gets ``--infeasible-inits``, default 5, to show what happens);
- 1000 -> 10 with W, B ~ U(-0.01, 0.01), alpha = 0: SSA on ``--large-inits`` draws
  (default 50), the heuristic on the first ``--heuristic-seeds`` (default 1; minutes each).

Everything (draws, cell runner, blow-up rule, table, targets) comes from
``benchmarks/stabilise.py``; see its docstring for the protocol.

Usage:  python experiments/stabilisation_table/run.py [--seed 0] [--inits 50] [--quick]
Outputs (next to this file, or ``--out``; ``--quick`` defaults to /tmp/stabilisation_table_quick):
results.json (every run), results.md (the table), stabilisation_table.png.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))

import stabilise as bench  # noqa: E402  (sets single-threaded BLAS and float64 before numpy/jax load)

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

QUICK_OUT = Path("/tmp/stabilisation_table_quick")
METHODS = ("ssa", "heuristic")
COLORS = {"ssa": "tab:blue", "heuristic": "tab:orange"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--inits", type=int, default=50, help="draws per feasible Fig. S1 cell (default 50)")
    p.add_argument("--infeasible-inits", type=int, default=5, help="draws of the infeasible 10->20 alpha=0 cell (default 5)")
    p.add_argument("--large-inits", type=int, default=50, help="SSA draws at 1000->10 (default 50)")
    p.add_argument("--heuristic-seeds", type=int, default=1, help="heuristic draws at 1000->10 (default 1)")
    p.add_argument("--quick", action="store_true", help="smoke run: 3 inits, heuristic at 1000->10 capped and extrapolated")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: this folder; --quick: /tmp/...)")
    args = p.parse_args(argv)
    if args.quick:
        args.inits, args.infeasible_inits, args.large_inits = min(args.inits, 3), min(args.infeasible_inits, 1), min(args.large_inits, 3)
    if min(args.inits, args.large_inits, args.heuristic_seeds) < 1 or args.infeasible_inits < 0 or args.seed < 0:
        p.error("--inits, --large-inits, --heuristic-seeds must be >= 1; --infeasible-inits, --seed >= 0")
    args.out = args.out or (QUICK_OUT if args.quick else HERE)
    return args


def run_all(args) -> list[bench.CellResult]:
    results = []
    for cell in bench.fig_s1_cells():
        n = args.inits if cell.feasible else args.infeasible_inits
        if n:
            results += [bench.run_cell(cell, m, range(n), args.seed) for m in METHODS]
    return results + bench.run_large(args.seed, args.large_inits, args.heuristic_seeds, args.quick)


def figure(results: list[bench.CellResult], path: Path) -> None:
    names = list(dict.fromkeys(r.name for r in results))
    by = {(r.name, r.method): r for r in results}
    infeasible = [i for i, n in enumerate(names) if not by[(n, METHODS[0])].feasible]
    x = np.arange(len(names))
    w = 0.38
    fig, axes = plt.subplots(3, 1, figsize=(12, 9.5), sharex=True)
    for k, m in enumerate(METHODS):
        rows = [by.get((n, m)) for n in names]
        xs = x + (k - 0.5) * w
        rate = np.array([r.success_rate if r else math.nan for r in rows])
        blow = np.array([r.blowup_rate if r else math.nan for r in rows])
        med = np.array([r.median_iterations if r else math.nan for r in rows])
        top = np.array([r.max_iterations if r else math.nan for r in rows])
        secs = np.array([r.extra.get("extrapolated_median_seconds", r.median_seconds) if r else math.nan for r in rows])
        axes[0].bar(xs, rate, w, color=COLORS[m], label=f"{m}: stabilised")
        axes[0].bar(xs, blow, w, bottom=rate, color="white", hatch="///", edgecolor="tab:red", lw=0, label=None if k else "blew up")
        axes[1].bar(xs, med, w, color=COLORS[m], label=m)
        axes[1].errorbar(xs, med, yerr=[np.zeros_like(med), top - med], fmt="none", ecolor="k", capsize=2, lw=0.8)
        axes[2].bar(xs, secs, w, color=COLORS[m], label=m)
        for xi, r, s in zip(xs, rows, secs):
            if r is None:
                continue
            axes[0].text(xi, r.success_rate + r.blowup_rate + 0.02, f"{r.successes}/{r.runs}", ha="center", va="bottom", fontsize=6.5, rotation=90)
            if m == "heuristic" and "speedup" in r.extra:
                label = f"{r.extra['speedup']:.0f}x" + (" extrap." if r.extra.get("extrapolated") else "")
                axes[2].text(xi, s, label, ha="center", va="bottom", fontsize=7)
    axes[0].set_ylim(0, 1.35)
    axes[0].set_ylabel("fraction of runs")
    axes[0].set_title("Stabilising B of S24 [[-I, B], [W, -alpha I]] to sa < target (margin 0.01): SSA vs public heuristic")
    axes[1].set_ylabel("iterations (median, bar to max)")
    axes[2].set_ylabel("seconds per run (median;\nfailed: time to stop)")
    for ax in axes:
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, ncol=3, loc="upper left" if ax is axes[0] else "best")
        for i in infeasible:
            ax.axvspan(i - 0.5, i + 0.5, color="0.88", zorder=0)
    for ax in axes[1:]:
        ax.set_yscale("log")
    for i in infeasible:
        axes[0].text(i, 0.75, "infeasible\n(target 0)", ha="center", va="center", fontsize=7, rotation=90)
    axes[2].set_xticks(x)
    axes[2].set_xticklabels([n.replace(" a=", "\nalpha=") for n in names], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def write_markdown(results, targets, args, machine, path: Path) -> None:
    lines = [
        "# Stabilisation table: SSA vs the public heuristic",
        "",
        f"Command: `python experiments/stabilisation_table/run.py --seed {args.seed} --inits {args.inits}"
        f"{' --quick' if args.quick else ''}` (infeasible cell {args.infeasible_inits} draws, 1000->10: SSA "
        f"{args.large_inits} draws, heuristic {args.heuristic_seeds}).",
        f"Wall time {machine['wall_seconds']:.0f} s on {machine['cpu_count']} CPUs ({machine['platform']}), "
        f"load average {machine['loadavg_start'][0]:.1f} at start, {machine['loadavg_end'][0]:.1f} at end; jax {machine['jax']}, "
        f"scipy {machine['scipy']}, BLAS threads {machine['blas_threads']['OPENBLAS_NUM_THREADS']}.",
        "",
        "Per cell: stabilised runs, median / max iterations, median wall seconds per run, runs that blew up, runs stopped",
        "as stalled (SSA only: no SSA decrease in 50 iterations), median final spectral abscissa, largest",
        "max|B_final| / max|B_0|; speedup (1000->10) = heuristic s / SSA s on the same draw.",
        "",
        bench.markdown_table(results),
        "",
    ]
    if any(r.extra.get("extrapolated") for r in results):
        lines += ["\\* extrapolated from a capped run (`--quick`), not measured", ""]
    lines += ["Targets:", ""]
    lines += [f"- **{bench.verdict_word(m, s)}** {d}: {s}" for d, m, s in targets]
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    machine = bench.machine_info()
    t0 = time.perf_counter()
    results = run_all(args)
    machine["wall_seconds"] = time.perf_counter() - t0
    machine["loadavg_end"] = list(bench.os.getloadavg())
    targets = bench.check_targets(results, args.inits)
    report = {
        "cases": [r.to_json() for r in results],
        "targets": [{"target": d, "met": m, "verdict": bench.verdict_word(m, s), "measured": s} for d, m, s in targets],
        "settings": bench.settings_info(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine,
    }
    (args.out / "results.json").write_text(json.dumps(report))
    write_markdown(results, targets, args, machine, args.out / "results.md")
    figure(results, args.out / "stabilisation_table.png")
    print((args.out / "results.md").read_text())
    print(f"wrote {args.out}/results.json, results.md, stabilisation_table.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
