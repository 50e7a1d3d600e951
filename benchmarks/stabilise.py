"""Stability optimisation: true SSA (reduced two-block solves) against the public heuristic.

What is measured
----------------
``neurodyn.core.stabilize.stabilize`` lowers the spectral abscissa of the S24 block matrix
of one dynamic-inversion layer (Podlaski & Machens 2020 supplement, section 7.5)::

    M = [[-I, B], [W, -alpha I]]        (W: d1 x d0, B: d0 x d1; only B is optimised)

by two methods, from the same seeded start:

``ssa``
    Gradient descent on the smoothed spectral abscissa (Vanbiervliet et al. 2009), eps 1e-3,
    lr 1.0, at most 500 iterations, patience 50. Each step solves its Lyapunov equations on
    the reduced two-block problem (size <= 3 d1: 30 x 30 at 1000 -> 10).
``heuristic``
    The public approach, for comparison: the gradient ``QP / tr(QP)`` with the Lyapunov
    equations solved at the plain spectral abscissa of the dense matrix (singular there),
    lr 5e-2, at most 200 iterations (1010 x 1010 solves at 1000 -> 10).

Both stop as soon as the spectral abscissa is below the target
``neurodyn.core.stabilize.target_abscissa(c, 0.01)``: -0.01 (the heuristic's stop), or
``-min(0.01, alpha / 2)`` for an expanding layer (d1 > d0), which always has the
eigenvalue -alpha. An expanding layer with alpha = 0 is infeasible (target 0) and is left
out of the targets.

Cases
-----
- Fig. S1 settings (supplement Fig. S1): shapes 20 -> 20 (equal), 20 -> 10 (contracting)
  and 10 -> 20 (expanding), W, B ~ U(-1, 1), leaks alpha in {0, 0.01, 0.05, 0.1}, ``--inits``
  draws per cell (default 50). Draw ``i`` of a shape uses
  ``numpy.random.default_rng((seed, d0, d1, i))``, so every leak (and both methods) start
  from the same W, B. SSA only by default (``--with-heuristic`` adds the heuristic; the
  full comparison is ``experiments/stabilisation_table``).
- 1000 -> 10 (the MNIST output layer): W, B ~ U(-0.01, 0.01), alpha = 0. SSA on
  ``--ssa-seeds`` draws (default 5), the heuristic on the first ``--heuristic-seeds``
  (default 1) of them with its 200-iteration cap: at full size one heuristic iteration
  costs seconds, so this one run takes minutes. ``--quick`` caps the heuristic at 5
  iterations and extrapolates its per-iteration time to ``HEURISTIC_ASSUMED_ITERATIONS``
  (the iterations the full run needed); such numbers are labelled ``extrapolated``.

SSA keeps ``stabilize``'s stall stop (``patience`` 50: fail once the SSA has not decreased
for 50 iterations); the heuristic runs without it, to its cap, as the public code does.
A run "blew up" if a step made the arrays non-finite, a Lyapunov solve failed, the final
abscissa is not finite, or max|B| grew by more than ``BLOWUP_GROWTH`` (1e3) times.

Timing: wall-clock seconds of one ``stabilize`` call (the JIT trace of its pullback
included), after one untimed warm-up call per shape and method (SSA at 1000 -> 10 too;
the full-size heuristic is not warmed up: its compilation is well under 1% of its time).
``speedup`` at 1000 -> 10 is the heuristic's time over the SSA time on the same draw (the
median over the heuristic's draws); if the heuristic fails it is the time to its stop
(a lower bound on the time it would need to succeed), and the row says it failed.
BLAS runs single-threaded unless ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` are set:
on this shared 2-core machine two BLAS threads under load made a 1010 x 1010 eigvals 40x
slower (13 s against 0.3 s).

Targets: (1) at 1000 -> 10 SSA reaches sa < -0.01 >= 100x faster than the heuristic, on
every draw; (2) SSA succeeds in 100% of 50 inits in every feasible Fig. S1 cell. The
script prints whether they were met in this run.

Run::

    python benchmarks/stabilise.py                        # full run (~9 min on 2 busy cores)
    python benchmarks/stabilise.py --json stab.json  # also write the results
    python benchmarks/stabilise.py --quick                # smoke run (~1 min), extrapolated heuristic
    python benchmarks/stabilise.py --cases large --heuristic-seeds 2

``experiments/stabilisation_table/run.py`` runs the same protocol for the full table on its
own (it calls ``neurodyn.core.stabilize`` directly and imports nothing from here).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402

import neurodyn as nd  # noqa: E402
from neurodyn.circuits import DynamicInversion  # noqa: E402
from neurodyn.core.nonlinearities import parse  # noqa: E402
from neurodyn.core.stabilize import stabilize, target_abscissa  # noqa: E402

MARGIN = 0.01
#: ``patience``: SSA keeps stabilize's default stall stop (50 iterations without an SSA
#: decrease); the public heuristic has none (it runs to its cap), so it is switched off there
NO_PATIENCE = 10**9
METHOD_SETTINGS = {
    "ssa": dict(method="ssa", eps=1e-3, lr=1.0, max_iter=500, patience=50),
    "heuristic": dict(method="heuristic", lr=5e-2, max_iter=200, patience=NO_PATIENCE),
}
FIG_S1_SHAPES = ((20, 20), (20, 10), (10, 20))  # (d0, d1)
FIG_S1_LEAKS = (0.0, 0.01, 0.05, 0.1)
FIG_S1_SCALE = 1.0
LARGE_SHAPE, LARGE_ALPHA, LARGE_SCALE = (1000, 10), 0.0, 0.01
BLOWUP_GROWTH = 1e3
QUICK_HEURISTIC_ITERATIONS = 5
#: iterations the full-size heuristic needed from seed 0 in the full run (README, "Measured")
HEURISTIC_ASSUMED_ITERATIONS = 63
TARGET_SPEEDUP = 100.0
TARGET_INITS = 50
WARMUP_DRAW = 10**6  # draw index of the untimed warm-up calls


# ---- cells and draws ----------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """One setting: layer d0 -> d1, leak alpha, W and B ~ U(-scale, scale)."""

    d0: int
    d1: int
    alpha: float
    scale: float = FIG_S1_SCALE

    @property
    def shape(self) -> str:
        return f"{self.d0}->{self.d1}"

    @property
    def name(self) -> str:
        return f"{self.shape} a={self.alpha:g}"

    @property
    def kind(self) -> str:
        return "equal" if self.d0 == self.d1 else "contracting" if self.d1 < self.d0 else "expanding"

    @property
    def feasible(self) -> bool:
        """An expanding layer without leak keeps the eigenvalue 0: no B can stabilise it."""
        return not (self.d1 > self.d0 and self.alpha == 0)


def fig_s1_cells() -> list[Cell]:
    return [Cell(d0, d1, a) for d0, d1 in FIG_S1_SHAPES for a in FIG_S1_LEAKS]


def large_cell() -> Cell:
    return Cell(*LARGE_SHAPE, LARGE_ALPHA, LARGE_SCALE)


def draw(cell: Cell, seed: int, i: int) -> tuple[np.ndarray, np.ndarray]:
    """``(W, B)`` of draw ``i``; independent of the leak, so all leaks share the starts."""
    rng = np.random.default_rng((seed, cell.d0, cell.d1, i))
    W = rng.uniform(-cell.scale, cell.scale, size=(cell.d1, cell.d0))
    B = rng.uniform(-cell.scale, cell.scale, size=(cell.d0, cell.d1))
    return W, B


def circuit(cell: Cell, W: np.ndarray, B: np.ndarray) -> DynamicInversion:
    return DynamicInversion(W=(jnp.asarray(W),), B=(jnp.asarray(B),), alpha=cell.alpha, g=(parse("linear"),))


# ---- one run, one cell ---------------------------------------------------------------
@dataclass
class RunRecord:
    draw: int
    success: bool
    iterations: int
    seconds: float
    abscissa_before: float
    abscissa_after: float
    target: float
    b_growth: float  # max|B_final| / max|B_0|
    blew_up: bool
    stalled: bool  # stopped by the patience rule
    message: str


def blew_up(message: str, abscissa_after: float, b_growth: float) -> bool:
    failed_step = "non-finite" in message or "blew up" in message or "Lyapunov" in message
    return failed_step or not math.isfinite(abscissa_after) or not b_growth <= BLOWUP_GROWTH


def run_one(cell: Cell, method: str, seed: int, i: int, max_iter: int | None = None) -> RunRecord:
    """``stabilize`` on draw ``i`` of ``cell`` w.r.t. B, timed (wall clock)."""
    W, B = draw(cell, seed, i)
    c = circuit(cell, W, B)
    settings = dict(METHOD_SETTINGS[method])
    if max_iter is not None:
        settings["max_iter"] = max_iter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on the heuristic's singular Lyapunov solves
        t = time.perf_counter()
        r = stabilize(c, lambda c: c.B, margin=MARGIN, **settings)
        seconds = time.perf_counter() - t
    B_final = np.asarray(r.circuit.B[0])
    growth = float(np.max(np.abs(B_final)) / np.max(np.abs(B))) if np.all(np.isfinite(B_final)) else math.inf
    return RunRecord(
        draw=i,
        success=bool(r.success),
        iterations=int(r.iterations),
        seconds=seconds,
        abscissa_before=float(r.abscissa_before),
        abscissa_after=float(r.abscissa_after),
        target=float(r.target),
        b_growth=growth,
        blew_up=blew_up(r.message, float(r.abscissa_after), growth),
        stalled=r.message.startswith("stalled"),
        message=r.message,
    )


_warm: set[tuple[int, int, str]] = set()


def warm_up(cell: Cell, method: str, seed: int) -> None:
    """One untimed short call per shape and method, so that timings exclude compilation."""
    key = (cell.d0, cell.d1, method)
    if key not in _warm:
        run_one(cell, method, seed, WARMUP_DRAW, max_iter=2)
        _warm.add(key)


def _median(xs) -> float:
    xs = list(xs)
    return float(np.median(xs)) if xs else math.nan


@dataclass
class CellResult:
    """Summary of one method on one cell (``runs`` keeps every draw)."""

    name: str
    shape: str
    kind: str
    d0: int
    d1: int
    alpha: float
    scale: float
    method: str
    feasible: bool
    target: float
    runs: int
    successes: int
    success_rate: float
    median_iterations: float
    max_iterations: int
    median_seconds: float
    total_seconds: float
    blowups: int
    blowup_rate: float
    stalled: int
    median_final_abscissa: float
    max_b_growth: float
    max_iter: int
    extra: dict = field(default_factory=dict)
    records: list[RunRecord] = field(default_factory=list)

    def to_json(self, with_records: bool = True) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("extra", "records")}
        d.update(self.extra)
        if with_records:  # columnar: one row per draw
            cols = list(RunRecord.__dataclass_fields__)
            d["records"] = {"columns": cols, "rows": [[getattr(r, c) for c in cols] for r in self.records]}
        return d


def summarise(cell: Cell, method: str, records: list[RunRecord], max_iter: int, **extra) -> CellResult:
    n = len(records)
    successes = sum(r.success for r in records)
    blowups = sum(r.blew_up for r in records)
    return CellResult(
        name=cell.name,
        shape=cell.shape,
        kind=cell.kind,
        d0=cell.d0,
        d1=cell.d1,
        alpha=cell.alpha,
        scale=cell.scale,
        method=method,
        feasible=cell.feasible,
        target=float(target_abscissa(circuit(cell, *draw(cell, 0, 0)), MARGIN)),
        runs=n,
        successes=successes,
        success_rate=successes / n if n else math.nan,
        median_iterations=_median(r.iterations for r in records),
        max_iterations=max((r.iterations for r in records), default=0),
        median_seconds=_median(r.seconds for r in records),
        total_seconds=float(sum(r.seconds for r in records)),
        blowups=blowups,
        blowup_rate=blowups / n if n else math.nan,
        stalled=sum(r.stalled for r in records),
        median_final_abscissa=_median(r.abscissa_after for r in records),
        max_b_growth=max((r.b_growth for r in records), default=math.nan),
        max_iter=max_iter,
        extra=dict(extra),
        records=records,
    )


def run_cell(cell: Cell, method: str, draws, seed: int, max_iter: int | None = None, log=True) -> CellResult:
    """``method`` on the given draw indices of ``cell``: the runner shared with the experiment."""
    draws = list(draws)
    warm_up(cell, method, seed)
    t = time.perf_counter()
    records = [run_one(cell, method, seed, i, max_iter) for i in draws]
    res = summarise(cell, method, records, max_iter or METHOD_SETTINGS[method]["max_iter"])
    if log:
        print(
            f"  {cell.name:<16} {method:<9} {res.successes}/{res.runs} stable, median {res.median_iterations:g} it, "
            f"blew up {res.blowups}, {time.perf_counter() - t:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    return res


# ---- 1000 -> 10 --------------------------------------------------------------------
def run_large(seed: int, ssa_seeds: int, heuristic_seeds: int, quick: bool) -> list[CellResult]:
    """SSA on ``ssa_seeds`` draws and the heuristic on the first ``heuristic_seeds`` of them,
    same starts; ``speedup`` = heuristic seconds / SSA seconds on the same draw (median)."""
    cell = large_cell()
    ssa = run_cell(cell, "ssa", range(max(ssa_seeds, heuristic_seeds)), seed)
    cap = QUICK_HEURISTIC_ITERATIONS if quick else None
    heur = run_cell(cell, "heuristic", range(heuristic_seeds), seed, max_iter=cap)
    ssa_by_draw = {r.draw: r for r in ssa.records}
    ratios, per_iteration, heur_seconds = [], [], []
    for r in heur.records:
        per_it = r.seconds / max(r.iterations, 1)
        per_iteration.append(per_it)
        heur_seconds.append(per_it * HEURISTIC_ASSUMED_ITERATIONS if quick else r.seconds)
        ratios.append(heur_seconds[-1] / ssa_by_draw[r.draw].seconds)
    heur.extra = {
        "speedup": _median(ratios),
        # the same ratio against the SSA median over all its draws (one 40 ms SSA run is noisy)
        "speedup_vs_ssa_median": _median(heur_s / ssa.median_seconds for heur_s in heur_seconds),
        "extrapolated": quick,
        "seconds_per_iteration": _median(per_iteration),
        "note": (
            f"EXTRAPOLATED: capped at {cap} iterations, per-iteration time x {HEURISTIC_ASSUMED_ITERATIONS} iterations"
            if quick
            else ("" if heur.successes == heur.runs else f"FAILED in {heur.runs - heur.successes}/{heur.runs}: time to its stop")
        ),
    }
    versus = f"{heur.extra['speedup_vs_ssa_median']:.0f}x{'*' if quick else ''} against the SSA median time"
    heur.extra["note"] = "; ".join(x for x in (heur.extra["note"], versus) if x)
    if quick:
        heur.extra["extrapolated_median_seconds"] = _median(per_iteration) * HEURISTIC_ASSUMED_ITERATIONS
    ssa.extra = {
        "speedup": 1.0,
        "seconds_per_iteration": _median(r.seconds / max(r.iterations, 1) for r in ssa.records),
        "note": "",
    }
    return [ssa, heur]


# ---- table, targets ------------------------------------------------------------------
def fmt(x, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


TABLE_HEADER = (
    "| case | method | success | median it | max it | median s | blew up | stalled | median final sa | max B growth | speedup | note |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
)


def table_row(r: CellResult) -> str:
    seconds = r.extra.get("extrapolated_median_seconds", r.median_seconds)
    star = "*" if r.extra.get("extrapolated") else ""
    note = r.extra.get("note", "")
    if not r.feasible:
        note = (note + "; " if note else "") + "infeasible (expanding, alpha = 0: target 0)"
    return (
        f"| {r.name} | {r.method} | {r.successes}/{r.runs} | {fmt(r.median_iterations, 'g')} | {r.max_iterations} "
        f"| {fmt(seconds, '.3g')}{star} | {r.blowups}/{r.runs} | {r.stalled}/{r.runs} | {fmt(r.median_final_abscissa, '.3g')} "
        f"| {fmt(r.max_b_growth, '.3g')} | {fmt(r.extra.get('speedup'), '.1f') + ('x' if 'speedup' in r.extra else '')}{star} | {note} |"
    )


def markdown_table(results: list[CellResult]) -> str:
    return "\n".join([*TABLE_HEADER, *(table_row(r) for r in results)])


def check_targets(results: list[CellResult], inits: int) -> list[tuple[str, bool | None, str]]:
    """``(description, met, measured)`` for both targets, from this run's results; ``met`` is
    None when the case was not run."""
    out = []
    large = {r.method: r for r in results if (r.d0, r.d1) == LARGE_SHAPE}
    desc = f"1000->10: SSA >= {TARGET_SPEEDUP:g}x faster than the heuristic to sa < -0.01, SSA stable on every draw"
    if "ssa" in large and "heuristic" in large:
        ssa, heur = large["ssa"], large["heuristic"]
        speedup = heur.extra["speedup"]
        met = speedup >= TARGET_SPEEDUP and ssa.successes == ssa.runs
        measured = (
            f"{speedup:.0f}x on the same draw, {heur.extra['speedup_vs_ssa_median']:.0f}x against the SSA median "
            f"(heuristic {heur.successes}/{heur.runs} stable, "
            f"{heur.extra.get('extrapolated_median_seconds', heur.median_seconds):.1f} s; SSA {ssa.successes}/{ssa.runs} stable, "
            f"median {ssa.median_seconds:.3f} s)"
        )
        if heur.extra.get("extrapolated"):
            measured += " - EXTRAPOLATED heuristic time (--quick), not a measurement"
        out.append((desc, met, measured))
    else:
        out.append((desc, None, "case not run"))
    desc = f"Fig. S1 feasible cells: SSA stable in 100% of {TARGET_INITS} inits each"
    cells = [r for r in results if r.method == "ssa" and r.feasible and (r.d0, r.d1) in FIG_S1_SHAPES]
    if cells:
        bad = [f"{r.name} {r.successes}/{r.runs}" for r in cells if r.successes != r.runs]
        met = False if bad else True if all(r.runs >= TARGET_INITS for r in cells) else None
        measured = f"{sum(r.successes for r in cells)}/{sum(r.runs for r in cells)} over {len(cells)} cells"
        measured += f"; below 100%: {', '.join(bad)}" if bad else ""
        if inits < TARGET_INITS:
            measured += f" - only {inits} inits per cell (target needs {TARGET_INITS})"
        out.append((desc, met, measured))
    else:
        out.append((desc, None, "case not run"))
    return out


def verdict_word(met: bool | None, measured: str = "") -> str:
    word = "MET" if met else "NOT MET" if met is not None else "NOT MEASURED" if "only" in measured else "NOT RUN"
    return word + (" (extrapolated)" if "EXTRAPOLATED" in measured else "")


def machine_info() -> dict:
    dev = jax.devices()[0]
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "neurodyn": nd.__version__,
        "device": f"{dev.platform}:{dev.device_kind}",
        "blas_threads": {v: os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")},
        "loadavg_start": list(os.getloadavg()),
    }


def settings_info() -> dict:
    return {
        "margin": MARGIN,
        "methods": METHOD_SETTINGS,
        "fig_s1": {"shapes_d0_d1": FIG_S1_SHAPES, "leaks": FIG_S1_LEAKS, "scale": FIG_S1_SCALE},
        "large": {"shape_d0_d1": LARGE_SHAPE, "alpha": LARGE_ALPHA, "scale": LARGE_SCALE},
        "blowup_growth": BLOWUP_GROWTH,
        "draw_rng": "numpy.random.default_rng((seed, d0, d1, i))",
    }


# ---- command line ------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", choices=("figs1", "large"), default=["figs1", "large"])
    p.add_argument("--inits", type=int, default=TARGET_INITS, help="draws per Fig. S1 cell (default 50)")
    p.add_argument("--ssa-seeds", type=int, default=5, help="SSA draws at 1000->10 (default 5)")
    p.add_argument("--heuristic-seeds", type=int, default=1, help="heuristic draws at 1000->10 (default 1: minutes each)")
    p.add_argument("--with-heuristic", action="store_true", help="also run the heuristic on the Fig. S1 cells")
    p.add_argument("--quick", action="store_true", help="smoke run: 5 inits, heuristic at 1000->10 capped and extrapolated")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.inits = min(args.inits, 5)
    if min(args.inits, args.ssa_seeds, args.heuristic_seeds) < 1 or args.seed < 0:
        p.error("--inits, --ssa-seeds and --heuristic-seeds must be >= 1, --seed >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    machine = machine_info()
    print(f"machine: {machine['cpu_count']} CPUs, {machine['platform']}, jax {machine['jax']} on {machine['device']}, "
          f"load {machine['loadavg_start'][0]:.1f}")
    t0 = time.perf_counter()
    results: list[CellResult] = []
    if "figs1" in args.cases:
        methods = ["ssa", "heuristic"] if args.with_heuristic else ["ssa"]
        for cell in fig_s1_cells():
            if cell.feasible:
                results += [run_cell(cell, m, range(args.inits), args.seed) for m in methods]
    if "large" in args.cases:
        results += run_large(args.seed, args.ssa_seeds, args.heuristic_seeds, args.quick)
    machine["loadavg_end"] = list(os.getloadavg())
    machine["wall_seconds"] = time.perf_counter() - t0
    print(markdown_table(results))
    if any(r.extra.get("extrapolated") for r in results):
        print("* extrapolated from a capped run (--quick), not measured")
    targets = check_targets(results, args.inits)
    print(f"targets (this run: {args.inits} inits per Fig. S1 cell, {machine['wall_seconds']:.0f} s wall):")
    for desc, met, measured in targets:
        print(f"  [{verdict_word(met, measured)}] {desc}: {measured}")
    if args.json:
        report = {
            "cases": [r.to_json(with_records=False) for r in results],
            "targets": [{"target": d, "met": m, "verdict": verdict_word(m, s), "measured": s} for d, m, s in targets],
            "settings": settings_info(),
            "args": vars(args),
            "machine": machine,
        }
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
