"""The engine on a circuit with a known solution: dx/dt = -k (x - x*), x(0) = 0."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
from neurodyn.core import nonlinearities
from neurodyn.core.circuit import REGISTRY, Circuit, register
from neurodyn.core.simulate import rate_along


class Relax(Circuit):
    """Each unit relaxes to its target at rate k; closed form x(t) = x* (1 - exp(-k t))."""

    kind = "test_relax"
    k: jax.Array
    n: int = eqx.field(static=True)

    def state_shapes(self):
        return {"x": (self.n,)}

    def input_shapes(self):
        return {"target": (self.n,)}

    def vector_field(self, t, state, inputs):
        return {"x": -self.k * (state["x"] - inputs["target"])}

    def closed_form(self, inputs):
        return {"x": inputs["target"]}


def test_circuit_contract_is_enforced():
    """A circuit without its dynamics cannot be built; one without the model-file methods
    runs from Python but cannot be registered as a kind."""

    class NoField(Circuit):
        kind = "test_no_field"

        def state_shapes(self):
            return {"x": (1,)}

        def input_shapes(self):
            return {}

    with pytest.raises(TypeError, match="vector_field"):
        NoField()
    with pytest.raises(TypeError, match="Options, array_specs, from_arrays, info"):
        register(Relax)
    assert "test_relax" not in REGISTRY
    tr = nd.simulate(_relax(), {"target": jnp.ones((2, 3))}, t1=50.0)
    assert np.allclose(tr.final["x"], 1.0, atol=1e-5)


def _relax(n=3, k=(0.5, 1.0, 2.0)):
    return Relax(k=jnp.asarray(k), n=n)


def test_trajectory_matches_the_exponential():
    c = _relax()
    target = jnp.asarray([[1.0, -2.0, 0.5], [0.1, 0.2, 0.3]])
    tr = nd.simulate(c, {"target": target}, t1=10.0, saveat=21, steady_state=False, rtol=1e-8, atol=1e-10)
    assert tr.reason == "t1_reached" and tr.ts[0] == 0.0 and tr.ts[-1] == 10.0
    exact = np.asarray(target)[None] * (1 - np.exp(-np.asarray(c.k)[None, None] * tr.ts[:, None, None]))
    assert np.max(np.abs(tr.ys["x"] - exact)) < 1e-8
    # the rate along the trajectory is k |x* - x| = k |x*| exp(-k t)
    rate = rate_along(c, tr, {"target": target})
    expected = np.max(np.abs(np.asarray(c.k) * np.asarray(target)[None] * np.exp(-np.asarray(c.k) * tr.ts[:, None, None])), axis=2)
    assert np.allclose(rate, expected, rtol=1e-5, atol=1e-10)


@pytest.mark.parametrize("solver", ["tsit5", "bosh3", "kvaerno5", "euler"])
def test_every_solver_stops_at_rest_on_the_closed_form(solver):
    """Explicit, implicit (their root finders given the controller's tolerances) and
    fixed-step solvers stop once the slowest unit (k = 0.5) is at rest: rate 0.5 |x*|
    exp(-0.5 t) <= 1e-9 + 1e-6 |x*|_max, at t ~ 25.4, a step or two late at most. Euler's
    rate after n steps of dt is 0.5 (1 - 0.5 dt)^n; it reads the rate at a step's start,
    so it stops one step after the first n that passes."""
    c = _relax()
    target = np.asarray([1.0, -2.0, 0.5])
    dt = 0.05
    tr = nd.simulate(c, {"target": jnp.asarray(target)}, t1=200.0, solver=solver, dt0=dt if solver == "euler" else None)
    threshold = 1e-9 + 1e-6 * 2.0
    if solver == "euler":
        n = math.ceil(np.log(threshold / 0.5) / np.log(1 - 0.5 * dt))
        assert tr.reason == "steady_state" and tr.num_steps == n + 1 and tr.t_final == pytest.approx((n + 1) * dt)
    else:
        t_rest = np.log(0.5 / threshold) / 0.5
        assert tr.reason == "steady_state" and t_rest <= tr.t_final < t_rest + 3.0
    assert np.all(tr.residual <= 1e-9 + 1e-6 * 2.0)
    np.testing.assert_allclose(tr.final["x"], target, atol=1e-5)


def test_steady_state_stops_when_the_slowest_unit_is_at_rest():
    """max|dy/dt| = k_min |x*| exp(-k_min t) falls below atol + rtol max|y| at a predictable t."""
    c = _relax()
    target = jnp.asarray([1.0, 1.0, 1.0])
    rtol, atol = 1e-6, 1e-9
    tr = nd.simulate(c, {"target": target}, t1=1000.0, rtol=rtol, atol=atol)
    assert tr.reason == "steady_state" and bool(tr.converged[0])
    t_expected = np.log(0.5 / (atol + rtol)) / 0.5
    # the test runs at step ends: never before the threshold, at most one (long) step after
    assert t_expected <= tr.t_final < t_expected + 3.0
    assert tr.residual[0] <= atol + rtol * 1.0
    assert tr.residual[0] == pytest.approx(0.5 * np.exp(-0.5 * tr.t_final), rel=1e-2)
    assert tr.final["x"].shape == (3,)


def test_saved_points_spread_over_the_run_to_steady_state():
    """``saveat = N`` with a steady-state stop: N evenly spaced points over [0, t_final]
    (not over [0, t1], where all but a few would lie after the stop), each on the closed
    form to the solver's accuracy (the points between steps are the dense interpolation)."""
    c = _relax()
    target = jnp.asarray([1.0, -2.0, 0.5])
    tr = nd.simulate(c, {"target": target}, t1=1000.0, saveat=41, rtol=1e-8, atol=1e-10)
    assert tr.reason == "steady_state" and tr.t_final < 100.0
    assert len(tr.ts) == 41 and tr.ts[0] == 0.0 and tr.ts[-1] == pytest.approx(tr.t_final)
    np.testing.assert_allclose(np.diff(tr.ts), tr.t_final / 40, rtol=1e-9)
    exact = np.asarray(target)[None] * (1 - np.exp(-np.asarray(c.k)[None] * tr.ts[:, None]))
    assert np.max(np.abs(tr.ys["x"] - exact)) < 1e-6
    np.testing.assert_array_equal(tr.ys["x"][-1], tr.final["x"])  # the last point is the final state
    # a list of times is kept as given: points after the stop are dropped
    listed = nd.simulate(c, {"target": target}, t1=1000.0, saveat=[0.0, 1.0, 500.0], rtol=1e-8, atol=1e-10)
    assert listed.ts[:2].tolist() == [0.0, 1.0] and listed.ts[-1] == pytest.approx(listed.t_final) and len(listed.ts) == 3


@pytest.mark.slow  # 11 s; .ci/run runs it after the default suite
def test_fixed_point_horizon_grows_until_the_dynamics_rest():
    """A slow unit (k = 0.01) is at rest only at t ~ 921 (rate k |x*| exp(-k t) below
    atol + rtol |x*|): with no t1 the ODE route extends 200 -> 400 -> 800 -> 1600 and stops
    there, one trajectory from 0; a t1 the caller sets is kept (t1_reached, not converged)."""
    c = _relax(n=2, k=(0.01, 1.0))
    target = {"target": jnp.asarray([1.0, 1.0])}
    eq = nd.fixed_point(c, target, method="ode", saveat=11, rtol=1e-6, atol=1e-9)
    t_rest = np.log(0.01 / (1e-9 + 1e-6)) / 0.01
    tr = eq.trajectory
    assert eq.all_converged and tr.reason == "steady_state" and t_rest <= tr.t_final < t_rest + 50
    assert tr.ts[0] == 0.0 and np.all(np.diff(tr.ts) > 0) and tr.ts[-1] == pytest.approx(tr.t_final)
    np.testing.assert_allclose(tr.ys["x"][:, 0], 1 - np.exp(-0.01 * tr.ts), atol=1e-6)  # the joined segments are one solution
    kept = nd.fixed_point(c, target, method="ode", t1=200.0, rtol=1e-6, atol=1e-9)
    assert kept.trajectory.reason == "t1_reached" and not kept.all_converged


def test_fixed_point_ode_hands_over_to_newton_at_a_loose_tolerance():
    """Without rtol, the ODE route integrates only until its steady-state test passes at
    HANDOFF_RTOL (rate below 1e-6 + 1e-3 |x*| for x' = k (target - x): t = ln(k / 1.001e-3) / k
    per unit), then Newton sets the accuracy: the same fixed point as a tight integration,
    in fewer steps."""
    c = _relax(n=2, k=(0.05, 1.0))
    target = {"target": jnp.asarray([1.0, 1.0])}
    loose = nd.fixed_point(c, target, method="ode")
    tight = nd.fixed_point(c, target, method="ode", rtol=1e-8, atol=1e-11)
    t_handoff = np.log(0.05 / (1e-6 + 1e-3)) / 0.05
    assert loose.all_converged and t_handoff <= loose.trajectory.t_final < t_handoff + 20
    assert loose.trajectory.num_steps < tight.trajectory.num_steps
    np.testing.assert_allclose(loose.state["x"], [1.0, 1.0], rtol=0, atol=1e-14)
    np.testing.assert_allclose(tight.state["x"], loose.state["x"], rtol=0, atol=1e-14)


class CountedRelax(Relax):
    """Relax, counting the evaluations of its vector field (a host callback per call)."""

    kind = "test_counted_relax"

    def vector_field(self, t, state, inputs):
        jax.debug.callback(lambda: EVALUATIONS.append(1))
        return super().vector_field(t, state, inputs)


EVALUATIONS: list = []


@pytest.mark.parametrize("solver, per_step, dt0", [("tsit5", 6, None), ("euler", 1, 0.1)])
def test_the_steady_state_test_evaluates_nothing_per_step(solver, per_step, dt0):
    """Tsit5 evaluates 6 stages per step (its 7th is the next step's first), Euler 1; the
    steady-state stop reads the rate the solver already has, so a run to rest evaluates the
    vector field about per_step times per step (a few more to start and to report the
    residual), not once more per step."""
    c = CountedRelax(k=jnp.asarray([0.5, 1.0]), n=2)
    kwargs = dict(t1=200.0, rtol=1e-6, atol=1e-9, solver=solver, dt0=dt0)
    nd.simulate(c, {"target": jnp.asarray([1.0, -1.0])}, **kwargs)  # compile
    EVALUATIONS.clear()
    tr = nd.simulate(c, {"target": jnp.asarray([1.0, -1.0])}, **kwargs)
    steps = tr.num_steps + tr.num_rejected_steps
    assert tr.reason == "steady_state" and steps > 20
    assert per_step * steps <= len(EVALUATIONS) <= per_step * steps + 4


def test_euler_fixed_step_and_fixed_point_newton():
    c = _relax()
    target = jnp.asarray([0.3, -0.4, 0.5])
    tr = nd.simulate(c, {"target": target}, solver="euler", dt0=0.1, t1=200.0)
    assert tr.reason == "steady_state"
    assert tr.num_steps < 2000
    eq = nd.fixed_point(c, {"target": target}, solver="euler", dt0=0.1, t1=200.0)
    assert eq.all_converged and np.allclose(eq.state["x"], target, atol=1e-14)
    assert np.all(eq.spectral_abscissa == pytest.approx(-0.5))


def test_dtype_follows_the_inputs():
    c = Relax(k=jnp.asarray([1.0, 2.0], dtype=jnp.float32), n=2)
    target = jnp.asarray([1.0, 2.0], dtype=jnp.float32)
    tr = nd.simulate(c, {"target": target}, t1=100.0, rtol=1e-4, atol=1e-6)
    assert tr.final["x"].dtype == np.float32 and tr.all_converged
    eq = nd.fixed_point(c, {"target": target}, t1=100.0, rtol=1e-4, atol=1e-6)
    assert eq.all_converged and eq.state["x"].dtype == np.float32


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(t1=0.0), "greater than t0"),
        (dict(solver="tsit4"), "did you mean 'tsit5'"),
        (dict(rtol=0.0), "positive"),
        (dict(solver="euler"), "dt0"),
        (dict(saveat=[0.0, 5.0, 2.0]), "increase"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nd.simulate(_relax(), {"target": jnp.ones(3)}, **kwargs)


def test_bad_inputs_raise():
    c = _relax()
    with pytest.raises(ValueError, match="missing input"):
        nd.simulate(c, {}, t1=1.0)
    with pytest.raises(ValueError, match="shape"):
        nd.simulate(c, {"target": jnp.ones(4)}, t1=1.0)
    with pytest.raises(ValueError, match="unknown inputs"):
        nd.simulate(c, {"target": jnp.ones(3), "x": jnp.ones(3)}, t1=1.0)


class Blowup(Relax):
    kind = "test_blowup"

    def vector_field(self, t, state, inputs):
        return {"x": self.k * state["x"] + inputs["target"]}


def test_exponential_growth_is_reported_as_divergence():
    c = Blowup(k=jnp.asarray([1.0, 1.0, 1.0]), n=3)
    tr = nd.simulate(c, {"target": jnp.ones(3)}, t1=1e3)
    assert tr.reason == "diverged" and not tr.all_converged and tr.t_final < 30


@pytest.mark.parametrize("name", ["linear", "tanh", "relu", "leaky_relu:0.3"])
def test_nonlinearity_derivative_and_inverse(name):
    s = nonlinearities.parse(name)
    x = jnp.linspace(-2.0, 2.0, 41) + 0.013  # avoid the kink at 0
    grad = jax.vmap(jax.grad(s))(x)
    assert np.allclose(s.deriv(x), grad, atol=1e-12)
    if s.invertible:
        assert np.allclose(s.inverse(s(x)), x, atol=1e-10)
    else:
        with pytest.raises(ValueError):
            s.inverse(x)
    assert str(s) == name


@pytest.mark.parametrize("bad", ["tahn", "leaky_relu:2", "leaky_relu:x", "relu:1", "leaky_relu:", "tanh:"])
def test_nonlinearity_parse_errors(bad):
    with pytest.raises(ValueError):
        nonlinearities.parse(bad)


@pytest.mark.parametrize("slope", [0.0, -0.1, 1.5, float("nan")])
def test_leaky_relu_built_directly_checks_its_slope(slope):
    """From Python too: a slope outside (0, 1] is an error, not a silently wrong inverse."""
    with pytest.raises(ValueError, match="slope"):
        nonlinearities.LeakyReLU(slope)


def test_nonlinearity_base_is_abstract():
    """The base class names no transfer function; a subclass without a name cannot be built."""
    with pytest.raises(TypeError):
        nonlinearities.Nonlinearity()

    class Unnamed(nonlinearities.Nonlinearity):
        def __call__(self, x):
            return x

        def deriv(self, x):
            return x

    with pytest.raises(TypeError):
        Unnamed()


class Cascade(Circuit):
    """A block-triangular circuit: an affine block ``dx/dt = A x + b`` (its Jacobian ``A``
    is the same for every sample) drives a nonlinear one ``dy/dt = x - y - y^3``; at rest
    ``x* = -A^{-1} b`` and ``y*`` is the real root of ``y^3 + y = x*``."""

    kind = "test_cascade"
    A: jax.Array
    blocks: bool = eqx.field(static=True, default=True)

    def state_shapes(self):
        return {"x": (self.A.shape[0],), "y": (self.A.shape[0],)}

    def input_shapes(self):
        return {"b": (self.A.shape[0],)}

    def vector_field(self, t, state, inputs):
        x, y = state["x"], state["y"]
        return {"x": self.A @ x + inputs["b"], "y": x - y - y**3}

    def reduced_blocks(self):
        n = self.A.shape[0]
        return (nd.ReducedBlock(0, n, shared_jacobian=True), nd.ReducedBlock(n, 2 * n)) if self.blocks else None


def test_block_triangular_solve_equals_the_joint_newton_and_the_closed_form():
    rng = np.random.default_rng(0)
    n = 5
    A = jnp.asarray(-2.0 * np.eye(n) + 0.3 * rng.normal(size=(n, n)))
    b = jnp.asarray(rng.normal(size=(4, n)))
    blockwise = nd.fixed_point(Cascade(A=A), {"b": b}, method="equilibrium")
    joint = nd.fixed_point(Cascade(A=A, blocks=False), {"b": b}, method="equilibrium")
    assert blockwise.all_converged and blockwise.reason == "converged"
    x = -np.linalg.solve(np.asarray(A), np.asarray(b).T).T
    y = blockwise.state["y"]
    assert np.max(np.abs(blockwise.state["x"] - x)) < 1e-12
    assert np.max(np.abs(y**3 + y - x)) < 1e-12
    for k in ("x", "y"):
        assert np.max(np.abs(blockwise.state[k] - joint.state[k])) < 1e-12
