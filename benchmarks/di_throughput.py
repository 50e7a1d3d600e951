"""Dynamic-inversion throughput: neurodyn's fixed-point routes against per-sample Euler.

What is measured
----------------
The steady state of the nonlinear dynamic-inversion controller (Algorithm 1 of the
Podlaski & Machens 2020 supplement), one layer, g = tanh::

    d delta_0/dt = -delta_0 + B u
    d u/dt       = -alpha u + W tanh(delta_0) - delta_out

for a batch of output errors ``delta_out``, by four baselines and three neurodyn methods on
the same float64 arrays. The baselines are what a researcher would write:

``baseline`` (a)
    Faithful per-sample Algorithm 1: explicit Euler, dt = 0.5, 1000 steps from
    delta_0 = u = 0, the controller updated first as in the public reference code
    (``u += dt * (...)``, then ``delta += dt * (-delta + B u)`` with the new ``u``),
    compiled with ``numba.njit`` and run one sample at a time.
``euler_stop`` (b)
    The same loop, stopping as soon as a step changes no unit by more than
    ``STOP_CHANGE`` (1e-10): a relative error of about 1e-9 here, after a few hundred
    steps rather than 1000.
``numpy_euler`` (c)
    The same scheme batched in numpy (one matrix product per step for all samples),
    stopping when every sample's step changes nothing by more than ``STOP_CHANGE``.
``numpy_newton`` (d)
    Batched Newton in numpy on the reduced controller equation, all Jacobians
    ``W diag(1 - tanh^2(B u)) B - alpha I`` from one matrix product ``g' @ K`` with
    ``K[j] = outer(W[:, j], B[j, :])`` (an ``einsum`` per sample was 4x slower, stacking
    ``W diag(g')`` for all samples 3x) and solved by one batched
    ``numpy.linalg.solve``, stopping when every step is below ``NEWTON_STEP_TOL`` (1e-12
    relative): the limit a fixed-point method can reach on this problem.

and, to compare one step with one step, ``numpy_euler_fixed``: textbook explicit Euler
batched in numpy (both derivatives at the old state; Algorithm 1 updates ``u`` first),
exactly ``SAME_STEPS`` (100) steps of dt 0.5 without a stop test, beside ``euler_fixed``:
``nd.simulate(solver="euler", dt0=0.5, steady_state=False)`` over the same 100 steps, the
same scheme: the two agree to rounding (both are far from the fixed point after 100
textbook steps, whose contraction per step is only about 0.955 here).

and neurodyn's methods:
``ode``
    ``nd.fixed_point(method="ode")`` with its defaults: integrate the batch until it is
    near steady state (Tsit5, steady-state test at ``HANDOFF_RTOL`` = 1e-3, the horizon
    growing from t = 200 until the test passes), then polish with Newton on the reduced
    controller equation; the polish, not the integration, sets the accuracy.
``continuation``
    ``nd.fixed_point(method="continuation")`` with its defaults: the dynamics to rest by
    backward-Euler steps that grow as the residual falls (pseudo-transient continuation,
    ``neurodyn/core/continuation.py``; each step solves ``(I/h - J) dy = f`` through the
    layer's 10 x 10 Schur complement), rest test at ``HANDOFF_RTOL``, then the same polish.
``ode_raw``
    ``nd.simulate(..., steady_state=True)`` alone, without the Newton polish.
``ode_f32``, ``equilibrium_f32``
    The same in float32 (arrays and inputs cast; every tolerance follows the dtype), with
    errors measured against the float64 reference.
``equilibrium``
    ``nd.fixed_point(method="equilibrium")``: Newton from the initial state, verified by
    the spectral abscissa; only samples reported ``stable`` count as valid.

Errors are measured against an independent reference: Newton in numpy on the controller
equation ``F(u) = W tanh(B u) - delta_out - alpha u = 0`` (Jacobian
``W diag(1 - tanh^2(B u)) B - alpha I``), iterated until the step is below 1e-14, and
``delta_0 = B u``. ``max_rel_error`` is the maximum over samples of
``||delta_0 - delta_0_ref|| / ||delta_0_ref||``; a non-finite sample counts as ``inf``.

Timing: every method is called once (compilation included), then timed as the best of
``--repeats`` (>= 3) further calls, interleaved by repeat (all methods once, then all
again) so that a slow spell of the machine hits every method alike; ``compile_s`` is the
first call minus the best one (numba's compilation for the numba loops). Every method
uses all cores: numpy's BLAS and XLA's thread pool are left at their defaults.
``samples_per_s = samples / seconds``; the ratio table divides each neurodyn method's
throughput by each baseline's, within this run.

Cases (1000 samples each by default, ``numpy.random.default_rng(seed)``):

- ``20->10 tanh``: W ~ U(-1, 1) (10 x 20), B = -W^T, alpha = 0.01, delta_out ~ 0.1 N(0, 1);
- ``1000->10 tanh`` (MNIST output layer): W ~ U(-0.01, 0.01) (10 x 1000), B = -50 W^T,
  alpha = 0.01, delta_out ~ 0.1 N(0, 1).

Targets (``1000->10 tanh``, 1000 samples, 2-core CPU): ``equilibrium`` at least as fast
as ``numpy_newton`` (d), ``ode`` and ``continuation`` at least 2x ``numpy_euler`` (c) (the
issue set the goal for a steady-state integrator; ``ode`` resolves the trajectory with Tsit5,
``continuation`` only follows it), and each float32 method
at least 1.5x its float64 version, each with every sample valid and
``max_rel_error <= 1e-4``; and ``euler_fixed`` at least as fast as
``numpy_euler_fixed`` with the same result (relative difference <= 1e-10). The script prints whether they were met, from
the measurements of this run. (Against the fixed 1000-step loop (a), whose work is about
92% after convergence, the ratios look much larger; they are reported, not targeted.)

Run::

    python benchmarks/di_throughput.py                       # full run, both cases
    python benchmarks/di_throughput.py --json di.json   # also write the results
    python benchmarks/di_throughput.py --quick               # 100-sample smoke run
    python benchmarks/di_throughput.py --cases 1000-10 --samples 500

Needs the ``bench`` extra (numba).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
try:
    import numba  # noqa: E402
except ImportError:  # one line instead of a traceback
    raise SystemExit("benchmarks/di_throughput.py needs numba for its baseline: pip install -e '.[bench]'") from None
import numpy as np  # noqa: E402

import neurodyn as nd  # noqa: E402
from neurodyn.circuits import DynamicInversion  # noqa: E402
from neurodyn.core.nonlinearities import parse  # noqa: E402

ALPHA = 0.01
EULER_DT = 0.5
EULER_STEPS = 1000
#: ``ode_raw``: the trajectory's own accuracy (no polish)
SIMULATE_KWARGS = dict(t1=500.0, rtol=1e-6, atol=1e-9)
REFERENCE_STEP_TOL = 1e-14
REFERENCE_MAX_ITERS = 100
#: a baseline sample whose last Euler step still moved delta_0 by more than this has not settled
SETTLED_CHANGE = 1e-8
#: baselines (b) and (c) stop once a step changes no unit by more than this
STOP_CHANGE = 1e-10
#: at most this many Euler steps for (b) and (c) (ten times the paper's loop)
STOP_MAX_STEPS = 10 * EULER_STEPS
#: baseline (d): Newton stops when every step is below this, relative to max(1, ||u||)
NEWTON_STEP_TOL = 1e-12

TARGET_CASE = "1000->10 tanh"
#: neurodyn method -> (baseline, least ratio of throughputs)
TARGET_SPEEDUPS = {
    "equilibrium": ("numpy_newton", 1.0), "ode": ("numpy_euler", 2.0), "continuation": ("numpy_euler", 2.0),
    "equilibrium_f32": ("equilibrium", 1.5), "ode_f32": ("ode", 1.5),  # float32 that pays
    "euler_fixed": ("numpy_euler_fixed", 1.0),  # simulate's Euler on identical steps
}
#: ``euler_fixed`` against ``numpy_euler_fixed``: both take exactly this many Euler steps,
#: and their results may differ by rounding only
SAME_STEPS = 100
SAME_STEPS_TOL = 1e-10
TARGET_MAX_REL_ERROR = 1e-4


# ---- cases -----------------------------------------------------------------------
@dataclass
class Case:
    name: str
    W: np.ndarray  # d1 x d0
    B: np.ndarray  # d0 x d1
    alpha: float
    delta_out: np.ndarray  # samples x d1

    @property
    def samples(self) -> int:
        return self.delta_out.shape[0]


def case_key(name: str) -> str:
    """Shell-friendly id of a case name: ``"1000->10 tanh"`` -> ``"1000-10"``."""
    return name.split()[0].replace("->", "-")


def make_case(name: str, d0: int, w_scale: float, b_gain: float, samples: int, seed: int) -> Case:
    rng = np.random.default_rng(seed)
    W = rng.uniform(-w_scale, w_scale, size=(10, d0))
    delta_out = 0.1 * rng.standard_normal((samples, 10))
    return Case(name, W, np.ascontiguousarray(-b_gain * W.T), ALPHA, delta_out)


CASE_SPECS = {
    "20->10 tanh": dict(d0=20, w_scale=1.0, b_gain=1.0),
    "1000->10 tanh": dict(d0=1000, w_scale=0.01, b_gain=50.0),
}


# ---- reference ---------------------------------------------------------------------
def reference_delta0(case: Case) -> tuple[np.ndarray, float]:
    """Newton on ``F(u) = W tanh(B u) - delta_out - alpha u`` for every sample (numpy).

    Returns ``(delta_0_ref, max |F|)``; raises if a sample's step does not fall below
    ``REFERENCE_STEP_TOL`` (relative to ``max(1, ||u||)``).
    """
    W, B, a, d = case.W, case.B, case.alpha, case.delta_out
    eye = np.eye(W.shape[0])

    def residual(u):
        return np.tanh(u @ B.T) @ W.T - d - a * u

    u = np.zeros_like(d)
    for _ in range(REFERENCE_MAX_ITERS):
        gain = 1.0 - np.tanh(u @ B.T) ** 2  # samples x d0
        J = np.einsum("ij,sj,jk->sik", W, gain, B) - a * eye
        step = np.linalg.solve(J, -residual(u)[..., None])[..., 0]
        u = u + step
        if np.all(np.linalg.norm(step, axis=1) < REFERENCE_STEP_TOL * np.maximum(1.0, np.linalg.norm(u, axis=1))):
            return u @ B.T, float(np.max(np.abs(residual(u))))
    raise RuntimeError(f"reference Newton did not converge on '{case.name}'")


def relative_errors(delta0: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-sample ``||delta0 - ref|| / ||ref||``, ``inf`` where ``delta0`` is not finite."""
    err = np.linalg.norm(delta0 - ref, axis=1) / np.linalg.norm(ref, axis=1)
    return np.where(np.all(np.isfinite(delta0), axis=1), err, np.inf)


