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

Protocol. Draw ``i`` of a shape d0 -> d1 is ``numpy.random.default_rng((seed, d0, d1, i))``
(W, d1 x d0, first, then B), so every leak and both methods start from the same arrays.
Each (shape, method) gets one untimed warm-up call (2 iterations, draw 10**6) first; a run
is timed as the wall seconds of one ``stabilize`` call. A run "blew up" if a step made the
arrays non-finite, a Lyapunov solve failed, the final abscissa is not finite, or max|B|
grew more than 1000-fold. At 1000 -> 10, ``speedup`` is the heuristic's seconds over the
SSA seconds on the same draw (median over the heuristic's draws); ``--quick`` caps the
heuristic there at 5 iterations and extrapolates its time per iteration to 63 iterations
(what the full run needed), labelled as such. BLAS runs on one thread unless
``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` say otherwise.

Targets: (1) at 1000 -> 10 SSA reaches the target >= 100x faster than the heuristic and on
every draw; (2) SSA stabilises 100% of 50 draws in every feasible Fig. S1 cell.

Usage:  python experiments/stabilisation_table/run.py [--seed 0] [--inits 50] [--quick]
Outputs (next to this file, or ``--out``; ``--quick`` defaults to out/stabilisation_table_quick in the repository):
results.json (every run), results.md (the table), stabilisation_table.png.
"""

from __future__ import annotations

import os

for _blas in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_blas, "1")  # one BLAS thread: see the module docstring

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402

import neurodyn as nd  # noqa: E402
from neurodyn.circuits import DynamicInversion  # noqa: E402
from neurodyn.core.nonlinearities import parse  # noqa: E402
from neurodyn.core.stabilize import stabilize  # noqa: E402

HERE = Path(__file__).resolve().parent
QUICK_OUT = Path(__file__).resolve().parents[2] / "out" / "stabilisation_table_quick"
METHODS = ("ssa", "heuristic")
COLORS = {"ssa": "tab:blue", "heuristic": "tab:orange"}
MARGIN = 0.01
#: stabilize() keywords per method; the heuristic runs to its cap, as the public code does
SETTINGS = {
    "ssa": {"method": "ssa", "eps": 1e-3, "lr": 1.0, "max_iter": 500, "patience": 50},
    "heuristic": {"method": "heuristic", "lr": 5e-2, "max_iter": 200, "patience": 10**9},
}
FIG_S1 = {"shapes": ((20, 20), (20, 10), (10, 20)), "leaks": (0.0, 0.01, 0.05, 0.1), "scale": 1.0}
LARGE = {"d0": 1000, "d1": 10, "alpha": 0.0, "scale": 0.01}
MAX_B_GROWTH = 1e3
WARM_UP_DRAW = 10**6
QUICK_CAP, FULL_RUN_ITERATIONS = 5, 63  # --quick: heuristic iterations run / assumed at 1000 -> 10
TARGET_SPEEDUP, TARGET_INITS = 100.0, 50


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--inits", type=int, default=50, help="draws per feasible Fig. S1 cell (default 50)")
    p.add_argument("--infeasible-inits", type=int, default=5, help="draws of the infeasible 10->20 alpha=0 cell (default 5)")
    p.add_argument("--large-inits", type=int, default=50, help="SSA draws at 1000->10 (default 50)")
    p.add_argument("--heuristic-seeds", type=int, default=1, help="heuristic draws at 1000->10 (default 1)")
    p.add_argument("--quick", action="store_true", help="smoke run: 3 inits, heuristic at 1000->10 capped and extrapolated")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: this folder; --quick: out/stabilisation_table_quick)")
    p.add_argument("--replot", action="store_true", help="only redraw the figure from the folder's results.json")
    args = p.parse_args(argv)
    if args.quick:
        args.inits, args.infeasible_inits, args.large_inits = min(args.inits, 3), min(args.infeasible_inits, 1), min(args.large_inits, 3)
    if min(args.inits, args.large_inits, args.heuristic_seeds) < 1 or args.infeasible_inits < 0 or args.seed < 0:
        p.error("--inits, --large-inits, --heuristic-seeds must be >= 1; --infeasible-inits, --seed >= 0")
    args.out = args.out or (QUICK_OUT if args.quick else HERE)
    return args


# ---- one stabilize call ------------------------------------------------------------
def layer(case: dict, W, B) -> DynamicInversion:
    return DynamicInversion(W=(jnp.asarray(W),), B=(jnp.asarray(B),), alpha=case["alpha"], g=(parse("linear"),))


def run_once(case: dict, method: str, seed: int, i: int, cap: int | None = None) -> dict:
    """``stabilize`` w.r.t. B on draw ``i`` of ``case``: the run's record (wall seconds)."""
    d0, d1, s = case["d0"], case["d1"], case["scale"]
    rng = np.random.default_rng((seed, d0, d1, i))
    W, B0 = rng.uniform(-s, s, (d1, d0)), rng.uniform(-s, s, (d0, d1))
    kw = {**SETTINGS[method], **({} if cap is None else {"max_iter": cap})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about the heuristic's singular Lyapunov solves
        t = time.perf_counter()
        r = stabilize(layer(case, W, B0), lambda c: c.B, margin=MARGIN, **kw)
        seconds = time.perf_counter() - t
    B = np.asarray(r.circuit.B[0])
    growth = float(np.abs(B).max() / np.abs(B0).max()) if np.isfinite(B).all() else math.inf
    after = float(r.abscissa_after)
    broke = any(w in r.message for w in ("non-finite", "blew up", "Lyapunov"))
    return {"draw": i, "success": bool(r.success), "iterations": int(r.iterations), "seconds": seconds,
            "abscissa_before": float(r.abscissa_before), "abscissa_after": after, "target": float(r.target),
            "b_growth": growth, "blew_up": broke or not math.isfinite(after) or not growth <= MAX_B_GROWTH,
            "stalled": r.message.startswith("stalled"), "message": r.message}


# ---- one case, one method ------------------------------------------------------------
def cases() -> list[dict]:
    """The Fig. S1 cells, then 1000 -> 10, each ``{d0, d1, alpha, scale, name, kind, feasible}``."""
    out = [dict(d0=d0, d1=d1, alpha=a, scale=FIG_S1["scale"]) for d0, d1 in FIG_S1["shapes"] for a in FIG_S1["leaks"]] + [dict(LARGE)]
    for c in out:
        c["name"] = f"{c['d0']}->{c['d1']} a={c['alpha']:g}"
        c["kind"] = "equal" if c["d0"] == c["d1"] else ("contracting" if c["d1"] < c["d0"] else "expanding")
        c["feasible"] = not (c["d1"] > c["d0"] and c["alpha"] == 0)  # expanding, no leak: eigenvalue 0 stays
    return out


_warmed = set()


def run_case(case: dict, method: str, draws, seed: int, cap: int | None = None) -> SimpleNamespace:
    """``method`` on the draws of ``case`` (after one warm-up per shape and method): a
    summary with every run's record under ``records``."""
    if (case["d0"], case["d1"], method) not in _warmed:
        run_once(case, method, seed, WARM_UP_DRAW, cap=2)
        _warmed.add((case["d0"], case["d1"], method))
    t = time.perf_counter()
    recs = [run_once(case, method, seed, i, cap) for i in draws]
    col = {k: [r[k] for r in recs] for k in recs[0]}
    n, ok, bad = len(recs), sum(col["success"]), sum(col["blew_up"])
    res = SimpleNamespace(
        **{k: case[k] for k in ("name", "d0", "d1", "alpha", "scale", "kind", "feasible")}, shape=f"{case['d0']}->{case['d1']}",
        method=method, target=col["target"][0], runs=n, successes=ok, success_rate=ok / n, blowups=bad, blowup_rate=bad / n,
        median_iterations=float(np.median(col["iterations"])), max_iterations=max(col["iterations"]),
        median_seconds=float(np.median(col["seconds"])), total_seconds=float(sum(col["seconds"])), stalled=sum(col["stalled"]),
        median_final_abscissa=float(np.median(col["abscissa_after"])), max_b_growth=max(col["b_growth"]),
        max_iter=cap or SETTINGS[method]["max_iter"], extra={}, records=recs,
    )
    print(f"  {res.name:<16} {method:<9} {ok}/{n} stable, median {res.median_iterations:g} it, blew up {bad}, "
          f"{time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    return res


def as_json(res: SimpleNamespace) -> dict:
    d = {k: v for k, v in vars(res).items() if k not in ("extra", "records")}
    cols = list(res.records[0])
    return {**d, **res.extra, "records": {"columns": cols, "rows": [[r[c] for c in cols] for r in res.records]}}


def run_all(args) -> list[SimpleNamespace]:
    *fig_s1, large = cases()
    out = []
    for case in fig_s1:
        n = args.inits if case["feasible"] else args.infeasible_inits
        out += [run_case(case, m, range(n), args.seed) for m in METHODS] if n else []
    # 1000 -> 10: SSA on every draw, the heuristic (minutes each) on the first ones
    ssa = run_case(large, "ssa", range(max(args.large_inits, args.heuristic_seeds)), args.seed)
    heur = run_case(large, "heuristic", range(args.heuristic_seeds), args.seed, cap=QUICK_CAP if args.quick else None)
    ssa_s = {r["draw"]: r["seconds"] for r in ssa.records}
    per_it = [r["seconds"] / max(r["iterations"], 1) for r in heur.records]
    heur_s = [p * FULL_RUN_ITERATIONS for p in per_it] if args.quick else [r["seconds"] for r in heur.records]
    ratios = [s / ssa_s[r["draw"]] for s, r in zip(heur_s, heur.records)]
    note = (f"EXTRAPOLATED: capped at {QUICK_CAP} iterations, per-iteration time x {FULL_RUN_ITERATIONS} iterations" if args.quick
            else "" if heur.successes == heur.runs else f"FAILED in {heur.runs - heur.successes}/{heur.runs}: time to its stop")
    vs_median = float(np.median(heur_s)) / ssa.median_seconds
    heur.extra = {"speedup": float(np.median(ratios)), "speedup_vs_ssa_median": vs_median, "extrapolated": args.quick,
                  "seconds_per_iteration": float(np.median(per_it)),
                  "note": "; ".join(x for x in (note, f"{vs_median:.0f}x{'*' if args.quick else ''} against the SSA median time") if x)}
    if args.quick:
        heur.extra["extrapolated_median_seconds"] = float(np.median(per_it)) * FULL_RUN_ITERATIONS
    ssa.extra = {"speedup": 1.0, "seconds_per_iteration": float(np.median([r["seconds"] / max(r["iterations"], 1) for r in ssa.records])), "note": ""}
    return out + [ssa, heur]


# ---- table, targets ------------------------------------------------------------------
def _f(x, spec):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def table(results) -> str:
    rows = ["| case | method | success | median it | max it | median s | blew up | stalled | median final sa | max B growth | speedup | note |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in results:
        star = "*" if r.extra.get("extrapolated") else ""
        note = "; ".join(x for x in (r.extra.get("note", ""), "" if r.feasible else "infeasible (expanding, alpha = 0: target 0)") if x)
        speedup = _f(r.extra.get("speedup"), ".1f") + ("x" if "speedup" in r.extra else "")
        cells = [r.name, r.method, f"{r.successes}/{r.runs}", _f(r.median_iterations, "g"), str(r.max_iterations),
                 _f(r.extra.get("extrapolated_median_seconds", r.median_seconds), ".3g") + star, f"{r.blowups}/{r.runs}",
                 f"{r.stalled}/{r.runs}", _f(r.median_final_abscissa, ".3g"), _f(r.max_b_growth, ".3g"), speedup + star, note]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def targets(results, inits: int) -> list[tuple[str, bool | None, str]]:
    """``(description, met, measured)`` of both targets; ``met`` None when not measured."""
    large = {r.method: r for r in results if (r.d0, r.d1) == (LARGE["d0"], LARGE["d1"])}
    ssa, heur = large["ssa"], large["heuristic"]
    sp = heur.extra["speedup"]
    measured = (f"{sp:.0f}x on the same draw, {heur.extra['speedup_vs_ssa_median']:.0f}x against the SSA median "
                f"(heuristic {heur.successes}/{heur.runs} stable, {heur.extra.get('extrapolated_median_seconds', heur.median_seconds):.1f} s; "
                f"SSA {ssa.successes}/{ssa.runs} stable, median {ssa.median_seconds:.3f} s)")
    if heur.extra["extrapolated"]:
        measured += " - EXTRAPOLATED heuristic time (--quick), not a measurement"
    out = [(f"1000->10: SSA >= {TARGET_SPEEDUP:g}x faster than the heuristic to sa < -0.01, SSA stable on every draw",
            sp >= TARGET_SPEEDUP and ssa.successes == ssa.runs, measured)]
    cells = [r for r in results if r.method == "ssa" and r.feasible and r is not ssa]
    short = [f"{r.name} {r.successes}/{r.runs}" for r in cells if r.successes < r.runs]
    measured = f"{sum(r.successes for r in cells)}/{sum(r.runs for r in cells)} over {len(cells)} cells"
    measured += f"; below 100%: {', '.join(short)}" if short else ""
    if inits < TARGET_INITS:
        measured += f" - only {inits} inits per cell (target needs {TARGET_INITS})"
    met = False if short else (True if inits >= TARGET_INITS else None)
    out.append((f"Fig. S1 feasible cells: SSA stable in 100% of {TARGET_INITS} inits each", met, measured))
    return out


def verdict(met: bool | None, measured: str) -> str:
    word = {True: "MET", False: "NOT MET", None: "NOT MEASURED"}[met]
    return word + (" (extrapolated)" if "EXTRAPOLATED" in measured else "")


def machine() -> dict:
    dev = jax.devices()[0]
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
            "python": platform.python_version(), "jax": jax.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "neurodyn": nd.__version__, "device": f"{dev.platform}:{dev.device_kind}",
            "blas_threads": {v: os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")},
            "loadavg_start": list(os.getloadavg())}


# ---- outputs ------------------------------------------------------------------------
def figure(results, path: Path) -> None:
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
    axes[0].legend(fontsize=8, ncol=3, loc="upper left")  # its colours hold for all three panels
    for ax in axes:
        ax.grid(axis="y", alpha=0.3)
        for i in infeasible:
            ax.axvspan(i - 0.5, i + 0.5, color="0.88", zorder=0)
    for ax in axes[1:]:
        ax.set_yscale("log")
    axes[2].set_ylim(top=axes[2].get_ylim()[1] * 8)  # room for the speedup label
    for i in infeasible:
        axes[0].text(i, 0.75, "infeasible\n(target 0)", ha="center", va="center", fontsize=7, rotation=90)
    axes[2].set_xticks(x)
    axes[2].set_xticklabels([n.replace(" a=", "\nalpha=") for n in names], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def write_markdown(results, goals, args, info, path: Path) -> None:
    lines = [
        "# Stabilisation table: SSA vs the public heuristic",
        "",
        f"Command: `python experiments/stabilisation_table/run.py --seed {args.seed} --inits {args.inits}"
        f"{' --quick' if args.quick else ''}` (infeasible cell {args.infeasible_inits} draws, 1000->10: SSA "
        f"{args.large_inits} draws, heuristic {args.heuristic_seeds}).",
        f"Wall time {info['wall_seconds']:.0f} s on {info['cpu_count']} CPUs ({info['platform']}), "
        f"load average {info['loadavg_start'][0]:.1f} at start, {info['loadavg_end'][0]:.1f} at end; jax {info['jax']}, "
        f"scipy {info['scipy']}, BLAS threads {info['blas_threads']['OPENBLAS_NUM_THREADS']}.",
        "",
        "Per cell: stabilised runs, median / max iterations, median wall seconds per run, runs that blew up, runs stopped",
        "as stalled (SSA only: no SSA decrease in 50 iterations), median final spectral abscissa, largest",
        "max|B_final| / max|B_0|; speedup (1000->10) = heuristic s / SSA s on the same draw.",
        "",
        table(results),
        "",
    ]
    if any(r.extra.get("extrapolated") for r in results):
        lines += ["\\* extrapolated from a capped run (`--quick`), not measured", ""]
    lines += ["Targets:", ""]
    lines += [f"- **{verdict(m, s)}** {d}: {s}" for d, m, s in goals]
    path.write_text("\n".join(lines) + "\n")


