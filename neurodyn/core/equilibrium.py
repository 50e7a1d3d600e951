"""Fixed points: integrate towards steady state, then polish with Newton.

Three routes:

- ``method="ode"``: :func:`~neurodyn.core.simulate.simulate` to steady state, then
  Newton-polish on the circuit's reduced equilibrium equation;
- ``method="continuation"``: the dynamics to rest by backward-Euler steps that grow
  (:mod:`~neurodyn.core.continuation`, linear solves on the circuit's own structure), then
  the same polish. It follows the trajectory while it moves fast and ends as Newton does,
  so it settles much sooner than an accurate integration; the trajectory is not kept;
- ``method="equilibrium"``: Newton on the reduced equation from the initial state,
  without integrating. Fast, but it may find an unstable fixed point, so the result is
  verified by the spectral abscissa of the Jacobian.

Every way, ``converged`` requires a finite state whose full vector field is below the
tolerance, and ``stable`` requires a negative spectral abscissa there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from .circuit import Circuit, LoopJacobian, flatten, loop_product
from .continuation import ContinuationOptions, _continue, continue_to_rest
from .results import Reason
from .batching import batch_inputs, batched_vector_field, in_chunks, sample_finite, sample_max_abs
from .simulate import Horizon, SolveOptions, Trajectory, _solve, make_solver, simulate, simulate_to_rest
from .stability import spectral_abscissa

METHODS = ("ode", "continuation", "equilibrium")
#: the keyword arguments ``fixed_point(method="continuation")`` passes on
CONTINUATION_OPTIONS = frozenset({"t0", "dt0", "rtol", "atol", "max_steps", "limit_unstable", "y0"})

#: ``method="ode"`` integrates only until Newton can take over: its steady-state test runs at
#: this ``rtol`` (``atol`` a thousandth of it) unless the caller sets them. The polish sets
#: the final accuracy; on DI 1000->10 (1000 samples) rtol 1e-6 took 118 Tsit5 steps and
#: 1e-3 took 30, with the same error after Newton (8e-16)
HANDOFF_RTOL = 1e-3


@dataclass
class Equilibrium:
    """Result of :func:`fixed_point` (numpy; batch axis kept only if the input had one).

    ``residual`` is ``max|dy/dt|`` at ``state`` per sample; ``spectral_abscissa`` the
    largest real part of the Jacobian's eigenvalues there. For samples whose dynamics did
    not settle, ``state`` is where the integration stopped. The samples of a batch share
    one step sequence: one diverging sample stops the whole solve (every sample is then
    reported not converged), and a slow sample sets the pace; solve such samples apart.
    """

    state: dict[str, np.ndarray]
    residual: np.ndarray
    converged: np.ndarray
    spectral_abscissa: np.ndarray
    stable: np.ndarray
    reason: Reason  # converged, unstable_fixed_point, newton_failed, or the solver's reason
    newton_steps: int
    trajectory: Trajectory | None = None

    @property
    def all_converged(self) -> bool:
        return bool(np.all(self.converged))


def default_tol(dtype) -> float:
    """Residual tolerance for ``converged``: tight in float64, loose in float32."""
    return 1e-9 if jnp.dtype(dtype) == jnp.float64 else 1e-4


def newton_tolerances(dtype) -> tuple[float, float]:
    """Newton's step tolerances ``(rtol, atol)`` for ``dtype``: 1e-12 and 1e-14 in float64;
    a few hundred and a few tens of machine epsilons in lower precision, which Newton can
    reach (float32 at 1e-12 ran all its iterations every time)."""
    eps = float(jnp.finfo(dtype).eps)
    return max(1e-12, 100 * eps), max(1e-14, 10 * eps)


def _newton_per_sample(residual, z0, args, rtol, atol, max_steps):
    """Newton (optimistix) on ``residual(z, arg) = 0`` for every sample: ``(z, steps)``."""

    def solve_one(z, arg):
        sol = optx.root_find(residual, optx.Newton(rtol=rtol, atol=atol), z, arg, max_steps=max_steps, throw=False)
        return sol.value, sol.stats["num_steps"]

    z, steps = jax.vmap(solve_one)(z0, args)
    return z, jnp.max(steps)


def _chord_shared(residual, z0, args, rtol, atol, max_steps, jac: LoopJacobian | None = None):
    """Newton for a block whose Jacobian is the same for every sample and state: the
    Jacobian is formed from the declared loop ``jac`` (else differentiated at the first
    sample) and LU-factorised once, then the whole batch iterates
    ``z <- z - J^{-1} r(z)`` (exact in one step for an affine residual; further steps
    refine). It stops when ``|dz| <= atol + rtol |z|`` for every sample, or when a step
    no longer halves the largest scaled step (refinement has reached rounding level)."""
    if jac is None:
        J = jax.jacfwd(residual)(z0[0], jax.tree_util.tree_map(lambda x: x[0], args))
    else:
        J = jac.constant()
    lu = jax.scipy.linalg.lu_factor(J)
    batched = jax.vmap(residual)

    def keep_going(carry):
        _, size, previous, k = carry
        return (k < max_steps) & (size > 1.0) & ((k < 2) | (size < 0.5 * previous))

    def step(carry):
        z, size, _, k = carry
        dz = -jax.scipy.linalg.lu_solve(lu, batched(z, args).T).T
        z = z + dz
        return z, jnp.max(jnp.abs(dz) / (atol + rtol * jnp.abs(z))), size, k + 1

    inf = jnp.asarray(jnp.inf, z0.dtype)
    z, _, _, steps = jax.lax.while_loop(keep_going, step, (z0, inf, inf, 0))
    return z, steps


def _newton_loop(residual, jac: LoopJacobian, lo: int, hi: int, z0, args, rtol, atol, max_steps):
    """Newton for the whole batch at once on a block with a :class:`LoopJacobian`: each
    iteration forms every sample's Jacobian ``left diag(gain) right + shift I`` with
    :func:`~.circuit.loop_product` (one matrix product for the batch) and solves them in
    one batched call. It stops when every
    sample's step satisfies ``|dz| <= atol + rtol |z|`` (as optimistix's Newton does), or
    after ``max_steps``. ``args`` is ``(z, inputs)`` batched; the block is ``z[:, lo:hi]``."""
    eye = jnp.eye(z0.shape[1], dtype=z0.dtype)
    jacobians = jax.vmap(loop_product, in_axes=(None, 0, None))
    batched = jax.vmap(residual)

    def gains(z):
        return jax.vmap(lambda zk, arg: jac.gain(jnp.concatenate([arg[0][:lo], zk, arg[0][hi:]]), arg[1]))(z, args)

    def keep_going(carry):
        _, size, k = carry
        return (k < max_steps) & (size > 1.0)

    def step(carry):
        z, _, k = carry
        J = jacobians(jac.left, gains(z), jac.right) + jac.shift * eye
        dz = -jnp.linalg.solve(J, batched(z, args)[..., None])[..., 0]
        z = z + dz
        scaled = jnp.abs(dz) / (atol + rtol * jnp.abs(z))
        # a sample whose step is not finite is left as it is (the verification reports it)
        return z, jnp.max(jnp.where(jnp.isfinite(scaled), scaled, 0.0)), k + 1

    z, _, steps = jax.lax.while_loop(keep_going, step, (z0, jnp.asarray(jnp.inf, z0.dtype), 0))
    return z, steps


@eqx.filter_jit
def _newton(circuit: Circuit, inputs, z0, rtol, atol, max_steps):
    """Newton on the reduced equation for a batch: jointly, or block by block in the
    order of ``circuit.reduced_blocks()`` (each block with the blocks before it fixed)."""
    blocks = circuit.reduced_blocks()
    if blocks is None:
        z, steps = _newton_per_sample(lambda zz, a: circuit.reduced_residual(zz, a), z0, inputs, rtol, atol, max_steps)
    else:
        z, steps = z0, 0
        for block in blocks:
            lo, hi = block.start, block.stop

            def residual(zk, arg, lo=lo, hi=hi):
                zfull, inp = arg
                return circuit.reduced_residual(jnp.concatenate([zfull[:lo], zk, zfull[hi:]]), inp)[lo:hi]

            if block.shared_jacobian:
                zk, k = _chord_shared(residual, z[:, lo:hi], (z, inputs), rtol, atol, max_steps, block.jacobian)
            elif block.jacobian is not None:
                zk, k = _newton_loop(residual, block.jacobian, lo, hi, z[:, lo:hi], (z, inputs), rtol, atol, max_steps)
            else:
                zk, k = _newton_per_sample(residual, z[:, lo:hi], (z, inputs), rtol, atol, max_steps)
            z, steps = z.at[:, lo:hi].set(zk), steps + k
    state = jax.vmap(circuit.expand)(z, inputs)
    return state, steps


#: the verification runs over the batch in chunks of this many samples, so that its
#: temporaries (the vector field, the loop products) stay a chunk's size, not the batch's
VERIFY_CHUNK = 1024


@eqx.filter_jit
def _verify(circuit: Circuit, state, inputs):
    """Per sample: ``max|dy/dt|``, ``max|y|`` and the spectral abscissa of the Jacobian;
    a batch of at least twice :data:`VERIFY_CHUNK` samples in chunks of that many (and the
    rest in one piece)."""

    def batch(tree):
        y, inp = tree
        f = batched_vector_field(circuit)(0.0, y, inp)
        return sample_max_abs(f), sample_max_abs(y), spectral_abscissa(jax.vmap(circuit.eigenvalues)(y, inp))

    return in_chunks(batch, (state, inputs), VERIFY_CHUNK)


def _resolve(rtol, atol, dtype) -> tuple[float, float]:
    default = newton_tolerances(dtype)
    return (default[0] if rtol is None else rtol), (default[1] if atol is None else atol)


def fixed_point(
    circuit: Circuit,
    inputs: Mapping[str, jax.Array],
    *,
    method: str = "ode",
    tol: float | None = None,
    newton_rtol: float | None = None,
    newton_atol: float | None = None,
    newton_max_steps: int = 64,
    start: Mapping[str, jax.Array] | None = None,
    **simulate_kwargs,
) -> Equilibrium:
    """The fixed point of ``circuit`` for every sample of ``inputs``.

    Arguments:
        method: ``"ode"`` (integrate with ``simulate_kwargs``, then polish; without a
            ``t1`` the horizon grows until the dynamics are at rest,
            :func:`~neurodyn.core.simulate.simulate_to_rest`; without ``rtol`` the
            steady-state test runs at :data:`HANDOFF_RTOL`, ``atol`` a thousandth of
            ``rtol``), ``"continuation"`` (the dynamics to rest by backward-Euler steps
            that grow, :func:`~neurodyn.core.continuation.continue_to_rest`, which takes
            ``dt0``, ``rtol``, ``atol``, ``max_steps``, ``limit_unstable``, ``t0`` and
            ``y0``, with the same hand-off default; then polish) or ``"equilibrium"``
            (Newton on the reduced equation from the initial state).
        tol: residual tolerance for ``converged``: ``max|dy/dt| <= tol * max(1, max|y|)``;
            default 1e-9 in float64, 1e-4 in float32.
        newton_rtol: Newton's relative step tolerance; default by the state's dtype
            (:func:`newton_tolerances`).
        newton_atol: Newton's absolute step tolerance, likewise.
        start: for ``method="equilibrium"``, the state Newton starts from (batched like
            the inputs; default ``circuit.init_state``), e.g. the end of a trajectory.
    """
    if method not in METHODS:
        raise ValueError(f"unknown fixed-point method '{method}' (choose from {', '.join(METHODS)})")
    binputs, _, had_batch = batch_inputs(circuit, inputs)
    traj = None
    if method in ("ode", "continuation"):
        # follow the dynamics until Newton can take over, at a loose tolerance unless one is given
        rtol = simulate_kwargs.setdefault("rtol", HANDOFF_RTOL)
        simulate_kwargs.setdefault("atol", 1e-3 * rtol)
        if method == "continuation":
            unknown = set(simulate_kwargs) - CONTINUATION_OPTIONS
            if unknown:
                raise ValueError(f"method='continuation' takes no {sorted(unknown)} (its options: {', '.join(sorted(CONTINUATION_OPTIONS))})")
            run = continue_to_rest
        else:  # a horizon the caller did not set grows until the dynamics are at rest
            run = simulate if "t1" in simulate_kwargs else simulate_to_rest
        traj = run(circuit, inputs, **simulate_kwargs)
        start = {k: jnp.asarray(v if had_batch else v[None]) for k, v in traj.final.items()}
    elif start is None:
        start = jax.vmap(circuit.init_state)(binputs)
    else:
        n = jax.tree_util.tree_leaves(binputs)[0].shape[0] if binputs else 1
        start = {k: jnp.broadcast_to(jnp.asarray(start[k]), (n, *s)) for k, s in circuit.state_shapes().items()}
    dtype = jax.tree_util.tree_leaves(start)[0].dtype
    tol = default_tol(dtype) if tol is None else tol
    newton_rtol, newton_atol = _resolve(newton_rtol, newton_atol, dtype)
    if traj is not None and traj.reason.blew_up:
        state, steps = start, 0
    else:
        z0 = jax.vmap(circuit.reduce)(start)
        state, steps = _newton(circuit, binputs, z0, newton_rtol, newton_atol, newton_max_steps)
    residual, scale, sa = (np.asarray(x) for x in _verify(circuit, state, binputs))
    state = {k: np.asarray(v) for k, v in state.items()}
    finite = np.isfinite(residual) & np.asarray(sample_finite(state))
    converged = finite & (residual <= tol * np.maximum(1.0, scale))
    stable = converged & (sa < 0)
    if traj is not None and not traj.all_converged:
        # the dynamics did not settle: report the solver's reason, not Newton's, and give
        # the unsettled samples the state the dynamics reached (not Newton's output)
        reason = traj.reason
        converged &= traj.converged
        stable &= traj.converged
        ode_final = {k: np.asarray(v if had_batch else v[None]) for k, v in traj.final.items()}
        keep = traj.converged
        state = {k: np.where(keep.reshape((-1,) + (1,) * (v.ndim - 1)), v, ode_final[k]) for k, v in state.items()}
    elif not np.all(converged):
        reason = Reason.newton_failed if np.all(finite) else Reason.nonfinite
    elif not np.all(stable):
        reason = Reason.unstable_fixed_point
    else:
        reason = Reason.converged
    if not had_batch:
        state = {k: v[0] for k, v in state.items()}
    return Equilibrium(
        state=state,
        residual=residual,
        converged=converged,
        spectral_abscissa=sa,
        stable=stable,
        reason=reason,
        newton_steps=int(steps),
        trajectory=traj,
    )


def check_tolerance(dtype) -> float:
    """Tolerance of the named checks: 1e-8 in float64, 1e-3 in float32."""
    return 1e-8 if jnp.dtype(dtype) == jnp.float64 else 1e-3


@eqx.filter_jit
def _check_values(circuit: Circuit, state, inputs):
    shapes = circuit.state_shapes()
    values = dict(jax.vmap(circuit.checks)(state, inputs))
    closed = jax.eval_shape(circuit.closed_form, jax.tree_util.tree_map(lambda x: x[0], inputs))
    if closed is not None:
        cf = jax.vmap(circuit.closed_form)(inputs)
        diff = jax.vmap(lambda a, b: jnp.linalg.norm(flatten(a, shapes) - flatten(b, shapes)) / jnp.linalg.norm(flatten(b, shapes)))
        values["closed_form_relative_error"] = diff(state, cf)
    return {k: jnp.max(v) for k, v in values.items()}


def checks(circuit: Circuit, state, inputs, tol: float | None = None) -> dict[str, dict]:
    """Named comparisons of a fixed point with the paper: ``closed_form_relative_error``
    (where the circuit has a closed form) and the circuit's own ``checks``, each the
    maximum over the batch, as ``{value, tolerance, passed}``."""
    binputs, _, had_batch = batch_inputs(circuit, inputs)
    state = {k: jnp.asarray(v if had_batch else v[None]) for k, v in state.items()}
    dtype = jax.tree_util.tree_leaves(state)[0].dtype
    tol = check_tolerance(dtype) if tol is None else tol
    out = {}
    for name, value in _check_values(circuit, state, binputs).items():
        value = float(value)
        out[name] = {"value": value, "tolerance": tol, "passed": bool(np.isfinite(value) and value <= tol)}
    return out


@eqx.filter_jit
def _approximation_values(circuit: Circuit, state, inputs):
    return {k: jnp.max(v) for k, v in jax.vmap(circuit.approximations)(state, inputs).items()}


def approximations(circuit: Circuit, state, inputs) -> dict[str, float]:
    """The circuit's ``approximations`` at a fixed point, each the maximum over the batch."""
    binputs, _, had_batch = batch_inputs(circuit, inputs)
    state = {k: jnp.asarray(v if had_batch else v[None]) for k, v in state.items()}
    return {k: float(v) for k, v in _approximation_values(circuit, state, binputs).items()}


