"""Online training by circuits whose weights evolve as ODEs (neurodyn.learning.ode_training)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neurodyn.circuits.burst_multiplexing import BurstMultiplexing, two_phases
from neurodyn.circuits.dendritic_mixture import DendriticMixture
from neurodyn.core.nonlinearities import parse
from neurodyn.core.plasticity import Plastic
from neurodyn.core.simulate import simulate
from neurodyn.learning import ode_training as ot

LIN = parse("linear")
LEAKY = parse("leaky_relu:0.35")


def mixture_learner(W, *, tau_w=20.0, t1=5.0):
    """Single-phase mixture model, exact inverses, plastic W1, W2 (6.17)."""
    c = DendriticMixture(W=tuple(jnp.asarray(w) for w in W), s=(LEAKY, LIN), mu=0.2, eta_hat=0.1, eta=(4.0, 1.0))
    return ot.OnlineCircuit(Plastic(c, ["W1", "W2"], tau_w=tau_w), (LEAKY, LIN), t1=t1, rtol=1e-8, atol=1e-10)


def teacher_problem(rng, n=3, n_train=40, distance=1.0):
    T = [rng.normal(size=(n, n)) + 2 * np.eye(n) for _ in range(2)]
    W = []
    for Tl in T:
        D = rng.normal(size=(n, n))
        W.append(Tl + distance * D / np.linalg.norm(D))
    x = rng.normal(size=(n_train, n))
    a = x @ T[0].T
    t = np.where(a > 0, a, 0.35 * a) @ T[1].T
    data = {k: jnp.asarray(v) for k, v in dict(train_x=x, train_t=t, test_x=x, test_t=t, probe_x=x[:4], probe_t=t[:4]).items()}
    return W, data


def test_few_samples_reduce_the_loss():
    """40 online samples of the mixture circuit lower the training loss (measured: to 0.42 of
    the initial loss). With exact inverses, a piecewise-linear hidden layer and a linear
    output, the displacements are linear in e_L while no kink is crossed, so the hidden
    update is the Gauss-Newton-target direction (6.15) exactly (measured: 2e-7 degrees)."""
    W, data = teacher_problem(np.random.default_rng(0))
    oc = mixture_learner(W)
    w, m = jax.jit(lambda w: ot.train_online(oc, w, data["train_x"], data["train_t"], data, evals=2))(oc.initial_weights())
    loss = np.asarray(m["train_loss"])
    assert loss.shape == (3,)
    assert loss[2] < 0.6 * loss[0] and loss[1] < loss[0]
    assert np.all(np.asarray(m["solver_ok"]) == 1.0)
    assert float(m["angle_gn"][0, 0]) < 1e-3


def test_scan_equals_step_by_step_reference():
    """The scanned run over 3 samples equals 3 separate engine solves (`simulate` with the
    weights carried by hand) to 1e-10 relative."""
    W, data = teacher_problem(np.random.default_rng(1), n_train=3)
    oc = mixture_learner(W, tau_w=5.0)
    w_scan, metrics = ot.train_online(oc, oc.initial_weights(), data["train_x"], data["train_t"], None)
    assert metrics == {}
    w = oc.initial_weights()
    for x, t in zip(data["train_x"], data["train_t"]):
        inputs = {"x": x, "target": t}
        y0 = dict(oc.plastic.rebuild(w).init_state(inputs))
        y0.update(w)
        traj = simulate(oc.plastic, inputs, t1=oc.t1, y0=y0, steady_state=False, rtol=oc.rtol, atol=oc.atol)
        assert traj.reason == "t1_reached"
        w = {n: jnp.asarray(traj.final[n]) for n in w}
    for n in w:
        err = np.linalg.norm(np.asarray(w_scan[n]) - np.asarray(w[n])) / np.linalg.norm(np.asarray(w[n]))
        assert err < 1e-10, (n, err)
    assert any(np.linalg.norm(np.asarray(w[n]) - np.asarray(oc.initial_weights()[n])) > 1e-3 for n in w)


def _known_angle_case():
    """Linear 2-2-2 network, W_2 = diag(1, 2), output error e = (1, 1): BP's hidden signal is
    W_2^T e = (1, 2), the Gauss-Newton target's W_2^{-1} e = (1, 0.5); cos = 2 / 2.5 = 0.8."""
    W1, W2 = jnp.eye(2), jnp.diag(jnp.array([1.0, 2.0]))
    x = jnp.array([[0.7, -0.4]])
    t = (x @ W2.T) - 1.0  # e = h_2 - t = (1, 1)
    data = dict(train_x=x, train_t=t, test_x=x, test_t=t, probe_x=x, probe_t=t)
    return W1, W2, data, float(np.degrees(np.arccos(0.8)))