def from_json(case: dict) -> SimpleNamespace:
    """A summary as :func:`run_case` returns it, from its :func:`as_json` form."""
    extra = ("speedup", "speedup_vs_ssa_median", "extrapolated", "seconds_per_iteration", "note", "extrapolated_median_seconds")
    cols = case["records"]["columns"]
    return SimpleNamespace(**{k: v for k, v in case.items() if k not in extra and k != "records"},
                           extra={k: case[k] for k in extra if k in case}, records=[dict(zip(cols, row)) for row in case["records"]["rows"]])


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        figure([from_json(c) for c in json.loads((args.out / "results.json").read_text())["cases"]], args.out / "stabilisation_table.png")
        return 0
    info = machine()
    t0 = time.perf_counter()
    results = run_all(args)
    info["wall_seconds"] = time.perf_counter() - t0
    info["loadavg_end"] = list(os.getloadavg())
    goals = targets(results, args.inits)
    report = {
        "cases": [as_json(r) for r in results],
        "targets": [{"target": d, "met": m, "verdict": verdict(m, s), "measured": s} for d, m, s in goals],
        "settings": {"margin": MARGIN, "methods": SETTINGS, "fig_s1": FIG_S1, "large": LARGE, "max_b_growth": MAX_B_GROWTH,
                     "draw_rng": "numpy.random.default_rng((seed, d0, d1, i)): W (d1 x d0), then B (d0 x d1)",
                     "warm_up": f"one untimed call per shape and method, draw {WARM_UP_DRAW}, 2 iterations"},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": info,
    }
    (args.out / "results.json").write_text(json.dumps(report))
    write_markdown(results, goals, args, info, args.out / "results.md")
    figure(results, args.out / "stabilisation_table.png")
    print((args.out / "results.md").read_text())
    print(f"wrote {args.out}/results.json, results.md, stabilisation_table.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
