"""Learning signals of the credit-assignment rules against autodiff and the paper's formulas
(supplement Algorithm 5, eq. 16, S8-S9)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neurodyn.learning.losses import loss_value, output_error
from neurodyn.learning.network import init_network
from neurodyn.learning.rules import BP, DFA, DI, FA, NDI, PBP, SLDI, ndi_apply, ndi_matrix

from helpers import rel


def _net(sizes, nl, seed=0, scale=0.5):
    return init_network(sizes, nl, seed=seed, scale=scale)


def _sample(rng, net, batch=None):
    shape = (batch, net.sizes[0]) if batch else (net.sizes[0],)
    x = jnp.asarray(rng.normal(size=shape))
    t = jnp.asarray(rng.normal(size=shape[:-1] + (net.sizes[-1],)))
    return x, t


@pytest.mark.parametrize("loss, out", [("squared_error", "linear"), ("squared_error", "tanh"), ("cross_entropy", "softmax")])
def test_bp_equals_autodiff(loss, out):
    """BP's update delta_l h_{l-1}^T is minus the gradient of the loss (supplement Eq. 2)."""
    rng = np.random.default_rng(0)
    net = _net([6, 5, 4, 3], ["tanh", "leaky_relu:0.2", out])
    x, t = _sample(rng, net)
    if loss == "cross_entropy":
        t = jax.nn.one_hot(2, 3)
    fwd = net.forward(x)
    deltas = BP().signals(net, fwd, output_error(loss, net, fwd, t))
    grads = jax.grad(lambda n: loss_value(loss, n.forward(x), t))(net)
    for l in range(net.L):
        assert np.allclose(np.outer(deltas[l], fwd.h[l]), -grads.W[l], atol=1e-12)
        assert np.allclose(deltas[l], -grads.b[l], atol=1e-12)


def test_fa_dfa_pbp_ndi_match_their_formulas():
    rng = np.random.default_rng(1)
    net = _net([7, 6, 5, 4], ["tanh", "tanh", "linear"])
    x, t = _sample(rng, net, batch=3)
    fwd = net.forward(x)
    dL = output_error("squared_error", net, fwd, t)
    B = tuple(jnp.asarray(rng.normal(size=(net.sizes[l - 1], net.sizes[l]))) for l in (2, 3))
    D = tuple(jnp.asarray(rng.normal(size=(d, 4))) for d in (6, 5))
    sp = [np.asarray(1 - np.tanh(fwd.a[i]) ** 2) for i in range(2)]
    W = [np.asarray(w) for w in net.W]
    Bn = [np.asarray(b) for b in B]
    expected = {
        "fa": lambda d2: (d2 @ Bn[1].T * sp[1], lambda d1: d1 @ Bn[0].T * sp[0]),
        "pbp": lambda d2: (d2 @ np.linalg.pinv(W[2]).T * sp[1], lambda d1: d1 @ np.linalg.pinv(W[1]).T * sp[0]),
    }
    for rule, key in [(FA(B=B), "fa"), (PBP(), "pbp")]:
        d1, d2, d3 = rule.signals(net, fwd, dL)
        e2, nxt = expected[key](np.asarray(dL))
        assert rel(d2, e2) < 1e-12 and rel(d1, nxt(e2)) < 1e-12
    d1, d2, _ = DFA(D=D).signals(net, fwd, dL)
    assert rel(d1, np.asarray(dL) @ np.asarray(D[0]).T * sp[0]) < 1e-12
    assert rel(d2, np.asarray(dL) @ np.asarray(D[1]).T * sp[1]) < 1e-12
    alpha = 0.03
    d1, d2, _ = NDI(B=B, alpha=alpha).signals(net, fwd, dL)
    M3 = Bn[1] @ np.linalg.inv(W[2] @ Bn[1] - alpha * np.eye(4))
    M2 = Bn[0] @ np.linalg.inv(W[1] @ Bn[0] - alpha * np.eye(5))
    e2 = np.asarray(dL) @ M3.T * sp[1]
    assert rel(d2, e2) < 1e-12 and rel(d1, e2 @ M2.T * sp[0]) < 1e-12


