"""Pseudo-transient continuation: the dynamics to rest by backward-Euler steps that grow.

Each step is one backward-Euler step of the circuit's own dynamics, linearised at the
current state (a Rosenbrock-Euler step)::

    (I / h - J(y)) dy = f(y),    y <- y + dy

with every sample's own step ``h``. The first steps follow the trajectory from the initial
state; as the dynamics settle the step grows with the residual's fall (``h <- h |f_old| /
|f_new|``, "switched evolution relaxation", at least doubling on an accepted step), and a
step of length h -> infinity is a Newton step: the method ends as Newton does, in a few
steps, where an explicit solver must keep resolving the approach to the fixed point.

Two safeguards keep the steps on the dynamics' own path:

- where the Jacobian has an unstable eigenvalue (spectral abscissa ``s > 0``, from the
  circuit's ``eigenvalues``), the step is at most ``1 / (2 s)``: a longer backward-Euler
  step would reverse the growing mode (its factor ``1 / (1 - h lambda)`` turns negative
  for ``h lambda > 1``) and walk towards the saddle instead of away from it, into another
  basin than the one the dynamics reach;
- a step whose residual grows by more than :data:`REJECT_GROWTH` is taken back and
  retried four times shorter.

The linear solve is the circuit's :meth:`~neurodyn.core.circuit.Circuit.shifted_solve`
(the circuit's structure, e.g. a dynamic-inversion loop's ``d_l x d_l`` Schur complement,
or a dense Jacobian by default). Long steps in a locally stable region are Newton steps,
which could still land on another fixed point than the trajectory would;
:func:`~.equilibrium.fixed_point` verifies every result by its spectral abscissa, and
``method="ode"`` remains the faithful route. The vector field is evaluated at ``t0``:
the method is for autonomous circuits (freeze a time-dependent one, ``Frozen``).
"""

from __future__ import annotations

from collections.abc import Mapping

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp

from .batching import batch_inputs, batched_vector_field, in_chunks, sample_finite, sample_max_abs, sample_where
from .circuit import Circuit
from .simulate import DIVERGENCE_THRESHOLD, Trajectory, _trajectory
from .stability import spectral_abscissa

#: first step, in the circuit's time unit (the leak time constant of most kinds), unless the
#: caller sets ``dt0``: 0.1 took 27 steps on DI 1000->10 (the residual hardly falls while a
#: short step follows the start of the transient), 0.5 took 7, 1 and 2 took 5
DT0 = 1.0
#: an accepted step grows by the residual's fall, at least ``MIN_GROWTH`` (a transient
#: whose rate still rises, e.g. leaving a saddle, would otherwise keep a short first step
#: for hundreds of steps) and at most ``MAX_GROWTH``
MIN_GROWTH, MAX_GROWTH = 2.0, 10.0
#: where the Jacobian's spectral abscissa ``s`` is positive, a step is at most this over ``s``
UNSTABLE_STEP = 0.5
#: a step whose largest rate exceeds this factor times the last one is rejected
REJECT_GROWTH = 10.0
#: the step limit's eigenproblems run this many samples at a time: with the whole batch of
#: 1,000 samples at once (three 100 x 100 loops each) inside the step loop, XLA's CPU runtime
#: hung (jax 0.10.2: every thread waiting, nothing running); 100 at a time finished
EIG_CHUNK = 128
#: steps stop growing at this length (a Newton step to rounding)
MAX_DT = 1e12


class ContinuationOptions(eqx.Module):
    """Tolerances of the rest test (every sample's ``max|f| <= atol + rtol max|y|``), the
    first step, the step budget (accepted and rejected steps together) and whether steps
    are limited where the Jacobian is unstable (module docstring)."""

    rtol: float
    atol: float
    dt0: float = DT0
    max_steps: int = eqx.field(static=True, default=500)
    limit_unstable: bool = eqx.field(static=True, default=True)


