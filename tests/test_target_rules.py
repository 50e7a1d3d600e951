"""The discrete target-propagation family: each rule's targets against a direct computation
written here, the TP thesis's numeric claims (Sherman-Morrison, Theorems 4.1, 4.6-4.7, 4.9,
Lemma 4.8), Bengio's DTP1 and refinement iterations, and the analysis metrics."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neurodyn.learning.losses import output_descent
from neurodyn.learning.metrics import angle, null_space_fraction, target_metrics
from neurodyn.learning.network import init_network
from neurodyn.learning.optimizer import SGD
from neurodyn.learning.rules import make_rule
from neurodyn.learning.rules.dtp_bengio import refine_input, refine_output
from neurodyn.learning.rules.gn import output_jacobians
from neurodyn.learning.rules.tp_exact import robust_sherman_morrison
from neurodyn.learning.train import evaluate, run_steps


def _net(sizes, nls, seed=0, scale=1.0):
    net = init_network(sizes, nls, seed=seed, scale=scale, init="normal")
    rng = np.random.default_rng(seed + 100)
    return eqx_biases(net, rng)


def eqx_biases(net, rng):
    import equinox as eqx

    return eqx.tree_at(lambda n: n.b, net, tuple(jnp.asarray(0.1 * rng.normal(size=b.shape)) for b in net.b))


def _data(net, n=9, seed=1):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(n, net.sizes[0])))
    t = jnp.asarray(rng.normal(size=(n, net.sizes[-1])))
    if net.softmax_output:
        t = jax.nn.one_hot(jnp.argmax(t, -1), net.sizes[-1])
    return x, t


def _jacobian(net, l, h):
    """``do/dh_l`` by automatic differentiation of the forward pass from layer l."""
    return jax.jacfwd(lambda v: net.head(l, v))(h)


def _hidden_targets(rule, net, x, t, loss):
    fwd = net.forward(x)
    return fwd, rule.targets(net, fwd, rule.output_target(net, fwd, t, loss))


@pytest.mark.parametrize("loss, out", [("squared_error", "linear"), ("squared_error", "tanh"), ("cross_entropy", "softmax")])
@pytest.mark.parametrize("damping", [0.0, 0.3])
def test_gn_targets_are_the_pseudo_inverse_step(loss, out, damping):
    net = _net([5, 7, 6, 3], ["tanh", "leaky_relu:0.2", out])
    x, t = _data(net)
    rule, _ = make_rule("gn", net, target_stepsize=0.5, damping=damping)
    fwd, hhat = _hidden_targets(rule, net, x, t, loss)
    step = 0.5 * output_descent(loss, net, fwd, t)
    for l in (1, 2):
        for b in range(len(x)):
            J = np.asarray(_jacobian(net, l, fwd.h[l][b]))
            inv = np.linalg.pinv(J) if damping == 0 else J.T @ np.linalg.inv(J @ J.T + damping * np.eye(3))
            np.testing.assert_allclose(hhat[l - 1][b] - fwd.h[l][b], inv @ np.asarray(step[b]), atol=1e-10)


def test_output_jacobians_match_autodiff():
    net = _net([4, 6, 5, 5, 2], ["tanh", "tanh", "leaky_relu:0.1", "softmax"])
    x, _ = _data(net, n=3)
    fwd = net.forward(x)
    for l, J in enumerate(output_jacobians(net, fwd), start=1):
        np.testing.assert_allclose(J[2], _jacobian(net, l, fwd.h[l][2]), atol=1e-12)


def test_tp_exact_targets_invert_each_layer():
    net = _net([6, 5, 5, 5], ["leaky_relu:0.3", "leaky_relu:0.3", "linear"])
    x, t = _data(net)
    rule, _ = make_rule("tp_exact", net, target_stepsize=0.2)
    fwd, hhat = _hidden_targets(rule, net, x, t, "squared_error")
    o_hat = fwd.h[-1] + 0.2 * (t - fwd.h[-1])
    # f_{l+1}(hhat_l) = hhat_{l+1}: each target maps exactly onto the one above
    np.testing.assert_allclose(net.layer(3, hhat[1]), o_hat, atol=1e-10)
    np.testing.assert_allclose(net.layer(2, hhat[0]), hhat[1], atol=1e-10)


def test_tp_exact_is_gauss_newton_and_an_ascent_in_activation_space():
    """Invertible networks: TP targets are GN targets to first order in eta_hat (Meulemans
    et al. 2020 Theorem 2; exactly, for a piecewise-linear network whose units stay on their
    side of the kink), and the activation-space form of thesis Theorem 4.1 holds:
    (J^-1 e)^T (J^T e) = ||e||^2."""
    net = _net([4, 6, 6, 6], ["leaky_relu:0.3", "leaky_relu:0.5", "linear"])
    x, t = _data(net)
    eta = 1e-6
    tp, _ = make_rule("tp_exact", net, target_stepsize=eta)
    gn, _ = make_rule("gn", net, target_stepsize=eta)
    fwd, hhat = _hidden_targets(tp, net, x, t, "squared_error")
    _, b = _hidden_targets(gn, net, x, t, "squared_error")
    for u, v, h in zip(hhat, b, fwd.h[1:]):
        np.testing.assert_allclose((u - h) / eta, (v - h) / eta, rtol=1e-6, atol=1e-6)
    e = np.asarray(fwd.h[-1] - t)
    for l in (1, 2):
        for k in range(len(x)):
            J = np.asarray(_jacobian(net, l, fwd.h[l][k]))
            tp_step = -np.asarray(hhat[l - 1][k] - fwd.h[l][k]) / eta  # J^-1 e
            np.testing.assert_allclose(tp_step @ (J.T @ e[k]), e[k] @ e[k], rtol=1e-6)


def test_robust_sherman_morrison_keeps_the_exact_inverse():
    rng = np.random.default_rng(3)
    eps, betas = 0.5, []
    for _ in range(300):
        W = rng.normal(size=(5, 5))
        u, v = rng.normal(size=5), rng.normal(size=5)
        W_new, W_inv, beta = robust_sherman_morrison(jnp.asarray(W), jnp.asarray(np.linalg.inv(W)), jnp.asarray(u), jnp.asarray(v), eps)
        np.testing.assert_allclose(W_new @ W_inv, np.eye(5), atol=1e-8)
        d = v @ np.linalg.inv(W) @ u
        if abs(1 + d) >= eps:
            assert beta == 1.0
        else:
            betas.append(float(beta))
            assert 1 / (1 + 2 * eps) < beta < 1  # Algorithm 4.1's scaling
            np.testing.assert_allclose(beta, 1 / (eps - d))
    assert len(betas) > 10  # the clipped branch was exercised


def _orthogonal(sizes, nls, seed):
    """A network whose square layers 2..L are orthogonal (far from singular, as the thesis
    asks of TP with exact inverses: sigma_min sigma_max > 0.4)."""
    import equinox as eqx

    rng = np.random.default_rng(seed)
    net = init_network(sizes, nls, seed=seed, scale=1.0, init="normal")
    W = [net.W[0]] + [jnp.asarray(np.linalg.qr(rng.normal(size=(d, d)))[0]) for d in sizes[2:]]
    return eqx.tree_at(lambda n: n.W, net, tuple(W))


@pytest.mark.parametrize("randomized", [False, True])
def test_tp_exact_training_keeps_w_times_w_inv_identity(randomized):
    sizes, nls = [5, 4, 4, 4], ["leaky_relu:0.3", "leaky_relu:0.3", "linear"]
    net, teacher = _orthogonal(sizes, nls, 0), _orthogonal(sizes, nls, 9)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(300, 2, 5)))
    t = teacher(x)
    rule, _ = make_rule("tp_exact", net, epsilon=0.5, randomized=randomized)
    trained, rule = run_steps(rule, net, "squared_error", SGD(lr=0.01, weight_decay=0.01), x, t)
    for W, W_inv in zip(trained.W[1:], rule.W_inv):
        np.testing.assert_allclose(W @ W_inv, np.eye(4), atol=1e-10)
    xs, ts = x.reshape(-1, 5), t.reshape(-1, 4)
    assert evaluate(trained, "squared_error", xs, ts)["loss"] < 0.3 * evaluate(net, "squared_error", xs, ts)["loss"]


def _set_feedback(rule, feedback):
    import equinox as eqx

    return eqx.tree_at(lambda r: r.feedback, rule, tuple(feedback))


@pytest.mark.parametrize("name", ["tp", "dtp"])
def test_layerwise_targets_follow_their_formulas(name):
    net = _net([5, 6, 4, 3], ["tanh", "tanh", "linear"])
    x, t = _data(net)
    rule, _ = make_rule(name, net, target_stepsize=0.3)
    fwd, hhat = _hidden_targets(rule, net, x, t, "squared_error")
    (Q1, c1), (Q2, c2) = rule.feedback
    g2 = lambda h: np.tanh(h @ np.asarray(Q2).T + c2)  # noqa: E731 layer 3 -> 2
    g1 = lambda h: np.tanh(h @ np.asarray(Q1).T + c1)  # noqa: E731 layer 2 -> 1
    o, o_hat = np.asarray(fwd.h[-1]), np.asarray(fwd.h[-1] + 0.3 * (t - fwd.h[-1]))
    h2 = g2(o_hat) + (np.asarray(fwd.h[2]) - g2(o) if name == "dtp" else 0)
    h1 = g1(h2) + (np.asarray(fwd.h[1]) - g1(np.asarray(fwd.h[2])) if name == "dtp" else 0)
    np.testing.assert_allclose(hhat[1], h2, atol=1e-12)
    np.testing.assert_allclose(hhat[0], h1, atol=1e-12)


def test_direct_targets_follow_their_formulas():
    net = _net([5, 6, 4, 3], ["tanh", "tanh", "softmax"])
    x, t = _data(net)
    fwd = net.forward(x)
    o = np.asarray(fwd.a[-1])
    o_hat = o + 0.2 * np.asarray(t - jax.nn.softmax(fwd.a[-1]))
    for name in ("ddtp_linear", "ddtp_control"):
        rule, _ = make_rule(name, net, target_stepsize=0.2)
        _, hhat = _hidden_targets(rule, net, x, t, "cross_entropy")
        for l, (Q, _) in enumerate(rule.feedback, start=1):
            np.testing.assert_allclose(hhat[l - 1], np.asarray(fwd.h[l]) + (o_hat - o) @ np.asarray(Q).T, atol=1e-12)
    rule, _ = make_rule("ddtp_rhl", net, target_stepsize=0.2, feedback_width=9)
    _, hhat = _hidden_targets(rule, net, x, t, "cross_entropy")
    R, r = np.asarray(rule.R), np.asarray(rule.r)
    (Q1, c1), (Q2, c2) = rule.feedback
    g1 = lambda v: np.tanh(np.tanh(v @ R.T + r) @ np.asarray(Q1).T + c1)  # noqa: E731 through the random layer
    g2 = lambda v: np.tanh(v @ np.asarray(Q2).T + c2)  # noqa: E731 the last hidden layer reads o directly
    np.testing.assert_allclose(hhat[0], np.asarray(fwd.h[1]) + g1(o_hat) - g1(o), atol=1e-12)
    np.testing.assert_allclose(hhat[1], np.asarray(fwd.h[2]) + g2(o_hat) - g2(o), atol=1e-12)


def test_sdtp_targets_start_from_the_label():
    net = _net([5, 6, 4, 3], ["tanh", "tanh", "softmax"])
    x, t = _data(net)
    fwd = net.forward(x)
    rule, _ = make_rule("sdtp", net)
    _, hhat = _hidden_targets(rule, net, x, t, "cross_entropy")
    (_, _), (Q2, c2) = rule.feedback
    g2 = lambda h: np.tanh(h @ np.asarray(Q2).T + c2)  # noqa: E731 from the probabilities
    np.testing.assert_allclose(hhat[1], np.asarray(fwd.h[2]) - g2(np.asarray(fwd.h[3])) + g2(np.asarray(t)), atol=1e-12)
    ao, _ = make_rule("ao_sdtp", net, aux_size=7)
    _, hhat = _hidden_targets(ao, net, x, t, "cross_entropy")
    z = np.tanh(np.asarray(fwd.h[2]) @ np.asarray(ao.V).T)
    Q, c = ao.feedback[1]
    g = lambda top: np.tanh(top @ np.asarray(Q).T + c)  # noqa: E731 from [o, z]
    top, top_hat = np.concatenate([fwd.h[3], z], -1), np.concatenate([t, z], -1)
    np.testing.assert_allclose(hhat[1], np.asarray(fwd.h[2]) - g(top) + g(top_hat), atol=1e-12)


def test_bengio_dtp1_moves_each_layer_exactly_to_its_target():
    """Eq. 12-13: for one sample, DTP1's change of W_l, b_l alone takes a_l to tau_l."""
    import equinox as eqx

    net = _net([5, 6, 4, 3], ["tanh", "tanh", "linear"])
    x, t = _data(net, n=1)
    for beta in (0.1, 0.5):
        rule, _ = make_rule("dtp_bengio", net, target_stepsize=beta)
        fwd = net.forward(x)
        taus = list(rule.targets(net, fwd, rule.output_target(net, fwd, t, "squared_error"))) + [fwd.a[-1] + beta * (t - fwd.h[-1])]
        (dW, db) = rule.updates(net, x, t, "squared_error")
        for l in range(1, 4):
            moved = eqx.tree_at(lambda n: (n.W, n.b), net, (
                tuple(W + beta * d if k == l - 1 else W for k, (W, d) in enumerate(zip(net.W, dW))),
                tuple(b + beta * d if k == l - 1 else b for k, (b, d) in enumerate(zip(net.b, db))),
            ))
            a_new = jnp.einsum("...j,ij->...i", fwd.h[l - 1], moved.W[l - 1]) + moved.b[l - 1]
            np.testing.assert_allclose(a_new, taus[l - 1], atol=1e-12)
    normalized, _ = make_rule("dtp_bengio", net, target_stepsize=0.1, normalized=True)
    plain, _ = make_rule("dtp_bengio", net, target_stepsize=0.1)
    _, d_norm = normalized.deltas(net, x, t, "squared_error")
    _, d_plain = plain.deltas(net, x, t, "squared_error")
    fwd = net.forward(x)
    moves = [tau - a for tau, a in zip(list(plain.targets(net, fwd, plain.output_target(net, fwd, t, "squared_error"))) + [fwd.a[-1] + 0.1 * (t - fwd.h[-1])], fwd.a)]
    for l in range(3):  # eq. 43: scaled by ||tau_L - a_L||^2 / ||tau_l - a_l||^2
        np.testing.assert_allclose(d_norm[l], d_plain[l] * jnp.sum(moves[-1] ** 2) / jnp.sum(moves[l] ** 2), rtol=1e-10)


