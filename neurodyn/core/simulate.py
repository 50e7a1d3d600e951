"""Integrate a circuit with diffrax, batched over samples inside one solve.

The engine vmaps the circuit's *vector field* over a leading batch axis, so that one
solve with one step sequence integrates every sample (much faster than vmapping the
solve). The solve stops at steady state when every sample satisfies
``max|dy/dt| <= atol + rtol * max|y|``, and stops early (with a reason) on divergence. The
rate is carried beside the state (:class:`RestRate`): taken from the solver's last stage
(or the step's slope), so the test evaluates nothing more per step.

Time-dependent circuits list the discontinuities of their vector field in
``circuit.jump_times()`` (phase switches, square gates; see ``core/schedules.py``). The
engine hands those within ``(t0, t1)`` to diffrax: adaptive solvers step to just before
and resume just after each (``ClipStepSizeController(jump_ts=...)``, no rejected steps at
a jump, FSAL re-evaluated), fixed-step solvers step on a grid of ``dt0`` with the jump
times inserted (``StepTo``). The steady-state stop only fires after the last jump time,
so a phase sequence does not stop in its first phase. Circuits without jumps take exactly
the autonomous path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from .batching import batch_inputs, batched_vector_field, sample_finite, sample_max_abs
from .circuit import Circuit
from .results import Reason

ADAPTIVE_SOLVERS = {
    "tsit5": dfx.Tsit5,
    "dopri5": dfx.Dopri5,
    "dopri8": dfx.Dopri8,
    "bosh3": dfx.Bosh3,
    "heun": dfx.Heun,
    "ralston": dfx.Ralston,
    "midpoint": dfx.Midpoint,
    "kvaerno3": dfx.Kvaerno3,
    "kvaerno5": dfx.Kvaerno5,
}
FIXED_STEP_SOLVERS = {"euler": dfx.Euler}
SOLVERS = tuple(ADAPTIVE_SOLVERS) + tuple(FIXED_STEP_SOLVERS)

#: states whose largest magnitude exceeds this are reported as diverged
DIVERGENCE_THRESHOLD = 1e10

#: the step-size controller runs this much tighter than the steady-state test, with PI
#: coefficients: an explicit solver at rest jitters at about its own tolerance, so a stop
#: test at the same tolerance may never pass. Measured on DI 20->10 tanh (batch 100):
#: I-control with factor 1 or 0.1 stalls (~1000 steps, no stop); factor 0.01 stops after
#: 368 steps; PI (0.4, 0.3) with factor 0.1 after 306 (1000->10: 118 steps vs 139).
CONTROLLER_FACTOR = 0.1
CONTROLLER_PCOEFF, CONTROLLER_ICOEFF = 0.4, 0.3


@dataclass
class Trajectory:
    """Result of :func:`simulate` (numpy arrays; batch axis kept only if the input had one).

    ``ys[name]`` is ``(time, [batch,] *shape)``; ``final[name]`` is ``([batch,] *shape)``.
    ``residual`` is ``max|dy/dt|`` at the final state, per sample. ``reason`` is a
    :class:`~neurodyn.core.results.Reason`: ``steady_state``, ``t1_reached``, ``diverged``,
    ``nonfinite``, ``max_steps`` or ``solver_failed``. ``jump_times`` are the circuit's discontinuities within ``(t0, t1)``
    that the steps were made to land on.
    """

    ts: np.ndarray
    ys: dict[str, np.ndarray]
    final: dict[str, np.ndarray]
    t_final: float
    num_steps: int
    num_rejected_steps: int
    reason: Reason
    residual: np.ndarray
    converged: np.ndarray
    batched: bool
    jump_times: tuple[float, ...] = ()

    @property
    def all_converged(self) -> bool:
        return bool(np.all(self.converged))

    def then(self, later: "Trajectory") -> "Trajectory":
        """This trajectory continued by ``later``, which starts where this one ended."""
        cut = 1 if len(later.ts) and later.ts[0] <= self.ts[-1] else 0  # the shared point once
        return Trajectory(
            ts=np.concatenate([self.ts, later.ts[cut:]]),
            ys={k: np.concatenate([v, later.ys[k][cut:]]) for k, v in self.ys.items()},
            final=later.final,
            t_final=later.t_final,
            num_steps=self.num_steps + later.num_steps,
            num_rejected_steps=self.num_rejected_steps + later.num_rejected_steps,
            reason=later.reason,
            residual=later.residual,
            converged=later.converged,
            batched=self.batched,
            jump_times=self.jump_times + later.jump_times,
        )


def make_solver(name: str):
    if name in ADAPTIVE_SOLVERS:
        return ADAPTIVE_SOLVERS[name](), True
    if name in FIXED_STEP_SOLVERS:
        return FIXED_STEP_SOLVERS[name](), False
    import difflib

    close = difflib.get_close_matches(name, SOLVERS, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ValueError(f"unknown solver '{name}' (choose from {', '.join(SOLVERS)}){hint}")


def jumps_within(circuit: Circuit, t0: float, t1: float) -> tuple[float, ...]:
    """The circuit's jump times strictly inside ``(t0, t1)``, sorted."""
    return tuple(sorted({float(t) for t in circuit.jump_times() if t0 < t < t1}))