# ---- baseline: per-sample Algorithm 1, numba ---------------------------------------
@numba.njit(cache=False)
def euler_one(W, B, alpha, delta_out, dt, steps, tol, out):
    """Algorithm 1 for one sample into ``out``: at most ``steps`` steps, stopping early once
    a step changes no unit by more than ``tol`` (never, for ``tol < 0``); returns ``(steps
    taken, the last step's max|change of delta|)``."""
    d1, d0 = W.shape
    delta = out
    delta[:] = 0.0
    u = np.zeros(d1)
    g = np.empty(d0)
    last = 0.0
    for step in range(1, steps + 1):
        biggest, last = 0.0, 0.0
        for j in range(d0):  # g(delta) once per step, as the reference code's vectorised tanh
            g[j] = math.tanh(delta[j])
        for i in range(d1):  # controller first (public reference code)
            acc = 0.0
            for j in range(d0):
                acc += W[i, j] * g[j]
            change = dt * (-alpha * u[i] + acc - delta_out[i])
            u[i] += change
            biggest = max(biggest, abs(change))
        for j in range(d0):
            acc = 0.0
            for i in range(d1):
                acc += B[j, i] * u[i]
            change = dt * (-delta[j] + acc)
            delta[j] += change
            last = max(last, abs(change))
        if max(biggest, last) <= tol:
            return step, last
    return steps, last