@pytest.mark.parametrize("which", ["output", "input"])
def test_refinement_converges_like_alpha_to_the_t(which):
    """Eqs. 27-30 and 35-37 on a linear layer pair: the increments shrink at least as fast
    as alpha^t with alpha = ||I - F G|| (input correction) or ||I - G F|| (output)."""
    rng = np.random.default_rng(2)
    F = rng.normal(size=(6, 6)) / np.sqrt(6) + 2 * np.eye(6)
    G = np.linalg.inv(F) + 0.05 * rng.normal(size=(6, 6))
    f, g = (lambda u: u @ F.T), (lambda u: u @ G.T)
    tau = jnp.asarray(rng.normal(size=6))
    refine = refine_output if which == "output" else refine_input
    path = np.asarray(refine(f, g, tau, 12))
    alpha = np.linalg.norm(np.eye(6) - (G @ F if which == "output" else F @ G), 2)
    assert alpha < 1
    steps = np.linalg.norm(np.diff(path, axis=0), axis=-1)
    for k in range(1, len(steps)):
        assert steps[k] <= alpha**k * steps[0] * (1 + 1e-9) + 1e-14
    exact = np.linalg.solve(F, np.asarray(tau))  # the fixed point: f(tau_{l-1}) = tau_l
    np.testing.assert_allclose(path[-1], exact, atol=alpha**12 * 10)