def step_grid(t0: float, t1: float, dt0: float, jumps: Sequence[float]) -> np.ndarray:
    """Fixed steps of ``dt0`` from ``t0`` to ``t1`` (last one shorter), with ``jumps``
    inserted; grid points within ``1e-6 dt0`` of a jump or of ``t1`` are dropped."""
    n = math.ceil((t1 - t0) / dt0)
    base = t0 + dt0 * np.arange(n)
    special = np.asarray([*jumps, t1], dtype=float)
    keep = np.min(np.abs(base[:, None] - special[None, :]), axis=1) > 1e-6 * dt0
    keep[0] = True
    return np.union1d(base[keep], special)


class RestRate(dfx.AbstractWrappedSolver):
    """Steps ``(state, rate, t_rate)``: the wrapped solver steps it (``rate`` and ``t_rate``
    have derivative zero), then ``rate`` becomes every sample's ``max|dy/dt|`` at the
    step's end ``t_rate``, read
    from the solver's last stage where it keeps one for the next step (first same as last:
    Tsit5, Dopri5, Bosh3, the Kvaerno methods), else the step's slope ``|y1 - y0| / h``
    (for Euler, exactly the vector field at the step's start, one step late). The
    steady-state event reads it, so the test costs no evaluation of the vector field;
    ``t_rate`` tells it whether the rate was taken after the last jump of the vector
    field (a rejected step keeps the old triple)."""

    solver: dfx.AbstractSolver

    @property
    def term_structure(self):
        return self.solver.term_structure

    @property
    def root_finder(self):
        """An implicit solver's root finder (diffrax reads it to fill in its tolerances)."""
        return self.solver.root_finder

    @property
    def interpolation_cls(self):  # pyright: ignore
        return self.solver.interpolation_cls

    def order(self, terms):
        return self.solver.order(terms)

    def error_order(self, terms):
        return self.solver.error_order(terms)

    def init(self, terms, t0, t1, y0, args):
        return self.solver.init(terms, t0, t1, y0, args)

    def func(self, terms, t0, y0, args):
        return self.solver.func(terms, t0, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        y1, y_error, dense_info, solver_state, result = self.solver.step(terms, t0, t1, y0, args, solver_state, made_jump)
        last = solver_state[1] if isinstance(solver_state, tuple) and len(solver_state) == 2 else None
        if last is not None and jax.tree_util.tree_structure(last) == jax.tree_util.tree_structure(y1):
            rate = sample_max_abs(last[0])
        else:
            rate = sample_max_abs(jax.tree_util.tree_map(lambda a, b: (a - b) / (t1 - t0), y1[0], y0[0]))
        return (y1[0], rate.astype(y1[1].dtype), jnp.asarray(t1, y1[2].dtype)), y_error, dense_info, solver_state, result


def _state_norm(scaled):
    """The step-size controller's error norm over the state alone (not the rate)."""
    return optx.rms_norm(scaled[0])


def _with_tolerances(solver: dfx.AbstractSolver, rtol: float, atol: float) -> dfx.AbstractSolver:
    """An implicit solver (as :func:`make_solver` builds it) whose root finder is given the
    step-size controller's tolerances explicitly, with the norm over the state alone:
    diffrax's default takes them from the controller, which it cannot do through the
    :class:`RestRate` wrapper."""
    if not isinstance(solver, dfx.AbstractImplicitSolver):
        return solver
    return eqx.tree_at(lambda s: (s.root_finder.rtol, s.root_finder.atol, s.root_finder.norm), solver, (rtol, atol, _state_norm))


def _controller(adaptive: bool, rtol: float, atol: float, dt0, jump_ts, grid, norm):
    """``(step-size controller, dt0)`` of one solve: PI control ``CONTROLLER_FACTOR``
    tighter than ``rtol``/``atol`` (error measured by ``norm``), clipped to the jump times,
    for an adaptive solver; the grid with the jumps inserted (``dt0`` then None) or
    constant steps of ``dt0`` for a fixed-step one."""
    if adaptive:
        controller = dfx.PIDController(
            rtol=CONTROLLER_FACTOR * rtol, atol=CONTROLLER_FACTOR * atol, pcoeff=CONTROLLER_PCOEFF, icoeff=CONTROLLER_ICOEFF, norm=norm
        )
        if jump_ts is not None:
            controller = dfx.ClipStepSizeController(controller, jump_ts=jump_ts)
        return controller, dt0
    if grid is not None:
        return dfx.StepTo(ts=grid), None
    return dfx.ConstantStepSize(), dt0


class Horizon(eqx.Module):
    """Where one solve runs: from ``t0`` towards ``t1`` with a first step ``dt0`` (None: the
    controller picks it), saving at ``ts`` (or None), stepping to the sorted ``jump_ts``
    within ``(t0, t1)`` (adaptive solvers) or along ``grid``, the fixed-step grid with the
    jumps inserted (fixed-step solvers with jumps). Arrays: changing them recompiles nothing."""

    t0: jax.Array
    t1: jax.Array
    dt0: jax.Array | None = None
    ts: jax.Array | None = None
    jump_ts: jax.Array | None = None
    grid: jax.Array | None = None


class SolveOptions(eqx.Module):
    """How one solve runs (each option fixes the compiled program): the diffrax ``solver``,
    whether it is ``adaptive``, the accuracy ``rtol``/``atol`` (the steady-state test; the
    controller runs ``CONTROLLER_FACTOR`` tighter), whether to stop at ``steady_state``,
    ``max_steps`` and a ``progress`` bar."""

    solver: dfx.AbstractSolver
    adaptive: bool = eqx.field(static=True)
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    steady_state: bool = eqx.field(static=True, default=True)
    max_steps: int = eqx.field(static=True, default=100_000)
    progress: bool = eqx.field(static=True, default=False)


@eqx.filter_jit
def _solve(circuit: Circuit, inputs, y0, horizon: Horizon, options: SolveOptions):
    """One diffrax solve of the batch, stopping at steady state or divergence (events)."""
    rtol, atol, jump_ts = options.rtol, options.atol, horizon.jump_ts
    f = batched_vector_field(circuit)
    # the state travels with every sample's rate at the last step's end (RestRate)
    term = dfx.ODETerm(lambda t, y, args: (f(t, y[0], args), jnp.zeros_like(y[1]), jnp.zeros_like(y[2])))
    leaf = jax.tree_util.tree_leaves(y0)[0]
    y0 = (y0, jnp.full(leaf.shape[:1], jnp.inf, leaf.dtype), jnp.asarray(horizon.t0, leaf.dtype))

    def steady(t, y, args, **kw):
        at_rest = jnp.all(y[1] <= atol + rtol * sample_max_abs(y[0]))
        if jump_ts is None:
            return at_rest
        return jnp.logical_and(at_rest, y[2] > jump_ts[-1])

    def diverged(t, y, args, **kw):
        leaves = jax.tree_util.tree_leaves(y[0])
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))
        return jnp.logical_or(~finite, jnp.max(sample_max_abs(y[0])) > DIVERGENCE_THRESHOLD)

    conds = {"diverged": diverged}
    if options.steady_state:
        conds["steady"] = steady
    controller, dt0 = _controller(options.adaptive, rtol, atol, horizon.dt0, jump_ts, horizon.grid, _state_norm)
    subs = [dfx.SubSaveAt(t1=True)]
    if horizon.ts is not None:
        subs.append(dfx.SubSaveAt(ts=horizon.ts))
    sol = dfx.diffeqsolve(
        term,
        RestRate(_with_tolerances(options.solver, CONTROLLER_FACTOR * rtol, CONTROLLER_FACTOR * atol)),
        horizon.t0,
        horizon.t1,
        dt0,
        y0,
        args=inputs,
        saveat=dfx.SaveAt(subs=subs),
        stepsize_controller=controller,
        event=dfx.Event(conds),
        max_steps=options.max_steps,
        throw=False,
        progress_meter=dfx.TqdmProgressMeter() if options.progress else dfx.NoProgressMeter(),
    )
    final = jax.tree_util.tree_map(lambda x: x[0], sol.ys[0][0])
    residual = sample_max_abs(f(sol.ts[0][0], final, inputs))
    scale = sample_max_abs(final)
    saved = (sol.ts[1], sol.ys[1][0]) if horizon.ts is not None else (None, None)
    return dict(
        t_final=sol.ts[0][0],
        final=final,
        residual=residual,
        scale=scale,
        saved=saved,
        result=sol.result,
        event_mask=sol.event_mask,
        num_steps=sol.stats["num_steps"],
        num_rejected=sol.stats["num_rejected_steps"],
    )


