"""Plastic circuits as rules of the harness: their updates against the engine, the
Gauss-Newton direction and closed-form sizes (thesis 6.15, 6.59)."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

from neurodyn.core.simulate import simulate
from neurodyn.learning.metrics import alignment, angle, gn_target_updates
from neurodyn.learning.network import init_network
from neurodyn.learning.optimizer import SGD
from neurodyn.learning.rules import make_rule
from neurodyn.learning.train import run_steps


def _network(W, nonlinearities):
    net = init_network([W[0].shape[1]] + [w.shape[0] for w in W], nonlinearities, biases=False)
    return eqx.tree_at(lambda n: n.W, net, tuple(jnp.asarray(w) for w in W))


def teacher_problem(rng, n=3, n_train=40, distance=1.0):
    """A 3-3-3 leaky-ReLU teacher with well-conditioned layers and a student near it."""
    T = [rng.normal(size=(n, n)) + 2 * np.eye(n) for _ in range(2)]
    W = []
    for Tl in T:
        D = rng.normal(size=(n, n))
        W.append(Tl + distance * D / np.linalg.norm(D))
    x = rng.normal(size=(n_train, n))
    a = x @ T[0].T
    t = np.where(a > 0, a, 0.35 * a) @ T[1].T
    return _network(W, ["leaky_relu:0.35", "linear"]), jnp.asarray(x), jnp.asarray(t)


def test_exact_mixture_update_is_the_gauss_newton_direction():
    """With exact inverses, a piecewise-linear hidden layer and a linear output the
    displacements are linear in e_L while no kink is crossed, so the hidden update of one
    cycle is the Gauss-Newton-target direction (6.15) exactly (measured: < 1e-3 degrees)."""
    net, x, t = teacher_problem(np.random.default_rng(0))
    rule, _ = make_rule("dendritic_mixture", net, lr=0.00625, inverses="exact", duration=5.0, rtol=1e-8, atol=1e-10)
    for i in range(4):
        (dW1, _), _ = rule.updates(net, x[i : i + 1], t[i : i + 1], "squared_error")
        (gn,) = gn_target_updates(net, x[i : i + 1], t[i : i + 1], "squared_error")
        assert float(angle(dW1, gn)) < 1e-3


def test_online_steps_equal_separate_engine_solves():
    """Three online updates in one scan equal three separate engine solves (`simulate` of the
    plastic circuit, weights carried by hand) to 1e-10 relative."""
    net, x, t = teacher_problem(np.random.default_rng(1), n_train=3)
    lr = 0.0125
    rule, info = make_rule("dendritic_mixture", net, lr=lr, inverses="exact", duration=5.0, rtol=1e-8, atol=1e-10)
    assert info["tau_w"]["W1"] == pytest.approx(0.25 * 0.1 * 5.0 / lr)
    scanned, _ = run_steps(rule, net, "squared_error", SGD(lr=lr), x[:, None], t[:, None])
    w = {"W1": net.W[0], "W2": net.W[1]}
    for xi, ti in zip(x, t):
        inputs = {"x": xi, "target": ti}
        y0 = dict(rule.plastic.rebuild(w).init_state(inputs))
        y0.update(w)
        traj = simulate(rule.plastic, inputs, t1=rule.t1, y0=y0, steady_state=False, rtol=1e-8, atol=1e-10)
        assert traj.reason == "t1_reached"
        w = {n: jnp.asarray(traj.final[n]) for n in w}
    for l in (1, 2):
        ref = np.asarray(w[f"W{l}"])
        assert np.linalg.norm(np.asarray(scanned.W[l - 1]) - ref) / np.linalg.norm(ref) < 1e-10
    assert np.linalg.norm(np.asarray(scanned.W[1]) - np.asarray(net.W[1])) > 1e-3


def _known_angle_case():
    """Linear 2-2-2 network, W_2 = diag(1, 2), output error e = (1, 1): BP's hidden signal is
    W_2^T e = (1, 2), the Gauss-Newton target's W_2^{-1} e = (1, 0.5); cos = 2 / 2.5 = 0.8."""
    net = _network([jnp.eye(2), jnp.diag(jnp.array([1.0, 2.0]))], ["linear", "linear"])
    x = jnp.array([[0.7, -0.4]])
    t = net(x) - 1.0  # e = h_2 - t = (1, 1)
    return net, x, t, float(np.degrees(np.arccos(0.8)))