@pytest.mark.parametrize("sizes, holds", [((5, 5, 5), True), ((7, 5, 5), True), ((5, 5, 3), False)])
def test_lemma_4_8_pseudo_inverse_factorisation(sizes, holds):
    """J_1^+ = W_2^+ D_2^-1 W_3^+ D_3^-1 iff n_3 = n_2 <= n_1 (thesis Lemma 4.8)."""
    net = _net([4, *sizes], ["leaky_relu:0.3", "leaky_relu:0.3", "leaky_relu:0.3"], seed=5)
    x, _ = _data(net, n=1)
    fwd = net.forward(x)
    J1 = output_jacobians(net, fwd)[0][0]
    D = [np.asarray(net.s[l].deriv(fwd.a[l][0])) for l in (1, 2)]
    W2, W3 = (np.asarray(w) for w in net.W[1:])
    factored = np.linalg.pinv(W2) @ np.diag(1 / D[0]) @ np.linalg.pinv(W3) @ np.diag(1 / D[1])
    assert np.allclose(np.linalg.pinv(np.asarray(J1)), factored, atol=1e-9) == holds


def _white_trained(net, decay, steps=300, batch=256):
    """``dtp``'s linear-form inverses trained on white noise with the forward weights fixed."""
    rule, _ = make_rule("dtp", net, inverse="linear", reconstruction="white", sigma=1.0, feedback_lr=0.05, feedback_optimizer="sgd", feedback_decay=decay)
    x, t = jnp.zeros((steps, batch, net.sizes[0])), jnp.zeros((steps, batch, net.sizes[-1]))
    _, rule = run_steps(rule, net, "squared_error", SGD(lr=0.0, frozen=tuple(range(1, net.L + 1))), x, t)
    return rule


