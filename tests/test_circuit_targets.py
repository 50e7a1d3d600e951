"""Reconstruction errors (thesis 5.40-5.41) of the continuous circuits with learned
feedback, measured on the discrete target path each circuit approximates: the mixture
model's single phase is TP with its apical rates as inverses, two phases (mixture, burst
multiplexing) remove the reconstruction errors, and continuous DTP's targets are the rest
of its feedback phase."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
from neurodyn.circuits import ContinuousDTP
from neurodyn.learning.metrics import target_metrics
from neurodyn.learning.network import init_network
from neurodyn.learning.rules import make_rule

LOSS = "squared_error"


def _net(sizes, nls, seed=0):
    return init_network(sizes, nls, seed=seed, init="normal", biases=False, scale=0.8)


def _data(sizes, n=8, seed=1, bound=None):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-bound, bound, size=(n, sizes[0])) if bound else rng.normal(size=(n, sizes[0]))
    return jnp.asarray(x), jnp.asarray(rng.uniform(-0.5, 0.5, size=(n, sizes[-1])))


def _perturbed(rule, scale=0.3, seed=5):
    """``rule`` with its own feedback arrays moved off their pseudo-inverse start."""
    rng = np.random.default_rng(seed)
    own = {k: v + scale * jnp.asarray(rng.normal(size=v.shape)) / np.sqrt(v.shape[1]) for k, v in rule.own.items()}
    return eqx.tree_at(lambda r: r.own, rule, own)


def test_single_phase_mixture_is_tp_with_its_apical_inverses():
    """g_i(h) = Q_i s_{i+1}^{-1}(h) is the thesis's linear inverse of rule tp (4.89): with the
    same Q (and c = 0) both report the same e_rec and e_approx, and e_rec is not small."""
    net = _net([5, 6, 6, 4], ["tanh", "tanh", "tanh"])
    x, t = _data(net.sizes)
    mix = _perturbed(make_rule("dendritic_mixture", net, inverse_nonlinearity="inverse", eta_hat=0.2)[0])
    tp, _ = make_rule("tp", net, inverse="linear", target_stepsize=0.2)
    Q = [mix.own[f"Q{l}"] for l in range(1, net.L)]
    tp = eqx.tree_at(lambda r: r.feedback, tp, tuple((q, jnp.zeros(q.shape[0])) for q in Q))
    ours, theirs = target_metrics(mix, net, LOSS, x, t), target_metrics(tp, net, LOSS, x, t)
    for k in ("e_rec", "e_approx"):
        np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-9)
    assert float(jnp.min(ours["e_rec"])) > 0.05


@pytest.mark.parametrize("rule,options", [("dendritic_mixture", {"phases": "two", "inverse_nonlinearity": "tanh"}), ("burst_multiplexing", {"apical": "tanh"})])
def test_two_phase_circuits_have_no_reconstruction_error(rule, options):
    """Thesis 6.6/6.9: the difference of the two phases removes the reconstruction errors
    (e_rec 0) and leaves the Taylor error of the nonlinear feedback path, second order in
    eta_hat; the same arrays in one phase carry a reconstruction error."""
    net = _net([5, 6, 6, 4], ["tanh", "tanh", "tanh"])
    x, t = _data(net.sizes)
    approx = []
    for eta_hat in (0.04, 0.02):
        r = _perturbed(make_rule(rule, net, eta_hat=eta_hat, **options)[0])
        m = target_metrics(r, net, LOSS, x, t)
        assert float(jnp.max(m["e_rec"])) < 1e-13
        approx.append(np.asarray(m["e_approx"]))
    np.testing.assert_allclose(approx[0] / approx[1], 4.0, rtol=0.05)
    if rule == "dendritic_mixture":
        single = _perturbed(make_rule(rule, net, eta_hat=0.02, inverse_nonlinearity="tanh")[0])
        assert float(jnp.min(target_metrics(single, net, LOSS, x, t)["e_rec"])) > 0.05


def test_continuous_dtp_targets_are_the_feedback_phase_rest():
    """The targets measured for continuous_dtp are where the circuit's feedback phase
    (gamma = 0) comes to rest, integrated by the engine: tau_{l-1} = g_l(u_l) to 1e-7, on a
    contracting network where they are not the forward pass (e_rec > 0)."""
    sizes = [6, 5, 4, 3]
    net = _net(sizes, ["tanh", "tanh", "linear"])
    x, t = _data(sizes, bound=0.9)
    rule = _perturbed(make_rule("continuous_dtp", net, beta=0.3)[0], scale=0.2)
    W = [rule.plastic.rebuild(rule.weights(net)).W[l] for l in range(net.L)]
    Omega = [rule.own[f"Omega{l}"] for l in range(2, net.L + 1)]
    circuit = ContinuousDTP.build(W, Omega, nonlinearity="tanh", gamma=0.0, beta=0.3)
    inputs = {"x": jnp.arctanh(x), "target": t}
    eq = nd.fixed_point(circuit, inputs, t1=2000.0, rtol=1e-9, atol=1e-11)

    @eqx.filter_jit
    def targets(rule, net, x, t):
        path = rule.target_path(rule.plastic.rebuild(rule.weights(net)), net, net.forward(x), t)
        return path.targets(path.o_hat)

    ours = targets(rule, net, x, t)
    # a sample whose feedback phase has no rest (tau_l outside the range of f_l) has no target
    has_target = np.all(np.isfinite(np.asarray(ours[0])), axis=1)
    np.testing.assert_array_equal(has_target, eq.converged)
    assert 0 < np.sum(has_target) < len(has_target)
    for k in np.flatnonzero(eq.converged):
        state, inp = {n: v[k] for n, v in eq.state.items()}, {n: v[k] for n, v in inputs.items()}
        tau = circuit.neural(0.0, state, inp)[4]
        for l in range(1, net.L):
            np.testing.assert_allclose(ours[l - 1][k], tau[l - 1], atol=1e-7)
    m = target_metrics(rule, net, LOSS, x, t)
    assert float(jnp.min(m["e_rec"])) > 1e-3 and np.all(np.isfinite(m["e_approx"]))


def test_continuous_dtp_square_layers_invert_exactly():
    """With square layers f_l is invertible, so the feedback phase finds the exact inverse
    whatever Omega is: e_rec vanishes to rounding and e_approx is the Taylor error (second
    order in beta)."""
    sizes = [5, 5, 5, 5]
    net = _net(sizes, ["tanh", "tanh", "linear"], seed=2)
    x, t = _data(sizes, bound=0.6)
    approx = []
    for beta in (0.01, 0.005):
        rule = _perturbed(make_rule("continuous_dtp", net, beta=beta)[0], scale=0.2)
        m = target_metrics(rule, net, LOSS, x, t)
        assert float(jnp.max(m["e_rec"])) < 1e-12
        approx.append(np.asarray(m["e_approx"]))
    np.testing.assert_allclose(approx[0] / approx[1], 4.0, rtol=0.05)