@numba.njit(cache=False)
def euler_all(W, B, alpha, delta_out, dt, steps, tol=-1.0):
    """Every sample in turn, each stopping on its own: ``(delta_0, steps taken, last-step change)``."""
    out = np.empty((delta_out.shape[0], W.shape[1]))
    taken = np.empty(delta_out.shape[0], dtype=np.int64)
    last = np.empty(delta_out.shape[0])
    for s in range(delta_out.shape[0]):
        taken[s], last[s] = euler_one(W, B, alpha, delta_out[s], dt, steps, tol, out[s])
    return out, taken, last


def numpy_euler(W, B, alpha, delta_out, dt=EULER_DT, tol=STOP_CHANGE, max_steps=STOP_MAX_STEPS):
    """(c): Algorithm 1 batched in numpy, stopping when no sample changes by more than ``tol``."""
    delta = np.zeros((delta_out.shape[0], W.shape[1]))
    u = np.zeros_like(delta_out)
    for step in range(1, max_steps + 1):
        du = dt * (np.tanh(delta) @ W.T - delta_out - alpha * u)
        u += du
        dd = dt * (u @ B.T - delta)
        delta += dd
        if max(np.max(np.abs(du)), np.max(np.abs(dd))) <= tol:
            break
    return delta, step


def numpy_euler_same_steps(W, B, alpha, delta_out, dt=EULER_DT, steps=None):
    """Textbook explicit Euler batched in numpy (both derivatives at the old state, as
    diffrax's ``Euler``), exactly ``steps`` (``SAME_STEPS``) steps, no stop test."""
    delta = np.zeros((delta_out.shape[0], W.shape[1]))
    u = np.zeros_like(delta_out)
    for _ in range(SAME_STEPS if steps is None else steps):
        du = dt * (np.tanh(delta) @ W.T - delta_out - alpha * u)
        delta += dt * (u @ B.T - delta)
        u += du
    return delta, SAME_STEPS if steps is None else steps