def solve_fixed_point(
    circuit: Circuit,
    inputs,
    *,
    method: str = "equilibrium",
    t1: float = 500.0,
    rtol: float = HANDOFF_RTOL,
    atol: float = 1e-3 * HANDOFF_RTOL,
    max_steps: int = 100_000,
    newton_rtol: float | None = None,
    newton_atol: float | None = None,
    newton_max_steps: int = 64,
    tol: float | None = None,
):
    """Pure-JAX fixed point for a batch (every input with a leading batch axis), usable
    inside ``jit``, ``vmap`` and ``lax.scan`` (e.g. by the learning rules).

    Returns ``(state, residual, converged)`` as arrays: ``converged`` requires a finite
    state with ``max|dy/dt| <= tol * max(1, max|y|)`` (``tol`` as in :func:`fixed_point`).
    ``method="ode"`` integrates to steady state with Tsit5 first, then polishes;
    ``method="continuation"`` reaches rest by pseudo-transient continuation (its defaults,
    the rest test at ``rtol`` and ``atol``), then polishes;
    ``method="equilibrium"`` tries Newton first and integrates only when Newton fails,
    except where every reduced block is ``shared_jacobian`` (an affine reduced equation,
    which Newton solves exactly: there is nothing to fall back to, and the integration
    would cost its compilation in every program that solves, and its run time under
    ``vmap``, where both branches of the choice are evaluated).
    """
    if method not in METHODS:
        raise ValueError(f"unknown fixed-point method '{method}' (choose from {', '.join(METHODS)})")
    y0 = jax.vmap(circuit.init_state)(inputs)
    dtype = jax.tree_util.tree_leaves(y0)[0].dtype
    tol = default_tol(dtype) if tol is None else tol
    newton_rtol, newton_atol = _resolve(newton_rtol, newton_atol, dtype)

    def polish(y):
        z0 = jax.vmap(circuit.reduce)(y)
        state, _ = _newton(circuit, inputs, z0, newton_rtol, newton_atol, newton_max_steps)
        f = batched_vector_field(circuit)(0.0, state, inputs)
        residual = sample_max_abs(f)
        finite = jnp.isfinite(residual) & jnp.isfinite(sample_max_abs(state))
        return state, residual, finite & (residual <= tol * jnp.maximum(1.0, sample_max_abs(state)))

    def integrate_then_polish(_):
        solver, _ = make_solver("tsit5")
        horizon = Horizon(jnp.asarray(0.0, dtype), jnp.asarray(t1, dtype))
        out = _solve(circuit, inputs, y0, horizon, SolveOptions(solver, True, rtol, atol, True, max_steps))
        return polish(out["final"])

    if method == "ode":
        return integrate_then_polish(None)
    if method == "continuation":
        options = ContinuationOptions(rtol, atol)
        return polish(_continue(circuit, inputs, y0, jnp.asarray(0.0, dtype), options)["final"])
    blocks = circuit.reduced_blocks()
    if blocks is not None and all(b.shared_jacobian for b in blocks):
        return polish(y0)
    # Newton from the initial state; where it fails for any sample (e.g. a saturated
    # nonlinearity far from the root), the batch is integrated first instead
    result = polish(y0)
    return jax.lax.cond(jnp.all(result[2]), lambda _: result, integrate_then_polish, None)
