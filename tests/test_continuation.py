"""Pseudo-transient continuation (core/continuation.py): backward-Euler steps that grow,
against the dense linear algebra, the closed forms, the ODE route and the dynamics' basins."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
from neurodyn.circuits import DynamicInversion
from neurodyn.core import continuation
from neurodyn.core.circuit import flatten, jacobian
from neurodyn.core.nonlinearities import parse
from neurodyn.io.model import load_model

from helpers import di, inputs, rel

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.mark.parametrize(
    "sizes, g, controller",
    [([4, 9], "tanh", "nonlinear"), ([12, 6, 3], "tanh", "nonlinear"), ([5, 8, 4], "relu", "linearized")],
)
def test_structured_shifted_solve_equals_the_dense_one(sizes, g, controller):
    """DI's layer-by-layer Schur complements solve (sigma I - J) x = r exactly as the dense
    Jacobian does, for contracting, expanding and stacked layers, both controllers."""
    rng = np.random.default_rng(len(sizes) * 10 + sizes[0])
    c = di(rng, sizes, g=g, leak=0.05, controller=controller)
    x = inputs(rng, c)
    shapes = c.state_shapes()
    state = {k: jnp.asarray(rng.normal(size=s)) for k, s in shapes.items()}
    rhs = {k: jnp.asarray(rng.normal(size=s)) for k, s in shapes.items()}
    J = np.asarray(jacobian(c, state, x))
    for sigma in (0.3, 2.0, 1e6):
        expected = np.linalg.solve(sigma * np.eye(J.shape[0]) - J, np.asarray(flatten(rhs, shapes)))
        got = np.asarray(flatten(c.shifted_solve(state, x, sigma, rhs), shapes))
        assert rel(got, expected) <= 1e-10, sigma


def test_continuation_of_linear_dynamic_inversion_is_the_closed_form():
    rng = np.random.default_rng(1)
    c = di(rng, [25, 10, 4], g="linear", leak=0.1)
    x = inputs(rng, c, batch=6, std=1.0)
    eq = nd.fixed_point(c, x, method="continuation")
    assert eq.all_converged and np.all(eq.stable), eq.reason
    expected = jax.vmap(c.closed_form)(x)
    for k in eq.state:
        assert rel(eq.state[k], expected[k]) <= 1e-10, k


def test_a_slow_oscillating_approach_takes_a_few_steps_where_tsit5_takes_many():
    """DI with B = -50 W^T settles as a damped oscillation (rate about 0.5): Tsit5 must follow
    it to t of about 15, the continuation ends as Newton does. Same fixed point, as the
    reference Newton on the controller equation finds it."""
    rng = np.random.default_rng(2)
    W = jnp.asarray(rng.uniform(-0.01, 0.01, (10, 200)) * np.sqrt(1000 / 200))
    c = DynamicInversion(W=(W,), B=(-50 * W.T,), alpha=0.01, g=(parse("tanh"),))
    x = {"delta_out": jnp.asarray(0.1 * rng.normal(size=(20, 10)))}
    cont = nd.fixed_point(c, x, method="continuation")
    ode = nd.fixed_point(c, x, method="ode")
    assert cont.all_converged and np.all(cont.stable) and ode.all_converged
    assert cont.trajectory.reason == "steady_state" and cont.trajectory.num_steps <= 8
    assert ode.trajectory.num_steps >= 3 * cont.trajectory.num_steps
    assert rel(cont.state["delta_0"], ode.state["delta_0"]) <= 1e-12
    # the fixed point itself: W tanh(B u) - delta_out - alpha u = 0 with delta_0 = B u
    u, d0 = cont.state["u_1"], cont.state["delta_0"]
    np.testing.assert_allclose(d0, u @ np.asarray(c.B[0]).T, atol=1e-14)
    np.testing.assert_allclose(np.tanh(d0) @ np.asarray(W).T - x["delta_out"] - 0.01 * u, 0.0, atol=1e-12)


def bistable():
    """One unit with positive feedback (w b = 4 > alpha = 0.5): two stable fixed points at
    u of about +-4 and a saddle near 0; a small delta_out tips the dynamics one way."""
    return DynamicInversion(W=(jnp.array([[2.0]]),), B=(jnp.array([[2.0]]),), alpha=0.5, g=(parse("tanh"),))


@pytest.mark.parametrize("dt0", [1.0, 0.01])
def test_continuation_reaches_the_basin_the_dynamics_reach(dt0):
    """From the saddle's neighbourhood the dynamics leave along the unstable mode. Newton
    from the start finds the saddle (flagged unstable); a long backward-Euler step would
    reverse the growing mode and end in the other basin: the step limit 1 / (2 s) keeps
    the continuation on the trajectory's side, for a long and a short first step alike."""
    c, x = bistable(), {"delta_out": jnp.array([[0.01], [-0.01], [0.3], [-0.3]])}
    ode = nd.fixed_point(c, x, method="ode")
    newton = nd.fixed_point(c, x, method="equilibrium")
    cont = nd.fixed_point(c, x, method="continuation", dt0=dt0)
    assert np.all(ode.stable) and not np.any(newton.stable)
    assert np.all(cont.stable), cont.reason
    np.testing.assert_allclose(cont.state["u_1"], ode.state["u_1"], atol=1e-10)
    assert np.all(np.abs(cont.state["u_1"]) > 3)  # the outer fixed points, not the saddle