def numpy_newton(W, B, alpha, delta_out, tol=NEWTON_STEP_TOL, max_iters=REFERENCE_MAX_ITERS):
    """(d): batched Newton on ``W tanh(B u) - delta_out - alpha u = 0``, every Jacobian from
    one matrix product; ``(delta_0, iterations)``."""
    d1, d0 = W.shape
    eye = np.eye(d1)
    # J_s = W diag(g'_s) B = sum_j g'_sj W[:, j] B[j, :]: with K[j] = outer(W[:, j], B[j, :])
    # flattened, every sample's Jacobian is one row of the single product g' @ K
    K = (W.T[:, :, None] * B[:, None, :]).reshape(d0, d1 * d1)
    u = np.zeros_like(delta_out)
    for it in range(1, max_iters + 1):
        t = np.tanh(u @ B.T)
        J = ((1.0 - t * t) @ K).reshape(len(u), d1, d1) - alpha * eye
        step = np.linalg.solve(J, (delta_out + alpha * u - t @ W.T)[..., None])[..., 0]
        u += step
        if np.all(np.linalg.norm(step, axis=1) < tol * np.maximum(1.0, np.linalg.norm(u, axis=1))):
            break
    return u @ B.T, it


# ---- timing ------------------------------------------------------------------------
def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def circuit_of(case: Case, dtype=jnp.float64) -> DynamicInversion:
    return DynamicInversion(W=(jnp.asarray(case.W, dtype),), B=(jnp.asarray(case.B, dtype),), alpha=case.alpha, g=(parse("tanh"),))


# Each method is prepared as (call, finish): ``call()`` computes, ``finish(output)`` gives
# the delta_0, the valid samples, a note and whether errors count only valid samples.
def prepare_baseline(case: Case):
    def finish(out):
        delta0, _, last = out
        finite = np.all(np.isfinite(delta0), axis=1)
        settled = finite & (last <= SETTLED_CHANGE)
        note = (f"Euler dt={EULER_DT} x{EULER_STEPS}; non-finite {int(np.sum(~finite))}/{case.samples}, "
                f"unsettled {int(np.sum(~settled))}/{case.samples} (last-step max|d delta| {np.max(last):.1e})")
        return delta0, settled, note, False

    return lambda: euler_all(case.W, case.B, case.alpha, case.delta_out, EULER_DT, EULER_STEPS), finish