def simulate(
    circuit: Circuit,
    inputs: Mapping[str, jax.Array],
    *,
    t0: float = 0.0,
    t1: float = 200.0,
    solver: str = "tsit5",
    dt0: float | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    saveat: int | Sequence[float] | None = None,
    steady_state: bool = True,
    max_steps: int = 100_000,
    progress: bool = False,
    y0: Mapping[str, jax.Array] | None = None,
) -> Trajectory:
    """Integrate ``circuit`` from ``t0`` towards ``t1`` for every sample of ``inputs``.

    Arguments:
        circuit: the circuit (its arrays set).
        inputs: per-sample inputs; each may carry a leading batch axis.
        saveat: number of evenly spaced save times over the run (``[t0, t1]``, or
            ``[t0, t_final]`` when it stops early: the solve is then repeated once, by the
            same steps, to save there; the points between steps come from the solver's
            dense interpolation), a list of times, or None to keep only the final state.
        rtol: the relative accuracy asked. The steady-state test is every sample's
            ``max|dy/dt| <= atol + rtol max|y|`` (the error at rest is then about this
            over the spectral abscissa); the step-size controller runs at
            ``CONTROLLER_FACTOR`` times ``rtol`` and ``atol`` so that the test can pass.
        atol: the absolute accuracy asked (as ``rtol``).
        steady_state: stop at steady state (else integrate to ``t1``); never before the
            last of the circuit's jump times within ``(t0, t1)``.
        y0: initial state (default ``circuit.init_state``), batched like the inputs.

    The circuit's ``jump_times()`` within ``(t0, t1)`` are stepped to exactly (module
    docstring); they are returned in ``Trajectory.jump_times``.

    Returns a :class:`Trajectory`; numerical failure is reported in ``reason`` and
    ``converged``, never raised.
    """
    if not t1 > t0:
        raise ValueError(f"t1 ({t1}) must be greater than t0 ({t0})")
    if rtol <= 0 or atol <= 0:
        raise ValueError("rtol and atol must be positive")
    slv, adaptive = make_solver(solver)
    if not adaptive and dt0 is None:
        raise ValueError(f"solver '{solver}' uses a fixed step: set dt0")
    binputs, n, had_batch = batch_inputs(circuit, inputs)
    if y0 is None:
        y0 = jax.vmap(circuit.init_state)(binputs)
    else:
        y0 = {k: jnp.broadcast_to(jnp.asarray(y0[k]), (n, *s)) for k, s in circuit.state_shapes().items()}
    dtype = jax.tree_util.tree_leaves(y0)[0].dtype
    ts = None
    if saveat is not None:
        ts = np.linspace(t0, t1, int(saveat)) if np.isscalar(saveat) else np.asarray(saveat, dtype=float)
        if ts.ndim != 1 or ts.size == 0 or np.any(np.diff(ts) <= 0) or ts[0] < t0 or ts[-1] > t1:
            raise ValueError("saveat times must increase strictly and lie within [t0, t1]")
        ts = jnp.asarray(ts, dtype)
    jumps = jumps_within(circuit, float(t0), float(t1))
    jump_ts = jnp.asarray(jumps, dtype) if jumps else None
    grid = None
    if jumps and not adaptive:
        grid = jnp.asarray(step_grid(float(t0), float(t1), float(dt0), jumps), dtype)
    options = SolveOptions(slv, adaptive, rtol, atol, steady_state, int(max_steps), progress)

    def solve(t_end, ts, grid):
        first = None if dt0 is None else jnp.asarray(dt0, dtype)
        return _solve(circuit, binputs, y0, Horizon(jnp.asarray(t0, dtype), jnp.asarray(t_end, dtype), first, ts, jump_ts, grid), options)

    out = solve(t1, ts, grid)
    t_stop = float(out["t_final"])
    if ts is not None and np.isscalar(saveat) and t0 < t_stop < t1:
        # the run stopped early (steady state or divergence): save the count asked for over
        # [t0, t_stop] instead, by the same steps again (same compiled solve; the stop is
        # where it was, as the steps up to it do not depend on t1)
        ts = jnp.asarray(np.linspace(t0, t_stop, int(saveat)), dtype)
        if grid is not None:
            grid = jnp.asarray(step_grid(float(t0), t_stop, float(dt0), jumps), dtype)
        out["saved"] = solve(t_stop, ts, grid)["saved"]
    return _trajectory(out, circuit, had_batch, rtol, atol, steady_state, jumps)