@pytest.mark.parametrize("shape, decay", [((5, 5), 0.0), ((6, 4), 0.0), ((4, 6), 0.3), ((5, 5), 0.5)])
def test_learned_inverse_limits(shape, decay):
    """Theorems 4.6-4.7: with white input and the linear form, Q -> W^T (W W^T + lambda I)^-1:
    W^-1 (square), W^+ (contracting), the damped form (lambda > 0)."""
    import equinox as eqx

    d_in, d_out = shape
    rng = np.random.default_rng(4)
    U, _ = np.linalg.qr(rng.normal(size=(d_out, d_out)))
    V, _ = np.linalg.qr(rng.normal(size=(d_in, d_in)))
    W = U @ np.diag(np.linspace(0.8, 1.4, min(shape))) @ V[: min(shape)] if d_out <= d_in else U[:, :d_in] @ np.diag(np.linspace(0.8, 1.4, d_in)) @ V
    net = _net([3, d_in, d_out, 2], ["linear", "linear", "linear"], seed=4)
    net = eqx.tree_at(lambda n: n.W, net, (net.W[0], jnp.asarray(W), net.W[2]))
    rule = _white_trained(net, decay)
    expected = W.T @ np.linalg.inv(W @ W.T + decay * np.eye(d_out))
    np.testing.assert_allclose(rule.feedback[0][0], expected, atol=0.03)
    if d_out <= d_in and decay == 0:
        np.testing.assert_allclose(expected, np.linalg.pinv(W), atol=1e-12)