def prepare_euler_stop(case: Case):
    def finish(out):
        delta0, steps, _ = out
        ok = np.all(np.isfinite(delta0), axis=1) & (steps < STOP_MAX_STEPS)
        return delta0, ok, f"stops at step change <= {STOP_CHANGE:g}: {int(steps.min())}-{int(steps.max())} steps (mean {steps.mean():.0f})", False

    return lambda: euler_all(case.W, case.B, case.alpha, case.delta_out, EULER_DT, STOP_MAX_STEPS, STOP_CHANGE), finish


def prepare_numpy_euler(case: Case):
    def finish(out):
        delta0, steps = out
        ok = np.all(np.isfinite(delta0), axis=1) & (steps < STOP_MAX_STEPS)
        return delta0, ok, f"batched, stops at step change <= {STOP_CHANGE:g}: {steps} steps", False

    return lambda: numpy_euler(case.W, case.B, case.alpha, case.delta_out), finish


def prepare_numpy_euler_fixed(case: Case):
    def finish(out):
        delta0, steps = out
        return delta0, np.all(np.isfinite(delta0), axis=1), f"batched textbook Euler, exactly {steps} steps of dt {EULER_DT}, no stop test", False

    return lambda: numpy_euler_same_steps(case.W, case.B, case.alpha, case.delta_out), finish


def prepare_euler_fixed(case: Case):
    c, inputs = circuit_of(case), {"delta_out": case.delta_out}

    def finish(tr):
        ok = np.all(np.isfinite(tr.final["delta_0"]), axis=1)
        return tr.final["delta_0"], ok, f"diffrax Euler, {tr.num_steps} steps of dt {EULER_DT}, no stop test", False

    return lambda: nd.simulate(c, inputs, solver="euler", dt0=EULER_DT, t1=SAME_STEPS * EULER_DT, steady_state=False), finish


def prepare_numpy_newton(case: Case):
    def finish(out):
        delta0, its = out
        return delta0, np.all(np.isfinite(delta0), axis=1), f"batched, {its} iterations to step < {NEWTON_STEP_TOL:g}", False

    return lambda: numpy_newton(case.W, case.B, case.alpha, case.delta_out), finish


def prepare_fixed_point(case: Case, method: str, dtype=jnp.float64):
    c, inputs = circuit_of(case, dtype), {"delta_out": jnp.asarray(case.delta_out, dtype)}

    def finish(eq):
        note = f"stable {int(eq.stable.sum())}/{case.samples}, reason={eq.reason}, newton={eq.newton_steps}"
        if eq.trajectory is not None:
            note += f", {method} steps={eq.trajectory.num_steps}"
        return np.asarray(eq.state["delta_0"], np.float64), eq.stable, note, method == "equilibrium"

    return lambda: nd.fixed_point(c, inputs, method=method), finish


def prepare_ode_raw(case: Case):
    c, inputs = circuit_of(case), {"delta_out": case.delta_out}

    def finish(tr):
        return tr.final["delta_0"], tr.converged, f"converged {int(tr.converged.sum())}/{case.samples}, reason={tr.reason}, steps={tr.num_steps}", False

    return lambda: nd.simulate(c, inputs, steady_state=True, **SIMULATE_KWARGS), finish


BASELINES = {"baseline": prepare_baseline, "euler_stop": prepare_euler_stop, "numpy_euler": prepare_numpy_euler, "numpy_newton": prepare_numpy_newton}
METHODS = {
    **BASELINES,
    "numpy_euler_fixed": prepare_numpy_euler_fixed,
    "euler_fixed": prepare_euler_fixed,
    "ode": lambda case: prepare_fixed_point(case, "ode"),
    "ode_raw": prepare_ode_raw,
    "equilibrium": lambda case: prepare_fixed_point(case, "equilibrium"),
    "continuation": lambda case: prepare_fixed_point(case, "continuation"),
    "ode_f32": lambda case: prepare_fixed_point(case, "ode", jnp.float32),
    "equilibrium_f32": lambda case: prepare_fixed_point(case, "equilibrium", jnp.float32),
}