def test_ndi_matrix_push_through_for_expanding_layers():
    rng = np.random.default_rng(2)
    W, B = rng.normal(size=(8, 5)), rng.normal(size=(5, 8))
    direct = B @ np.linalg.inv(W @ B - 0.1 * np.eye(8))
    assert rel(ndi_matrix(jnp.asarray(W), jnp.asarray(B), 0.1), direct) < 1e-10


@pytest.mark.parametrize("shape", [(8, 5), (5, 8)])
def test_ndi_apply_is_the_matrix_applied_to_each_sample(shape):
    """Expanding and contracting layers, a batch of rows and one row: solving with the
    errors gives ``delta M^T`` of the formed matrix (inverse by numpy)."""
    rng = np.random.default_rng(4)
    W, B = rng.normal(size=shape), rng.normal(size=shape[::-1])
    M = B @ np.linalg.inv(W @ B - 0.1 * np.eye(shape[0]))
    delta = rng.normal(size=(3, shape[0]))
    assert rel(ndi_apply(jnp.asarray(W), jnp.asarray(B), 0.1, jnp.asarray(delta)), delta @ M.T) < 1e-10
    assert rel(ndi_apply(jnp.asarray(W), jnp.asarray(B), 0.1, jnp.asarray(delta[0])), delta[0] @ M.T) < 1e-10


@pytest.mark.parametrize("controller", ["nonlinear", "linearized"])
def test_di_at_zero_leak_equals_pbp_for_linear_equal_widths(controller):
    """Linear, equal widths, alpha = 0: B (W B)^{-1} = W^{-1} = W^+, whatever B."""
    rng = np.random.default_rng(3)
    net = _net([5, 5, 5, 5], ["linear"] * 3, scale=0.6)
    x, t = _sample(rng, net, batch=4)
    fwd = net.forward(x)
    dL = output_error("squared_error", net, fwd, t)
    B = tuple(-w.T for w in net.W[1:])
    di = DI(B=B, alpha=0.0, controller=controller).signals(net, fwd, dL)
    pbp = PBP().signals(net, fwd, dL)
    for a, b in zip(di, pbp):
        assert rel(a, b) < 1e-8


@pytest.mark.parametrize("controller", ["nonlinear", "linearized"])
def test_di_equilibrium_and_ode_paths_agree(controller):
    """The engine routes give the same signals (the option the training harness exposes)."""
    rng = np.random.default_rng(4)
    net = _net([8, 6, 5, 3], ["tanh", "tanh", "linear"], scale=0.5)
    x, t = _sample(rng, net, batch=3)
    fwd = net.forward(x)
    dL = 0.1 * output_error("squared_error", net, fwd, t)
    B = tuple(-w.T for w in net.W[1:])
    a = DI(B=B, alpha=0.01, controller=controller, method="equilibrium").signals(net, fwd, dL)
    b = DI(B=B, alpha=0.01, controller=controller, method="ode").signals(net, fwd, dL)
    for u, v in zip(a, b):
        assert rel(u, v) < 1e-9
    if controller == "nonlinear":  # the linear dynamics' continuation: tests/test_continuation.py
        c = DI(B=B, alpha=0.01, controller=controller, method="continuation").signals(net, fwd, dL)
        for u, w in zip(a, c):
            assert rel(u, w) < 1e-9
    # the linearized controller's steady state is NDI's (linear dynamics)
    if controller == "linearized":
        ndi = NDI(B=B, alpha=0.01).signals(net, fwd, dL)
        for u, v in zip(a, ndi):
            assert rel(u, v) < 1e-9


def test_di_single_sample_matches_batch():
    rng = np.random.default_rng(5)
    net = _net([8, 6, 3], ["tanh", "linear"])
    x, t = _sample(rng, net, batch=2)
    fwd = net.forward(x)
    dL = 0.1 * output_error("squared_error", net, fwd, t)
    rule = DI(B=(-net.W[1].T,), alpha=0.01)
    batch = rule.signals(net, fwd, dL)
    one = rule.signals(net, jax.tree_util.tree_map(lambda v: v[1], fwd), dL[1])
    assert one[0].shape == (6,) and rel(one[0], batch[0][1]) < 1e-12