def test_theorem_4_9_dtp_with_optimal_inverses_gives_gn_targets():
    """With g_l at the pseudo-inverse of f_{l+1} (the optimum of Theorem 4.7 as lambda -> 0)
    and sizes satisfying Lemma 4.8, DTP's targets approach GN targets as eta_hat -> 0; a
    network outside the lemma's sizes keeps a finite angle."""

    def gap(sizes):
        net = _net([3, *sizes], ["leaky_relu:0.3"] * 3, seed=6)
        x, t = _data(net, n=6)
        rule, _ = make_rule("dtp", net, inverse="linear", target_stepsize=1e-5)
        Q = [np.linalg.pinv(np.asarray(W)) for W in net.W[1:]]
        rule = _set_feedback(rule, [(jnp.asarray(q), -jnp.asarray(q) @ b) for q, b in zip(Q, net.b[1:])])
        gn, _ = make_rule("gn", net, target_stepsize=1e-5)
        fwd, a = _hidden_targets(rule, net, x, t, "squared_error")
        _, b = _hidden_targets(gn, net, x, t, "squared_error")
        return float(angle(a[0] - fwd.h[1], b[0] - fwd.h[1]))

    assert gap((7, 5, 5)) < 1e-2
    assert gap((5, 5, 3)) > 1.0


