"""Single-loop dynamic inversion: steady states S6-S9 and S15-S16 of the supplement.

Index reading: the paper's L = 3 example has errors delta_1, delta_2 (hidden) and
delta_3 (output); here they are delta_0, delta_1 and delta_out, with W_1, W_2 the
matrices between them. S8-S9 as printed mix the indices (W_2 B is not square for a
contracting loop); what holds, and is tested, is u = (W_2 W_1 B)^{-1} delta_out
(S8: delta_0 = B u) and delta_0 = B (W_1 B)^+ delta_1 (S9 with a pseudo-inverse,
exact because delta_1 lies in the range of W_1 B).
"""

import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
from neurodyn.circuits import SingleLoopDynamicInversion
from neurodyn.core.nonlinearities import parse

from helpers import inputs, orthogonal, rel, same_spectrum, sldi


def test_linear_contracting_steady_state_is_s8_s9():
    rng = np.random.default_rng(20)
    c = sldi(rng, [20, 10, 5], g="linear", leak=0.0, w=0.5, b_scale=0.3)
    x = inputs(rng, c, batch=4, std=1.0)
    eq = nd.fixed_point(c, x, t1=5000.0)
    assert eq.all_converged and np.all(eq.stable), eq.reason
    W1, W2, B = (np.asarray(a) for a in (c.W[0], c.W[1], c.B))
    for k in range(4):
        d = np.asarray(x["delta_out"][k])
        s8 = B @ np.linalg.solve(W2 @ W1 @ B, d)
        assert rel(eq.state["delta_0"][k], s8) <= 1e-8
        s9 = B @ np.linalg.pinv(W1 @ B) @ eq.state["delta_1"][k]
        assert rel(eq.state["delta_0"][k], s9) <= 1e-8
        assert rel(eq.state["delta_1"][k], W1 @ s8) <= 1e-8
    cf = nd.core.equilibrium.checks(c, eq.state, x)
    assert cf["closed_form_relative_error"]["passed"] and cf["readout_relative_error"]["passed"]


@pytest.mark.parametrize("depth", [2, 3])
def test_nonlinear_equal_widths_no_leak_is_sequential_inversion_s6_s7(depth):
    """alpha = 0, square layers: delta_{k-1} = g^{-1}(W_k^{-1} delta_k), i.e. the same
    steady state as sequential DI (S6-S7). delta_out comes from a known preimage."""
    rng = np.random.default_rng(21 + depth)
    n = 8
    W = tuple(jnp.asarray(orthogonal(rng, n)) for _ in range(depth))
    P = W[0]
    for Wl in W[1:]:
        P = Wl @ P
    c = SingleLoopDynamicInversion(W=W, B=-0.5 * P.T, alpha=0.0, g=(parse("tanh"),) * depth)
    z = 0.3 * rng.normal(size=(3, n))
    chain = [z]
    for Wl in W:
        chain.append(np.tanh(chain[-1]) @ np.asarray(Wl).T)
    x = {"delta_out": jnp.asarray(chain[-1])}
    eq = nd.fixed_point(c, x, t1=5000.0)
    assert eq.all_converged, eq.reason
    for i in range(depth):
        assert rel(eq.state[f"delta_{i}"], chain[i]) <= 1e-8
    cf = nd.core.equilibrium.checks(c, eq.state, x)
    assert cf["closed_form_relative_error"]["value"] <= 1e-8


def test_linearized_controller_equal_widths_is_s15_s16():
    """S12-S14 at rest, alpha = 0: delta_1 = W_2^{-1} delta_out * g'(a_1),
    delta_0 = W_1^{-1} delta_1 * g'(a_0)."""
    rng = np.random.default_rng(25)
    n = 6
    W = tuple(jnp.asarray(orthogonal(rng, n)) for _ in range(2))
    c = SingleLoopDynamicInversion(W=W, B=-0.5 * (W[1] @ W[0]).T, alpha=0.0, g=(parse("tanh"),) * 2, controller="linearized")
    x = inputs(rng, c, batch=3)
    x["a_0"], x["a_1"] = 0.5 * x["a_0"], 0.5 * x["a_1"]
    eq = nd.fixed_point(c, x, t1=5000.0)
    assert eq.all_converged, eq.reason
    W1, W2 = np.asarray(W[0]), np.asarray(W[1])
    gp = lambda a: 1 - np.tanh(np.asarray(a)) ** 2  # noqa: E731
    s15 = np.linalg.solve(W2, np.asarray(x["delta_out"]).T).T * gp(x["a_1"])
    s16 = np.linalg.solve(W1, s15.T).T * gp(x["a_0"])
    assert rel(eq.state["delta_1"], s15) <= 1e-8
    assert rel(eq.state["delta_0"], s16) <= 1e-8


@pytest.mark.parametrize("controller", ["nonlinear", "linearized"])
def test_jacobian_equals_analytic_block_matrix(controller):
    rng = np.random.default_rng(26)
    c = sldi(rng, [7, 5, 6, 3], g="tanh", leak=0.02, controller=controller)
    x = inputs(rng, c)
    state = {k: jnp.asarray(rng.normal(size=s)) for k, s in c.state_shapes().items()}
    J = nd.jacobian(c, state, x)
    assert np.max(np.abs(J - c.block_matrix(state, x))) <= 1e-12
    assert same_spectrum(np.linalg.eigvals(np.asarray(J)), c.eigenvalues(state, x))


def test_equilibrium_and_ode_paths_agree():
    rng = np.random.default_rng(27)
    c = sldi(rng, [20, 10, 10], g="tanh", leak=0.05)
    x = inputs(rng, c, batch=5)
    a = nd.fixed_point(c, x, method="equilibrium")
    b = nd.fixed_point(c, x, t1=3000.0)
    assert a.all_converged and b.all_converged and np.all(a.stable)
    for k in a.state:
        assert rel(a.state[k], b.state[k]) <= 1e-9


def test_linearized_relu_is_rejected():
    from neurodyn.circuits.single_loop_dynamic_inversion import SingleLoopDynamicInversion as S

    opts = S.Options(nonlinearity="relu", controller="linearized")
    arrays = {"W1": np.ones((3, 4)), "W2": np.ones((2, 3)), "B": np.ones((4, 2))}
    with pytest.raises(ValueError, match="leaky_relu"):
        S.from_arrays([4, 3, 2], opts, arrays)