@pytest.mark.parametrize("feedback", ["neg_transpose", "random"])
def test_di_linearized_stable_fraction_is_decided_by_one_sample(feedback):
    """With the linearized controller every sample's Jacobian has the same spectrum (the S24
    blocks), so DI checks one sample; the per-sample check agrees, stable or not."""
    from neurodyn.learning.rules.base import CircuitRule

    rng = np.random.default_rng(6)
    net = _net([8, 6, 5, 3], ["tanh", "tanh", "linear"], scale=0.5)
    x, t = _sample(rng, net, batch=4)
    fwd = net.forward(x)
    dL = 0.1 * output_error("squared_error", net, fwd, t)
    B = tuple(-w.T for w in net.W[1:]) if feedback == "neg_transpose" else tuple(jnp.asarray(rng.uniform(-0.5, 0.5, w.T.shape)) for w in net.W[1:])
    rule = DI(B=B, alpha=0.01, controller="linearized")
    state, _, converged = rule.solve(net, fwd, dL)
    assert bool(jnp.all(converged))
    one = float(rule.stable_fraction(net, fwd, dL, state))
    each = float(CircuitRule.stable_fraction(rule, net, fwd, dL, state))
    assert one == each == (1.0 if feedback == "neg_transpose" else 0.0)


def test_sldi_matches_s8_s9():
    """Linear contracting network, alpha = 0: u = (W_3 W_2 B)^{-1} delta, delta_1 = B u,
    delta_2 = W_2 delta_1 (supplement S8-S9, index reading in tests/test_single_loop.py)."""
    rng = np.random.default_rng(6)
    net = _net([12, 10, 6, 4], ["linear"] * 3, scale=0.5)
    x, t = _sample(rng, net, batch=3)
    fwd = net.forward(x)
    dL = output_error("squared_error", net, fwd, t)
    W2, W3 = np.asarray(net.W[1]), np.asarray(net.W[2])
    B = -0.3 * (W3 @ W2).T
    d1, d2, _ = SLDI(B=jnp.asarray(B), alpha=0.0).signals(net, fwd, dL)
    u = np.linalg.solve(W3 @ W2 @ B, np.asarray(dL).T).T
    assert rel(d1, u @ B.T) < 1e-8
    assert rel(d2, u @ B.T @ W2.T) < 1e-8


@pytest.mark.parametrize("shape", [(4, 9), (9, 4), (6, 6)])
def test_pbp_matrix_is_the_moore_penrose_inverse(shape):
    """Wide, tall and square layers: the Gram-matrix form equals numpy's SVD pinv."""
    rng = np.random.default_rng(3)
    W = rng.normal(size=shape)
    net = _net([shape[1], shape[0], 2], ["tanh", "linear"])
    net = eqx.tree_at(lambda n: n.W[0], net, jnp.asarray(W))
    np.testing.assert_allclose(np.asarray(PBP().matrix(net, 1)), np.linalg.pinv(W), atol=1e-10)
    delta = rng.normal(size=(3, shape[0]))  # the signal by a solve with the errors, not the matrix
    np.testing.assert_allclose(np.asarray(PBP().propagate(net, 1, jnp.asarray(delta))), delta @ np.linalg.pinv(W).T, atol=1e-10)


def test_sldi_feedback_is_minus_the_product_of_sequential_feedback():
    """Supplement 7.3: SLDI's B = -B_1 B_2 of sequential DI's feedback matrices; for the
    negative transpose that is -W_1^T W_2^T (the network's W_2, W_3 here)."""
    from neurodyn.learning.rules import make_rule

    net = _net([7, 6, 5, 4], ["tanh", "tanh", "linear"])
    di, _ = make_rule("di", net, feedback="random", feedback_scale=0.3, seed=3)
    sldi, _ = make_rule("sldi", net, feedback="random", feedback_scale=0.3, seed=3)
    assert sldi.B.shape == (6, 4)
    assert rel(sldi.B, -di.B[0] @ di.B[1]) < 1e-15
    di, _ = make_rule("di", net, feedback="neg_transpose")
    sldi, _ = make_rule("sldi", net, feedback="neg_transpose")
    assert rel(sldi.B, -di.B[0] @ di.B[1]) < 1e-15 and rel(sldi.B, -net.W[1].T @ net.W[2].T) < 1e-15