@eqx.filter_jit
def _continue(circuit: Circuit, inputs, y0, t0, options: ContinuationOptions):
    """Pseudo-transient continuation of a batch (module docstring). Returns a dict in the
    form of :func:`~.simulate._solve`'s output: ``final``, ``residual``, ``scale``,
    ``t_final`` (the longest pseudo-time of any sample), ``num_steps``, ``num_rejected``,
    ``at_rest``, ``diverged`` and ``exhausted`` (the step budget ran out)."""
    f = batched_vector_field(circuit)
    solve = jax.vmap(circuit.shifted_solve)
    eigenvalues = jax.vmap(circuit.eigenvalues)
    rtol, atol = options.rtol, options.atol
    leaf = jax.tree_util.tree_leaves(y0)[0]
    n, dtype = leaf.shape[0], leaf.dtype

    def rest(y, rate):
        return rate <= atol + rtol * sample_max_abs(y)

    def keep_going(c):  # every sample at rest, or one diverged or non-finite, ends the batch (as in simulate)
        y, _, rate, _, _, k, _ = c
        big = jnp.max(sample_max_abs(y)) > DIVERGENCE_THRESHOLD
        finite = jnp.all(sample_finite(y)) & jnp.all(jnp.isfinite(rate))
        return (k < options.max_steps) & ~jnp.all(rest(y, rate)) & finite & ~big

    def step(c):
        y, fy, rate, h, t, k, rejected = c
        if options.limit_unstable:
            s = in_chunks(lambda tree: spectral_abscissa(eigenvalues(*tree)), (y, inputs), EIG_CHUNK)
            h = jnp.where(s > 0, jnp.minimum(h, UNSTABLE_STEP / s), h)
        trial = jax.tree_util.tree_map(jnp.add, y, solve(y, inputs, 1.0 / h, fy))
        f_trial = f(t0, trial, inputs)
        r_trial = sample_max_abs(f_trial)
        ok = sample_finite(trial) & jnp.isfinite(r_trial) & (r_trial <= REJECT_GROWTH * rate)
        done = rest(y, rate)  # samples at rest keep their state and step
        take = ok & ~done
        growth = jnp.clip(rate / jnp.maximum(r_trial, jnp.finfo(dtype).tiny), MIN_GROWTH, MAX_GROWTH)
        h_next = jnp.where(done, h, jnp.where(ok, jnp.minimum(h * growth, MAX_DT), h / 4.0))
        y = sample_where(take, trial, y)
        fy = sample_where(take, f_trial, fy)
        rate = jnp.where(take, r_trial, rate)
        t = jnp.where(take, t + h, t)
        return y, fy, rate, h_next, t, k + 1, rejected + jnp.any(~ok & ~done)

    f0 = f(t0, y0, inputs)
    h0 = jnp.full((n,), options.dt0, dtype)
    carry = (y0, f0, sample_max_abs(f0), h0, jnp.full((n,), t0, dtype), 0, 0)
    y, fy, rate, _, t, k, rejected = jax.lax.while_loop(keep_going, step, carry)
    scale = sample_max_abs(y)
    return dict(
        final=y,
        residual=rate,
        scale=scale,
        t_final=jnp.max(t),
        num_steps=k,
        num_rejected=rejected,
        at_rest=jnp.all(rest(y, rate)),
        diverged=jnp.max(scale) > DIVERGENCE_THRESHOLD,
        exhausted=k >= options.max_steps,
    )


#: the dense default of ``shifted_solve`` may hold at most this many Jacobian entries for
#: a batch (2 GiB in float64); a larger circuit without structure is refused, not swapped
DENSE_MAX_ENTRIES = 2**28


def continue_to_rest(
    circuit: Circuit,
    inputs: Mapping[str, jax.Array],
    *,
    t0: float = 0.0,
    dt0: float = DT0,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    max_steps: int = 500,
    limit_unstable: bool = True,
    y0: Mapping[str, jax.Array] | None = None,
) -> Trajectory:
    """The dynamics of ``circuit`` to rest by pseudo-transient continuation (module
    docstring), for every sample of ``inputs``: a :class:`~.simulate.Trajectory` holding
    the final state only (``ts`` is the longest pseudo-time reached; the steps are
    backward-Euler steps, not an accurate trajectory). ``reason`` is ``steady_state``,
    ``max_steps``, ``diverged`` or ``nonfinite``; ``converged`` is the rest test per sample.

    ``limit_unstable=False`` drops the step limit where the Jacobian is unstable, and with
    it one eigendecomposition of every sample's Jacobian per step (by the circuit's
    ``eigenvalues``: for DI every loop's ``d x d`` product, which dominates the step from
    loops of about 100 units on). Only for dynamics known to be stable along the way: from
    near a saddle the steps may then end in another basin than the dynamics reach.
    """
    if rtol <= 0 or atol <= 0 or not dt0 > 0:
        raise ValueError("rtol, atol and dt0 must be positive")
    if max_steps < 1:
        raise ValueError("max_steps must be at least 1")
    binputs, n, had_batch = batch_inputs(circuit, inputs)
    if type(circuit).shifted_solve is Circuit.shifted_solve and n * circuit.state_size**2 > DENSE_MAX_ENTRIES:
        raise ValueError(
            f"kind {circuit.kind} solves its continuation steps with dense Jacobians: {n} samples of "
            f"{circuit.state_size} states need {n * circuit.state_size**2:.2e} entries; use method='ode' or fewer samples"
        )
    if y0 is None:
        y0 = jax.vmap(circuit.init_state)(binputs)
    else:
        y0 = {k: jnp.broadcast_to(jnp.asarray(y0[k]), (n, *s)) for k, s in circuit.state_shapes().items()}
    dtype = jax.tree_util.tree_leaves(y0)[0].dtype
    options = ContinuationOptions(rtol, atol, dt0, int(max_steps), bool(limit_unstable))
    out = _continue(circuit, binputs, y0, jnp.asarray(t0, dtype), options)
    out["saved"] = (None, None)
    out["event_mask"] = {"steady": bool(out["at_rest"]), "diverged": bool(out["diverged"])}
    out["result"] = dfx.RESULTS.max_steps_reached if bool(out["exhausted"]) else dfx.RESULTS.successful
    return _trajectory(out, circuit, had_batch, rtol, atol, True)