def test_angles_of_bp_on_a_known_case():
    net, x, t, expected = _known_angle_case()
    bp, _ = make_rule("bp", net)
    angles = alignment(bp, net, "squared_error", x, t)
    assert float(angles["bp"][0]) == pytest.approx(0.0, abs=1e-5)
    assert float(angles["gn"][0]) == pytest.approx(expected, abs=1e-9)


def test_burst_update_on_a_known_case():
    """Burst multiplexing with a linear apical transfer and Q_1 = W_2^{-1} held fixed: by
    (6.59) its hidden update over one cycle is -eta eta_hat D Q_1 e h_0^T, the Gauss-Newton-
    target direction, at 36.87 degrees from BP's (slow weights: tau_w = 1e4). Its size: the
    apical voltage relaxes to the learning-phase rest with time constant 1, so the phase
    difference integrates to (T - 1 + exp(-T)) eta_hat Q_1 e over a learning phase T = 3."""
    net, x, t, expected = _known_angle_case()
    lr = 0.1 * 3.0 / 1e4  # tau_w = eta eta_hat T / lr = 1e4
    rule, info = make_rule(
        "burst_multiplexing", net, lr=lr, free_duration=2.0, learning_duration=3.0, inverse_lr=0.0, rtol=1e-9, atol=1e-12
    )
    assert info["tau_w"]["W1"] == pytest.approx(1e4)
    angles = alignment(rule, net, "squared_error", x, t)
    assert float(angles["gn"][0]) < 0.05
    assert float(angles["bp"][0]) == pytest.approx(expected, abs=0.05)
    (dW1, _), _ = rule.updates(net, x, t, "squared_error")
    pred = (3.0 - 1.0 + np.exp(-3.0)) / 1e4 * 0.1 * np.linalg.norm([1.0, 0.5]) * float(jnp.linalg.norm(x[0]))
    assert float(jnp.linalg.norm(dW1 * lr)) == pytest.approx(pred, rel=1e-3)
    new, rule2 = rule.step(net, x, t, "squared_error", SGD(lr=lr))
    np.testing.assert_array_equal(rule2.own["Q1"], rule.own["Q1"])  # inverse_lr = 0 holds Q


def _online(rule, net, xs, ts, lr):
    out, _ = run_steps(rule, net, "squared_error", SGD(lr=lr), xs[:, None], ts[:, None])
    return out


@pytest.mark.parametrize("name, controller", [("di", "nonlinear"), ("di", "linearized"), ("sldi", "nonlinear")])
def test_dynamic_inversion_with_plastic_weights_follows_the_discrete_rule(name, controller):
    """Weights as ODE state (a settling phase, then dW/dt = delta h^T / tau_w) against the
    discrete DI update from the Newton steady state, 12 online samples: the trajectories
    differ at second order in the learning rate (the difference relative to the weights'
    change falls tenfold when the rate does)."""
    sizes = [4, 5, 4, 3] if name == "sldi" else [4, 5, 3]
    net = init_network(sizes, ["tanh"] * (len(sizes) - 2) + ["linear"], seed=0, scale=0.5)
    rng = np.random.default_rng(1)
    xs, ts = jnp.asarray(rng.normal(size=(12, sizes[0]))), jnp.asarray(rng.normal(size=(12, sizes[-1])))
    opts = dict(leak=0.5, controller=controller, feedback="neg_transpose")
    gaps = []
    for lr in (1e-2, 1e-3):
        disc, _ = make_rule(name, net, lr=lr, **opts)
        ode, info = make_rule(name, net, lr=lr, plasticity="ode", settle_duration=60.0, rtol=1e-9, atol=1e-12, **opts)
        assert info["tau_w"] == pytest.approx(10.0 / lr)
        a, b = _online(disc, net, xs, ts, lr), _online(ode, net, xs, ts, lr)
        moved = sum(float(jnp.sum((w - w0) ** 2)) for w, w0 in zip(a.W + a.b, net.W + net.b)) ** 0.5
        gap = sum(float(jnp.sum((u - v) ** 2)) for u, v in zip(a.W + a.b, b.W + b.b)) ** 0.5
        gaps.append(gap / moved)
    assert gaps[0] < 0.1
    assert gaps[1] < 0.2 * gaps[0]