@dataclass
class Run:
    """One method's output on one case, with its timing."""

    delta0: np.ndarray
    valid: np.ndarray  # finite and settled or stopped (baselines), stable (fixed_point), converged (simulate)
    seconds: float
    compile_s: float
    note: str
    errors_over_valid_only: bool = False


def time_interleaved(prepared: dict, repeats: int) -> dict[str, Run]:
    """Every method once (compiling; JAX's caches cleared first), then ``repeats`` rounds of
    every method in turn; each method's best round counts."""
    jax.clear_caches()
    first, best, outputs = {}, {}, {}
    for m, (call, _) in prepared.items():
        print(f"    {m} (first call) ...", file=sys.stderr, flush=True)
        outputs[m], first[m] = timed(call)
        best[m] = math.inf
    for _ in range(repeats):
        for m, (call, _) in prepared.items():
            out, sec = timed(call)
            if sec < best[m]:
                best[m], outputs[m] = sec, out
    runs = {}
    for m, (_, finish) in prepared.items():
        delta0, valid, note, valid_only = finish(outputs[m])
        runs[m] = Run(np.asarray(delta0), np.asarray(valid), best[m], max(first[m] - best[m], 0.0), note, valid_only)
    return runs


# ---- rows, table, targets -----------------------------------------------------------
@dataclass
class Row:
    name: str
    method: str
    samples: int
    samples_per_s: float
    speedup: float
    max_rel_error: float
    compile_s: float
    seconds: float
    valid: int
    note: str
    extra: dict = field(default_factory=dict)


def make_row(case: Case, method: str, run: Run, ref: np.ndarray, baseline_sps: float) -> Row:
    errors = relative_errors(run.delta0, ref)
    extra = {}
    if run.errors_over_valid_only:
        extra["max_rel_error_all_samples"] = float(np.max(errors))
        errors = errors[run.valid]
    sps = case.samples / run.seconds
    return Row(
        name=case.name,
        method=method,
        samples=case.samples,
        samples_per_s=sps,
        speedup=sps / baseline_sps,
        max_rel_error=float(np.max(errors)) if errors.size else math.nan,
        compile_s=run.compile_s,
        seconds=run.seconds,
        valid=int(np.sum(run.valid)),
        note=run.note,
        extra=extra,
    )


def run_case(case: Case, repeats: int) -> tuple[list[Row], dict]:
    ref, ref_residual = reference_delta0(case)
    print(f"  {case.name}:", file=sys.stderr, flush=True)
    runs = time_interleaved({m: prepare(case) for m, prepare in METHODS.items()}, repeats)
    baseline_sps = case.samples / runs["baseline"].seconds
    rows = [make_row(case, m, r, ref, baseline_sps) for m, r in runs.items()]
    by = {r.method: r for r in rows}
    for r in rows:
        if r.method not in BASELINES:
            r.extra["ratios"] = {b: r.samples_per_s / by[b].samples_per_s for b in BASELINES}
    # identical steps: the same scheme must give the same numbers
    same = relative_errors(runs["euler_fixed"].delta0, runs["numpy_euler_fixed"].delta0)
    by["euler_fixed"].extra["difference_to_numpy_euler_fixed"] = float(np.max(same))
    return rows, {"name": case.name, "reference_max_abs_residual": ref_residual}


def print_table(rows: list[Row]) -> None:
    header = f"{'case':<15} {'method':<16} {'samples/s':>11} {'max_rel_err':>11} {'compile_s':>9}  note"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r.name:<15} {r.method:<16} {r.samples_per_s:>11.1f} {r.max_rel_error:>11.2e} {r.compile_s:>9.2f}  {r.note}")
    print("\nthroughput ratios, neurodyn / baseline (same run):")
    print(f"{'case':<15} {'method':<16} " + " ".join(f"{b:>13}" for b in BASELINES))
    for r in rows:
        if "ratios" in r.extra:
            print(f"{r.name:<15} {r.method:<16} " + " ".join(f"{r.extra['ratios'][b]:>12.2f}x" for b in BASELINES))