def test_null_space_fraction_zero_for_gn_and_large_for_random():
    """Meulemans et al. 2020 Fig. 2: GN targets are minimum-norm (no null-space part); a
    direction that ignores the output (BP at a frozen random feedback) has a large one."""
    net = _net([6, 6, 6, 2], ["tanh", "tanh", "linear"], seed=3)
    x, t = _data(net, n=20)
    gn, _ = make_rule("gn", net)
    assert float(jnp.max(null_space_fraction(gn, net, x, t, "squared_error"))) < 1e-12
    fa, _ = make_rule("fa", net, feedback="random", feedback_scale=1.0)
    assert float(null_space_fraction(fa, net, x, t, "squared_error")[0]) > 0.5
    bp, _ = make_rule("bp", net)
    # BP's sample update J^T e is in the row space too
    assert float(jnp.max(null_space_fraction(bp, net, x, t, "squared_error"))) < 1e-12


@pytest.mark.parametrize("name, options", [("fa", dict(feedback="random")), ("di", dict(leak=0.1))])
def test_null_space_from_signals_equals_the_per_sample_updates(name, options, monkeypatch):
    """For rules whose sample update is ``delta h^T`` the fraction comes from the batch's
    signals (one steady state for a circuit rule): the same numbers as building every
    sample's update, per hidden layer; a zero input (h_0 = 0) leaves its sample out alike."""
    from neurodyn.learning.rules import SignalRule

    net = _net([6, 5, 4, 3], ["tanh", "tanh", "linear"], seed=4, scale=0.5)
    x, t = _data(net, n=8)
    x = x.at[3].set(0.0)
    rule, _ = make_rule(name, net, **options)
    fast = np.asarray(null_space_fraction(rule, net, x, t, "squared_error"))
    monkeypatch.setattr(SignalRule, "sample_signals", lambda *args: None)
    slow = np.asarray(null_space_fraction(rule, net, x, t, "squared_error"))
    assert fast.shape == (2,) and np.all(np.isfinite(fast)) and np.max(fast) > 1e-3
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)


def test_reconstruction_errors_vanish_with_the_difference_correction():
    net = _net([5, 6, 4, 3], ["tanh", "tanh", "linear"])
    x, t = _data(net)
    tp, _ = make_rule("tp", net)
    dtp, _ = make_rule("dtp", net)
    m_tp = target_metrics(tp, net, "squared_error", x, t)
    m_dtp = target_metrics(dtp, net, "squared_error", x, t, null_space=5)
    assert float(jnp.min(m_tp["e_rec"])) > 0.1 and float(jnp.max(m_dtp["e_rec"])) < 1e-12
    assert m_dtp["null_space"].shape == (2,)
    # e_approx of DTP is the Taylor error: second order in eta_hat
    small = [target_metrics(make_rule("dtp", net, target_stepsize=eta)[0], net, "squared_error", x, t)["e_approx"] for eta in (0.02, 0.01)]
    np.testing.assert_allclose(np.asarray(small[0]) / np.asarray(small[1]), 4.0, rtol=0.1)


STUDENT_TEACHER = """
name = "untuned"
seed = 11
[network]
sizes = [5, 7, 7, 7]
nonlinearities = ["leaky_relu:0.2", "leaky_relu:0.2", "linear"]
init = "data"
biases = false
loss = "squared_error"
[data]
kind = "student_teacher"
n_train = 400
n_test = 200
distance = 3.0
[training]
lr = 0.002
batch_size = 4
steps = 200
eval_every = 100
eval_samples = 200
probe_samples = 50
null_space_samples = 20
"""

FEW_TARGET_RULES = """
[rules.gn]
[rules.dtp]
[rules.ddtp_linear]
"""

MORE_TARGET_RULES = """
[rules.tp_exact]
[rules.tp_exact_random]
rule = "tp_exact"
randomized = true
[rules.tp]
[rules.dtp_drl]
[rules.ddtp_rhl]
feedback_width = 32
[rules.ddtp_control]
[rules.sdtp]
[rules.ao_sdtp]
aux_size = 8
[rules.dtp_bengio]
[rules.dtp_bengio_normalized]
rule = "dtp_bengio"
normalized = true
warmup_steps = 100
feedback_lr = 0.01
"""