def test_without_the_unstable_step_limit_a_long_step_leaves_the_dynamics_basin():
    """Why the limit exists: the same first step of 1 without it reverses the growing mode
    (h lambda of about 1.3 > 1), so some samples end where the dynamics never go."""
    c, x = bistable(), {"delta_out": jnp.array([[0.01], [-0.01], [0.3], [-0.3]])}
    ode = nd.fixed_point(c, x, method="ode")
    free = nd.fixed_point(c, x, method="continuation", limit_unstable=False)
    wrong = np.sign(free.state["u_1"][:, 0]) != np.sign(ode.state["u_1"][:, 0])
    assert np.any(wrong | ~free.stable)


@pytest.mark.parametrize("name", ["single_loop_dynamic_inversion.toml", "dynamic_inversion_relu_expanding.toml"])
def test_continuation_agrees_with_newton_on_model_files(name):
    """A kind with the dense default solve (single-loop DI) and DI's structured one, from
    their model files: the same stable fixed point as Newton from the start finds."""
    m = load_model(MODELS / name)
    newton = nd.fixed_point(m.circuit, m.inputs(), method="equilibrium")
    cont = nd.fixed_point(m.circuit, m.inputs(), method="continuation")
    assert cont.all_converged and np.all(cont.stable) and np.all(newton.stable), cont.reason
    assert 1 <= cont.trajectory.num_steps <= 10
    for k in newton.state:
        np.testing.assert_allclose(cont.state[k], newton.state[k], atol=1e-10, rtol=0)


def test_unstable_feedback_is_never_reported_stable():
    """B = +W^T: the dynamics diverge. The continuation either follows them out or, like
    Newton, settles on the unstable fixed point; the verification flags it either way."""
    rng = np.random.default_rng(12)
    c = di(rng, [20, 10], g="linear", leak=0.0, b_scale=-1.0)
    eq = nd.fixed_point(c, inputs(rng, c, batch=3), method="continuation")
    assert not np.any(eq.stable) and eq.reason in ("diverged", "unstable_fixed_point")


def test_step_budget_and_float32():
    rng = np.random.default_rng(4)
    c = di(rng, [20, 10], g="tanh", leak=0.01)
    x = inputs(rng, c, batch=4)
    short = nd.fixed_point(c, x, method="continuation", max_steps=1)
    assert short.reason == "max_steps" and not np.any(short.converged)
    bad = dict(x, delta_out=x["delta_out"].at[1, 0].set(jnp.nan))  # reported at once, not after 500 steps
    nan = nd.fixed_point(c, bad, method="continuation")
    assert nan.reason == "nonfinite" and not np.any(nan.converged) and nan.trajectory.num_steps == 0
    x32 = {k: v.astype(jnp.float32) for k, v in x.items()}
    c32 = DynamicInversion(W=tuple(w.astype(jnp.float32) for w in c.W), B=tuple(b.astype(jnp.float32) for b in c.B), alpha=0.01, g=c.g)
    eq32 = nd.fixed_point(c32, x32, method="continuation")
    eq64 = nd.fixed_point(c, x, method="continuation")
    assert eq32.all_converged and eq32.state["u_1"].dtype == np.float32
    assert rel(eq32.state["delta_0"], eq64.state["delta_0"]) <= 1e-5


def test_bad_arguments_and_dense_jacobians_too_large(monkeypatch):
    m = load_model(MODELS / "dendritic_mixture.toml")
    for kwargs, words in [({"rtol": 0.0}, "positive"), ({"dt0": -1.0}, "positive"), ({"max_steps": 0}, "at least 1")]:
        with pytest.raises(ValueError, match=words):
            continuation.continue_to_rest(m.circuit, m.inputs(), **kwargs)
    with pytest.raises(ValueError, match="takes no \\['solver'\\]"):
        nd.fixed_point(m.circuit, m.inputs(), method="continuation", solver="tsit5")
    monkeypatch.setattr(continuation, "DENSE_MAX_ENTRIES", 10)
    with pytest.raises(ValueError, match="dense Jacobians.*method='ode'"):
        nd.fixed_point(m.circuit, m.inputs(), method="continuation")