#: :func:`simulate_to_rest` extends a run that is still moving at ``t1`` this many times,
#: each time by as long again as it has run (200 -> 12,800 with the defaults)
HORIZON_DOUBLINGS = 6


def simulate_to_rest(circuit: Circuit, inputs: Mapping[str, jax.Array], *, t0: float = 0.0, t1: float = 200.0, max_steps: int = 100_000, **kwargs) -> Trajectory:
    """:func:`simulate` to steady state with a horizon that grows: a run that reaches ``t1``
    still moving (neither at rest nor diverged) goes on from where it stopped for as long
    again, up to :data:`HORIZON_DOUBLINGS` times, with ``max_steps`` for all segments
    together. The segments share one compiled solve; the trajectory returned joins them.
    Without the steady-state stop, or with a list of save times, it is :func:`simulate`."""
    traj = simulate(circuit, inputs, t0=t0, t1=t1, max_steps=max_steps, **kwargs)
    if not kwargs.get("steady_state", True) or not (kwargs.get("saveat") is None or np.isscalar(kwargs["saveat"])):
        return traj
    for _ in range(HORIZON_DOUBLINGS):
        left = max_steps - traj.num_steps
        if traj.reason != Reason.t1_reached or left <= 0:
            break
        more = simulate(circuit, inputs, t0=traj.t_final, t1=2 * traj.t_final - t0, max_steps=left, y0=traj.final, **kwargs)
        traj = traj.then(more)
    return traj