@pytest.mark.parametrize(
    "rules", [pytest.param(FEW_TARGET_RULES, id="gn-dtp-ddtp_linear"), pytest.param(FEW_TARGET_RULES + MORE_TARGET_RULES, id="all", marks=pytest.mark.slow)]
)
def test_every_target_rule_learns_an_untuned_student_teacher_task(tmp_path, rules):
    """Every rule with its default options lowers the test loss of a student-teacher task
    nobody tuned for, from an experiment file, and reports its analysis columns. (The
    default suite trains GN, DTP and DDTP-linear; ``-m slow`` all 13.)"""
    import csv

    from neurodyn.cli import main

    (tmp_path / "exp.toml").write_text(STUDENT_TEACHER + rules)
    assert main(["train", str(tmp_path / "exp.toml"), "--out", str(tmp_path / "out")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "out" / "metrics.csv")))
    labels = re.findall(r"^\[rules\.(\w+)\]", rules, flags=re.M)
    assert len(labels) in (3, 13)
    for label in labels:
        mine = [r for r in rows if r["rule"] == label]
        assert float(mine[-1]["test_loss"]) < 0.8 * float(mine[0]["test_loss"]), label
        assert 0 <= float(mine[-1]["null_space_W1"]) <= 1 and mine[-1]["e_approx_h1"] != "", label
    gn = [r for r in rows if r["rule"] == "gn"]
    assert float(gn[-1]["angle_gn_W1"]) < 1e-4 and float(gn[-1]["null_space_W1"]) < 1e-9


@pytest.mark.parametrize("table, words", [
    ('[rules.x]\nrule = "dtp"\nsigma = -1.0\n', ["rule 'dtp'", "sigma"]),
    ('[rules.x]\nrule = "ddtp_rhl"\nfeedback_widht = 10\n', ["rule 'ddtp_rhl'", "feedback_widht"]),
    ('[rules.x]\nrule = "dtp_bengio"\nrefinement = "both"\n', ["rule 'dtp_bengio'", "refinement"]),
])
def test_bad_target_rule_options_exit_2(tmp_path, capsys, table, words):
    from neurodyn.cli import main

    text = STUDENT_TEACHER.split("[rules.gn]")[0] + table
    (tmp_path / "exp.toml").write_text(text)
    assert main(["train", str(tmp_path / "exp.toml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words) and "Traceback" not in err and not (tmp_path / "out").exists()


def test_tp_exact_refuses_non_square_or_non_invertible_layers(tmp_path, capsys):
    from neurodyn.cli import main

    base = STUDENT_TEACHER.split("[rules.gn]")[0] + "[rules.tp_exact]\n"
    for old, new, word in (("[5, 7, 7, 7]", "[5, 7, 6, 7]", "square"), ('"leaky_relu:0.2", "linear"]', '"tanh", "linear"]', "invertible")):
        (tmp_path / "exp.toml").write_text(base.replace(old, new))
        assert main(["train", str(tmp_path / "exp.toml"), "--out", str(tmp_path / "out")]) == 2
        assert word in capsys.readouterr().err


def test_gauss_newton_analysis_of_a_deep_network_finishes():
    """The analysis of a 784-5x256-10 network (five batched pseudo-inverses in one program)
    returns: with XLA's concurrent CPU scheduler it deadlocked, so importing neurodyn turns
    that scheduler off (neurodyn/__init__.py)."""
    import os
    import subprocess
    import sys

    script = (
        "import neurodyn, jax, numpy as np\n"
        "jax.config.update('jax_enable_x64', True)\n"
        "from neurodyn.learning.network import init_network\n"
        "from neurodyn.learning.rules import make_rule\n"
        "from neurodyn.learning.metrics import alignment\n"
        "net = init_network([784] + [256] * 5 + [10], ['tanh'] * 5 + ['softmax'], seed=0)\n"
        "rng = np.random.default_rng(0)\n"
        "x, t = rng.standard_normal((50, 784)), np.eye(10)[rng.integers(0, 10, 50)]\n"
        "out = alignment(make_rule('bp', net)[0], net, 'cross_entropy', x, t)\n"
        "print(float(abs(out['bp']).max()), bool(np.isfinite(out['gn']).all()))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    bp_angle, finite = done.stdout.split()
    assert float(bp_angle) < 1e-5 and finite == "True"