def test_angles_of_bp_on_a_known_case():
    W1, W2, data, expected = _known_angle_case()
    bp = ot.GradientDescent((LIN, LIN), lr=0.1)
    m = jax.jit(lambda w: ot.evaluate(bp, w, data))({"W1": W1, "W2": W2})
    assert float(m["angle_bp"][0]) == pytest.approx(0.0, abs=1e-5)
    assert float(m["angle_gn"][0]) == pytest.approx(expected, abs=1e-9)
    assert float(m["angle_gn_weight"][0]) == pytest.approx(expected, abs=1e-9)  # linear layer: the two GN references agree
    assert float(m["train_loss"]) == pytest.approx(1.0, abs=1e-12)  # 0.5 ||(1, 1)||^2


def test_circuit_signal_angles_on_a_known_case():
    """Burst multiplexing with a linear apical transfer and Q_1 = W_2^{-1}: by (6.59) its
    hidden update over one cycle is -eta eta_hat D Q_1 e h_0^T, the Gauss-Newton-target
    direction, at 36.87 degrees from BP's (slow weights: the error moves by ~1e-4 during
    the learning phase). Its size: the apical voltage relaxes to the learning-phase rest
    with time constant 1, so the phase difference integrates to
    (T - 1 + exp(-T)) eta_hat Q_1 e over a learning phase of length T = 3."""
    W1, W2, data, expected = _known_angle_case()
    c = BurstMultiplexing(W=(W1, W2), Q=(jnp.linalg.inv(W2),), s=(LIN, LIN), apical=(LIN,), phase=two_phases(2.0, 3.0), eta_hat=0.1)
    oc = ot.OnlineCircuit(Plastic(c, ["W1", "W2"], tau_w=1e4), (LIN, LIN), t1=5.0, start="closed_form", rtol=1e-9, atol=1e-12)
    m = jax.jit(lambda w: ot.evaluate(oc, w, data))(oc.initial_weights())
    assert float(m["angle_gn"][0]) < 0.05
    assert float(m["angle_bp"][0]) == pytest.approx(expected, abs=0.05)
    dW, _ = oc.signal(oc.initial_weights(), data["probe_x"], data["probe_t"])
    pred = (3.0 - 1.0 + np.exp(-3.0)) / 1e4 * 0.1 * np.linalg.norm([1.0, 0.5]) * float(jnp.linalg.norm(data["probe_x"][0]))
    assert float(jnp.linalg.norm(dW["W1"][0])) == pytest.approx(pred, rel=1e-3)


def test_bad_arguments():
    W, data = teacher_problem(np.random.default_rng(2), n_train=4)
    oc = mixture_learner(W)
    with pytest.raises(ValueError, match="evals must divide"):
        ot.train_online(oc, oc.initial_weights(), data["train_x"], data["train_t"], data, evals=3)
    c = oc.plastic.circuit
    with pytest.raises(ValueError, match="must be plastic"):
        ot.OnlineCircuit(Plastic(c, ["W2"], tau_w=1.0), (LEAKY, LIN), t1=1.0)