def _trajectory(out, circuit, had_batch, rtol, atol, steady_state, jumps=()) -> Trajectory:
    final = {k: np.asarray(v) for k, v in out["final"].items()}
    residual = np.asarray(out["residual"])
    scale = np.asarray(out["scale"])
    finite = np.asarray(sample_finite(final)) & np.isfinite(residual)
    converged = finite & (residual <= atol + rtol * scale)
    mask = {k: bool(v) for k, v in out["event_mask"].items()}
    result = out["result"]
    if not np.all(finite):
        reason = Reason.nonfinite
    elif mask.get("diverged"):
        reason = Reason.diverged
    elif mask.get("steady"):
        reason = Reason.steady_state
    elif result == dfx.RESULTS.successful:
        reason = Reason.t1_reached
    elif result == dfx.RESULTS.max_steps_reached:
        reason = Reason.max_steps
    else:
        reason = Reason.solver_failed
    if reason.blew_up:
        converged[:] = False
    ts_saved, ys_saved = out["saved"]
    if ts_saved is not None:
        ts_np = np.asarray(ts_saved)
        keep = np.isfinite(ts_np)
        ts_np = ts_np[keep]
        ys = {k: np.asarray(v)[keep] for k, v in ys_saved.items()}
        t_final = float(out["t_final"])
        if ts_np.size == 0 or ts_np[-1] < t_final:
            ts_np = np.append(ts_np, t_final)
            ys = {k: np.concatenate([ys[k], final[k][None]]) for k in ys}
    else:
        ts_np = np.asarray([float(out["t_final"])])
        ys = {k: v[None] for k, v in final.items()}
    if not had_batch:
        final = {k: v[0] for k, v in final.items()}
        ys = {k: v[:, 0] for k, v in ys.items()}
    return Trajectory(
        ts=ts_np,
        ys=ys,
        final=final,
        t_final=float(out["t_final"]),
        num_steps=int(out["num_steps"]),
        num_rejected_steps=int(out["num_rejected"]),
        reason=reason,
        residual=residual,
        converged=converged,
        batched=had_batch,
        jump_times=tuple(jumps),
    )