def check_targets(rows: list[Row]) -> list[tuple[str, bool | None, str]]:
    """``(description, met, measured)`` per target from this run's rows; ``met`` is None if not run."""
    by = {(r.name, r.method): r for r in rows}
    results = []
    for method, (baseline, ratio) in TARGET_SPEEDUPS.items():
        desc = f"{TARGET_CASE} {method}: >= {ratio:g}x {baseline}, max_rel_error <= {TARGET_MAX_REL_ERROR:g}, all valid"
        row, base = by.get((TARGET_CASE, method)), by.get((TARGET_CASE, baseline))
        if row is None or base is None:
            results.append((desc, None, "case not run"))
            continue
        measured_ratio = row.samples_per_s / base.samples_per_s
        if "difference_to_numpy_euler_fixed" in row.extra:  # identical steps: the same result, not the fixed point
            desc = f"{TARGET_CASE} {method}: >= {ratio:g}x {baseline}, relative difference to it <= {SAME_STEPS_TOL:g}"
            diff = row.extra["difference_to_numpy_euler_fixed"]
            met = measured_ratio >= ratio and diff <= SAME_STEPS_TOL
            results.append((desc, met, f"{measured_ratio:.2f}x, relative difference {diff:.1e}"))
            continue
        met = measured_ratio >= ratio and row.max_rel_error <= TARGET_MAX_REL_ERROR and row.valid == row.samples
        measured = f"{measured_ratio:.2f}x, error {row.max_rel_error:.2e} ({baseline} {base.max_rel_error:.2e}), valid {row.valid}/{row.samples}"
        results.append((desc, met, measured))
    return results


def machine_info() -> dict:
    dev = jax.devices()[0]
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numba": numba.__version__,
        "numpy": np.__version__,
        "neurodyn": nd.__version__,
        "device": f"{dev.platform}:{dev.device_kind}",
    }


def parse_args(argv=None) -> argparse.Namespace:
    keys = {case_key(n): n for n in CASE_SPECS}
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=1000, help="samples per case (default 1000)")
    p.add_argument("--quick", action="store_true", help="smoke run: 100 samples")
    p.add_argument("--cases", nargs="+", choices=sorted(keys), default=list(keys), help="subset of cases (default all)")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds of every method, best taken (>= 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    if args.repeats < 3:
        p.error("--repeats must be >= 3")
    if args.quick:
        args.samples = min(args.samples, 100)
    args.cases = [keys[k] for k in args.cases]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    machine = machine_info()
    print(f"machine: {machine['cpu_count']} CPUs, {machine['platform']}, jax {machine['jax']} on {machine['device']}")
    rows, references = [], []
    for name in args.cases:
        case_rows, ref = run_case(make_case(name, **CASE_SPECS[name], samples=args.samples, seed=args.seed), args.repeats)
        rows += case_rows
        references.append(ref)
    print_table(rows)
    print(f"reference: Newton to step < {REFERENCE_STEP_TOL:g}; max |F(u_ref)| " + ", ".join(f"{r['name']}: {r['reference_max_abs_residual']:.1e}" for r in references))
    targets = check_targets(rows)
    print(f"targets (defined for 1000 samples on a 2-core CPU; this run: {args.samples} samples, {machine['cpu_count']} CPUs):")
    for desc, met, measured in targets:
        print(f"  [{'NOT RUN' if met is None else 'MET' if met else 'NOT MET'}] {desc}: {measured}")
    if args.json:
        report = {
            "cases": [{**{k: v for k, v in asdict(r).items() if k != "extra"}, **r.extra} for r in rows],
            "references": references,
            "targets": [{"target": d, "met": m, "measured": s} for d, m, s in targets],
            "machine": machine,
        }
        write_json(args.json, report)
    return 0


def write_json(path, report) -> None:
    """Write a benchmark report (shared by the benchmarks)."""
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