@eqx.filter_jit
def _rates(circuit, ts, ys, inputs, keys):
    f = batched_vector_field(circuit)

    def rate(ty):
        dy = f(ty[0], ty[1], inputs)
        return sample_max_abs([dy[k] for k in keys] if keys is not None else dy)

    return jax.lax.map(rate, (ts, ys))


def rate_along(circuit: Circuit, traj: Trajectory, inputs: Mapping[str, jax.Array], keys: Sequence[str] | None = None) -> np.ndarray:
    """``max|dy/dt|`` at every saved time, per sample: shape ``(time, batch)``; over the
    state variables ``keys`` only, when given."""
    binputs, _, _ = batch_inputs(circuit, inputs)
    ys = {k: jnp.asarray(v if traj.batched else v[:, None]) for k, v in traj.ys.items()}
    keys = None if keys is None else tuple(keys)
    return np.asarray(_rates(circuit, jnp.asarray(traj.ts), ys, binputs, keys))


def integrate(
    circuit: Circuit,
    inputs: Mapping[str, jax.Array],
    y0: Mapping[str, jax.Array],
    *,
    t0: float = 0.0,
    t1: float,
    solver: str = "tsit5",
    dt0: float | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    max_steps: int = 4096,
) -> tuple[dict, dict]:
    """Pure-JAX solve over the fixed horizon ``[t0, t1]``, callable inside ``jit``,
    ``vmap`` and ``lax.scan`` (no host transfers, no checks, no steady-state stop).

    ``inputs`` and ``y0`` carry a leading batch axis (as after :func:`batch_inputs`); ``t0``,
    ``t1`` and ``dt0`` are Python numbers (they fix the circuit's jump times within
    ``(t0, t1)``, which the steps land on as in :func:`simulate`). Returns ``(final state,
    stats)`` with ``stats = {"num_steps", "ok"}``; ``ok`` is False when the solver stopped
    before ``t1`` (e.g. ``max_steps``); the state is then the one reached.
    """
    slv, adaptive = make_solver(solver)
    if not adaptive and dt0 is None:
        raise ValueError(f"solver '{solver}' uses a fixed step: set dt0")
    dtype = jax.tree_util.tree_leaves(y0)[0].dtype
    jumps = jumps_within(circuit, float(t0), float(t1))
    jump_ts = jnp.asarray(jumps, dtype) if jumps else None
    grid = jnp.asarray(step_grid(float(t0), float(t1), float(dt0), jumps), dtype) if jumps and not adaptive else None
    controller, dt0 = _controller(adaptive, rtol, atol, dt0, jump_ts, grid, optx.rms_norm)
    sol = dfx.diffeqsolve(
        dfx.ODETerm(batched_vector_field(circuit)),
        slv,
        jnp.asarray(t0, dtype),
        jnp.asarray(t1, dtype),
        None if dt0 is None else jnp.asarray(dt0, dtype),
        dict(y0),
        args=dict(inputs),
        saveat=dfx.SaveAt(t1=True),
        stepsize_controller=controller,
        max_steps=int(max_steps),
        throw=False,
    )
    final = jax.tree_util.tree_map(lambda x: x[0], sol.ys)
    return final, {"num_steps": sol.stats["num_steps"], "ok": sol.result == dfx.RESULTS.successful}
