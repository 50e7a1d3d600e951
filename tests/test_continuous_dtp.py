"""Continuous DTP (Bengio 2020, section 10.2, eqs 46-54): Propositions 1,
2, 3, 5 and 8 in the continuous reading and in the discrete iteration (46)-(53), and the
agreement of the two."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
from neurodyn.circuits import ContinuousDTP
from neurodyn.circuits.continuous_dtp import discrete_init, discrete_run, discrete_step
from neurodyn.core.circuit import jacobian
from neurodyn.core.plasticity import Plastic
from neurodyn.core.schedules import Ramp, Step, from_spec

from helpers import conditioned, rel

LEAKY = "leaky_relu:0.5"


def network(rng, sizes, *, omega=0.5, **kw):
    """Well-conditioned W_l (singular values in [0.8, 1.2]) and Omega_l = omega W_l^T, so that
    f'_l g'_l = omega W_l D W_l^T D' has positive eigenvalues (Proposition 3 holds)."""
    W = [conditioned(rng, sizes[l], sizes[l - 1], 0.8, 1.2) for l in range(1, len(sizes))]
    Omega = [omega * W[l - 1].T for l in range(2, len(sizes))]
    return ContinuousDTP.build(W, Omega, **kw)


def sample(rng, c, batch=None):
    shape = (batch,) if batch else ()
    return {"x": jnp.asarray(0.7 * rng.normal(size=shape + (c.sizes[0],))), "target": jnp.asarray(rng.normal(size=shape + (c.sizes[-1],)))}


# ---- Propositions 1 and 2 -----------------------------------------------------------
@pytest.mark.parametrize("gamma", [0.0, 0.6])
def test_p1_p2_continuous_fixed_point(gamma):
    """P1: tau_l = h_l at convergence; P2: tau_{l-1} = f_l^{-1}(tau_l) (square layers,
    leaky ReLU, so f_l is invertible). Both to 1e-10 at the fixed point of (48)."""
    rng = np.random.default_rng(1)
    c = network(rng, [6, 5, 5, 5], nonlinearity=LEAKY, gamma=gamma, beta=0.3, omega=1.0)
    x = sample(rng, c, batch=6)
    eq = nd.fixed_point(c, x, t1=2000.0, rtol=1e-7, atol=1e-9)
    assert eq.all_converged and np.all(eq.stable), eq.reason
    for k in range(6):
        s, xk = {n: v[k] for n, v in eq.state.items()}, {n: v[k] for n, v in x.items()}
        _, _, _, _, tau, h = c.neural(0.0, s, xk)
        for l in range(2, c.L + 1):
            assert rel(h[l - 1], tau[l - 1]) <= 1e-10  # P1
            assert rel(tau[l - 2], c.f_inverse(l, tau[l - 1])) <= 1e-10  # P2
        # the output moved by the step: h_L = tau_L = a_L - (1 - gamma) beta e_L
        aL = c.forward(xk["x"])[-1]
        assert rel(h[-1], aL - (1 - gamma) * 0.3 * (aL - xk["target"])) <= 1e-10
    report = nd.core.equilibrium.checks(c, eq.state, x)
    assert report["P1_tau_equals_h"]["value"] <= 1e-10 and report["P2_tau_is_inverse"]["value"] <= 1e-10


def test_p1_p2_discrete_iteration_and_agreement_with_continuous():
    """The discrete iteration (46)-(49) converges to the same fixed point as the continuous
    reading: P1 and P2 to 1e-12 there, and u agrees with the ODE's fixed point to 1e-10."""
    rng = np.random.default_rng(2)
    c = network(rng, [6, 5, 5, 5], nonlinearity=LEAKY, gamma=0.3, beta=0.3)
    x = sample(rng, c)
    final, hist = jax.jit(lambda g: discrete_run(c, x, g))(jnp.full((600,), 0.3))
    a = c.forward(x["x"])
    u = {l: final[f"u_{l}"] for l in range(2, c.L + 1)}
    tau = c.targets(jnp.full(c.L, 0.3), a, u, x)
    h = c.activities(tau, x)
    for l in range(2, c.L + 1):
        assert rel(h[l - 1], tau[l - 1]) <= 1e-12
        assert rel(tau[l - 2], c.f_inverse(l, tau[l - 1])) <= 1e-12
    eq = nd.fixed_point(c, x, t1=2000.0, rtol=1e-7, atol=1e-9)
    assert eq.all_converged
    for l in range(2, c.L + 1):
        assert rel(final[f"u_{l}"], eq.state[f"u_{l}"]) <= 1e-10


def test_tanh_contracting_layers_p1():
    """P1 with tanh and contracting layers (no P2: f_l has no inverse), gamma = 0.5."""
    rng = np.random.default_rng(3)
    c = network(rng, [7, 6, 5, 4], nonlinearity="tanh", gamma=0.5, beta=0.05, omega=1.0)
    x = sample(rng, c, batch=4)
    x["x"] = 0.3 * x["x"]
    eq = nd.fixed_point(c, x, t1=2000.0, rtol=1e-7, atol=1e-9)
    assert eq.all_converged and np.all(eq.stable), eq.reason
    checks = nd.core.equilibrium.checks(c, eq.state, x)
    assert set(checks) == {"P1_tau_equals_h"} and checks["P1_tau_equals_h"]["value"] <= 1e-10


# ---- Proposition 3 ------------------------------------------------------------------
def designed(rng, lam, gamma):
    """Linear sigma, L = 2, d = 4: Omega_2 such that f'_2 g'_2 = W_2 Omega_2 has eigenvalues ``lam``."""
    d = len(lam)
    W = [conditioned(rng, d, d), conditioned(rng, d, d)]
    V = rng.normal(size=(d, d))
    lam = np.asarray(lam)
    if np.iscomplexobj(lam):  # a real matrix with the conjugate pair lam[0], lam[1]
        A = np.diag(lam.real).astype(float)
        A[0, 1], A[1, 0] = lam[0].imag, -lam[0].imag
    else:
        A = np.diag(lam)
    M = V @ A @ np.linalg.inv(V)
    return ContinuousDTP.build(W, [np.linalg.solve(W[1], M)], nonlinearity="linear", gamma=gamma, beta=0.5), M


CASES = {  # eigenvalues of f'g', gamma, discrete spectral radius rho(I - (1-gamma) f'g')
    "contracting": ([0.4, 0.8, 1.2, 1.6], 0.0, 0.6),
    "too_large_for_gamma0": ([0.5, 1.0, 2.5, 3.0], 0.0, 2.0),
    "same_at_gamma_half": ([0.5, 1.0, 2.5, 3.0], 0.5, 0.75),
    "complex_pair": ([0.3 + 2j, 0.3 - 2j, 1.0, 1.5], 0.0, float(abs(1 - (0.3 + 2j)))),
    "negative": ([-0.5, 0.5, 1.0, 1.5], 0.0, 1.5),
}


@pytest.mark.parametrize("case", list(CASES))
def test_p3_discrete_convergence_rate_is_the_spectral_radius(case):
    """Discrete (48): the error of u contracts (or grows) by rho(I - (1-gamma) f'g') per step;
    the measured rate over steps 10..40 (10..60 when diverging) matches the predicted rho to 2%, and the
    iterates converge exactly when rho < 1."""
    lam, gamma, rho = CASES[case]
    rng = np.random.default_rng(4)
    c, M = designed(rng, lam, gamma)
    predicted = np.max(np.abs(np.linalg.eigvals(np.eye(4) - (1 - gamma) * M)))
    assert abs(predicted - rho) <= 1e-10
    x = sample(rng, c)
    a = c.forward(x["x"])
    tauL = a[2] - (1 - gamma) * 0.5 * (a[2] - x["target"])
    # fixed point of (48): f_2(gamma a_1 + (1-gamma) Omega_2 u) = tau_2
    ustar = np.linalg.solve((1 - gamma) * np.asarray(c.W[1] @ c.Omega[0]), np.asarray(tauL - gamma * c.W[1] @ a[1]))
    n_steps = 200 if rho < 1 else 60
    _, hist = discrete_run(c, x, jnp.full((n_steps,), gamma))
    err = np.linalg.norm(np.asarray(hist["u_2"]) - ustar, axis=1)
    k0, k1 = 10, 40 if rho < 1 else 60  # before the error reaches round-off
    rate = (err[k1 - 1] / err[k0 - 1]) ** (1.0 / (k1 - k0))
    assert abs(rate - rho) <= 2e-2 * rho
    assert (err[-1] < 1e-12 * np.linalg.norm(ustar)) == (rho < 1)


@pytest.mark.parametrize("case", list(CASES))
def test_p3_continuous_condition_is_positive_real_part(case):
    """Continuous (48): the Jacobian's spectrum is -(1-gamma) eig(f'g') (to 1e-10); the ODE
    converges iff Re eig(f'g') > 0, also where the discrete map diverges (rho > 1)."""
    lam, gamma, rho = CASES[case]
    rng = np.random.default_rng(4)
    c, M = designed(rng, lam, gamma)
    x = sample(rng, c)
    expected = -(1 - gamma) * np.linalg.eigvals(M)
    got = np.asarray(c.eigenvalues(c.init_state(x), x))
    assert np.max(np.abs(np.sort_complex(got) - np.sort_complex(expected))) <= 1e-10
    tr = nd.simulate(c, x, t1=300.0, rtol=1e-9, atol=1e-12)
    stable = min(np.real(lam)) > 0
    assert (tr.reason == "steady_state") == stable
    if not stable:
        assert tr.reason == "diverged"


JACOBIAN_CASES = {
    "constant": (0.3, "tanh"),
    "step": (Step(5.0, 1.0, 0.2), "leaky_relu:0.3"),
    # per-layer wave, layers in different phases at t = 0 (gamma = 1, 0.3, 0.3)
    "wave": ({"type": "wave", "base": {"type": "step", "time": -0.2, "before": 0.3, "after": 1.0}, "layers": 3, "delay": 0.5}, "tanh"),
}


@pytest.mark.parametrize("case", [pytest.param(k, marks=() if k == "constant" else pytest.mark.slow) for k in JACOBIAN_CASES])
def test_block_matrix_matches_autodiff(case):
    """The analytic Jacobian (u, a, n blocks) equals jax.jacfwd to 1e-12."""
    rng = np.random.default_rng(5)
    gamma, sig = JACOBIAN_CASES[case]
    W = [conditioned(rng, d1, d0) for d0, d1 in ((6, 5), (5, 5), (5, 4))]
    Om = [rng.normal(size=(5, 5)), rng.normal(size=(5, 4))]
    c = ContinuousDTP.build(W, Om, nonlinearity=sig, gamma=gamma, beta=0.3)
    x = sample(rng, c)
    s = {k: v + 0.3 * rng.normal(size=v.shape) for k, v in c.init_state(x).items()}
    assert float(jnp.max(jnp.abs(jacobian(c, s, x) - c.block_matrix(s, x)))) <= 1e-12
    if case == "wave":
        assert np.asarray(c.gammas(0.0)).tolist() == [1.0, 0.3, 0.3]


# ---- Proposition 5 ------------------------------------------------------------------
def _delta_w_prediction(c, state, inputs, t, lr):
    """lr y_l n_{l-1}^T from the circuit's state at ``t`` (y_l = tau_l - a_l, or scaled)."""
    gam, a, n, u, tau, _ = c.neural(t, state, inputs)
    y = c.increments(gam, a, tau)
    return [lr * np.outer(y[l - 1], n[l - 1]) for l in range(1, c.L + 1)]


GAMMAS = {
    "step": Step(5.0, 1.0, 0.2),
    "ramp": Ramp(5.0, 10.0, 1.0, 0.2),
    "wave": from_spec({"type": "wave", "base": {"type": "step", "time": 5.0, "before": 1.0, "after": 0.2}, "layers": 3, "delay": 1.0}),
}


P5_FAST = {("step", False)}


@pytest.mark.parametrize(
    "schedule, layer_scale",
    [pytest.param(g, ls, marks=() if (g, ls) in P5_FAST else pytest.mark.slow) for g in GAMMAS for ls in (False, True)],
)
def test_p5_continuous_total_update_telescopes(schedule, layer_scale):
    """P5 (58-59): with W plastic under (50) (learning while u relaxes), the total change is
    Delta W_l = lr (tau_l - a_l) n_{l-1}^T at the end, or with the layer scale factor of (43)
    ||tau_L - a_L||^2 / ||tau_l - a_l||^2 times that; relative error <= 1e-6 (ODE tolerance;
    a step in gamma is a ramp of width 1e-6, which adds tau's jump to W). For the global
    step, the discrete iteration of the same phases gives the same total update (1e-6)."""
    rng = np.random.default_rng(6)
    lr = 0.05
    c = network(rng, [6, 5, 5, 4], nonlinearity=LEAKY, gamma=GAMMAS[schedule], beta=0.3, lr_w=lr, layer_scale=layer_scale)
    x = sample(rng, c)
    p = Plastic(c, ["W1", "W2", "W3"], tau_w=1.0)
    tr = nd.simulate(p, x, t1=400.0, rtol=1e-10, atol=1e-12, steady_state=False)
    assert tr.reason == "t1_reached"
    final = {k: jnp.asarray(v) for k, v in tr.final.items()}
    cf = p.rebuild(final)
    pred = _delta_w_prediction(cf, p.neural_state(final), x, 400.0, lr)
    for l in range(1, c.L + 1):
        assert np.linalg.norm(pred[l - 1]) > 1e-3
        assert rel(final[f"W{l}"] - c.W[l - 1], pred[l - 1]) <= 1e-6
    if schedule == "step":
        disc, _ = discrete_run(c, x, jnp.concatenate([jnp.ones(5), jnp.full(600, 0.2)]), learn_w=True)
        for l in range(1, c.L + 1):
            assert rel(final[f"W{l}"] - c.W[l - 1], disc[f"W{l}"] - c.W[l - 1]) <= 1e-6


@pytest.mark.parametrize("layer_scale", [False, True])
def test_p5_discrete_total_update_telescopes(layer_scale):
    """P5 for the discrete iteration (50): Delta W_l = lr y_l(T) n_{l-1}^T to 1e-12 (pure
    telescoping of (59)), y_l = tau_l - a_l, times the (43) factor with layer_scale."""
    rng = np.random.default_rng(6)
    lr = 0.05
    c = network(rng, [6, 5, 5, 4], nonlinearity=LEAKY, gamma=Step(5.0, 1.0, 0.2), beta=0.3, lr_w=lr, layer_scale=layer_scale)
    x = sample(rng, c)
    final, _ = discrete_run(c, x, jnp.concatenate([jnp.ones(5), jnp.full(300, 0.2)]), learn_w=True)
    n0 = discrete_init(c, x)
    a = c.forward(x["x"])
    u = {l: final[f"u_{l}"] for l in range(2, c.L + 1)}
    W_final = eqx_rebuild(c, final)
    tau = W_final.targets(jnp.full(c.L, 0.2), a, u, x)
    scale = [np.sum((tau[-1] - a[-1]) ** 2) / np.sum((tau[l - 1] - a[l]) ** 2) if layer_scale else 1.0 for l in range(1, c.L + 1)]
    for l in range(1, c.L + 1):
        pred = lr * scale[l - 1] * np.outer(tau[l - 1] - a[l], n0[f"n_{l - 1}"])
        assert np.linalg.norm(pred) > 1e-3
        assert rel(final[f"W{l}"] - c.W[l - 1], pred) <= 1e-12


def eqx_rebuild(c, carry):
    import equinox as eqx

    return eqx.tree_at(lambda m: (m.W, m.Omega), c, (tuple(carry[f"W{l}"] for l in range(1, c.L + 1)), tuple(carry[f"Omega{l}"] for l in range(2, c.L + 1))))


class _DownUp(nd.core.schedules.Schedule):
    """Smooth 1 -> 0.2 over [5, 10] and back to 1 over [80, 90]."""

    def __call__(self, t):
        return Ramp(5.0, 5.0, 1.0, 0.2)(t) + Ramp(80.0, 10.0, 0.0, 0.8)(t)


@pytest.mark.slow
def test_smooth_return_to_feedforward_undoes_the_update():
    """A consequence of (50)'s telescoping in continuous time: if gamma returns to 1 smoothly
    (the rule is on while gamma < 1), tau_l returns to a_l and the net Delta W_l is 0
    (<= 1e-6 of the update at the end of the feedback phase); a step back keeps it (1e-12)."""
    lr = 0.05
    base = network(np.random.default_rng(7), [6, 5, 5, 4])
    x = sample(np.random.default_rng(8), base)
    gammas = {"smooth": _DownUp(), "step": from_spec({"type": "piecewise", "times": [5.0, 80.0], "values": [1.0, 0.2, 1.0]})}
    for name, gamma in gammas.items():
        c = ContinuousDTP.build(base.W, base.Omega, nonlinearity=LEAKY, gamma=gamma, beta=0.3, lr_w=lr)
        p = Plastic(c, ["W1", "W2", "W3"], tau_w=1.0)
        tr = nd.simulate(p, x, t1=100.0, rtol=1e-10, atol=1e-12, steady_state=False, saveat=[80.0, 100.0])
        for l in range(1, c.L + 1):
            mid, end = tr.ys[f"W{l}"][0] - c.W[l - 1], tr.ys[f"W{l}"][1] - c.W[l - 1]
            assert np.linalg.norm(mid) > 1e-3
            if name == "smooth":
                assert np.linalg.norm(end) <= 1e-6 * np.linalg.norm(mid)
            else:
                assert rel(end, mid) <= 1e-12


# ---- Proposition 8 ------------------------------------------------------------------
@pytest.mark.parametrize("gamma", [0.0, 0.3, 0.7, 1.0])
def test_p8_feedback_rules(gamma):
    """P8 (60-61): Delta_1 Omega_l = gamma Delta_2 Omega_l at any state (converged or not),
    to 1e-12, both from the rule and from the continuous plasticity hook; the discrete
    iteration with (51) and (52) obeys it step by step."""
    rng = np.random.default_rng(9)
    kw = dict(nonlinearity="tanh", gamma=gamma, beta=0.3)
    c1 = network(rng, [6, 5, 5, 4], feedback_rule="51", **kw)
    c2 = ContinuousDTP.build(c1.W, c1.Omega, feedback_rule="52", **kw)
    x = sample(rng, c1)
    s = {k: v + rng.normal(size=v.shape) for k, v in c1.init_state(x).items()}  # far from convergence
    r1, r2 = c1.plasticity(0.0, s, x), c2.plasticity(0.0, s, x)
    for l in range(2, c1.L + 1):
        d1, d2 = np.asarray(r1[f"Omega{l}"]), np.asarray(r2[f"Omega{l}"])
        assert np.linalg.norm(d2) > 1e-2
        assert np.max(np.abs(d1 - gamma * d2)) <= 1e-12 * np.max(np.abs(d2))
    carry = {k: v + 0.5 * rng.normal(size=v.shape) if k.startswith("u_") else v for k, v in discrete_init(c1, x).items()}
    n1, _ = discrete_step(c1, carry, gamma, x, learn_omega=True)
    n2, _ = discrete_step(c2, carry, gamma, x, learn_omega=True)
    for l in range(2, c1.L + 1):
        d1, d2 = n1[f"Omega{l}"] - carry[f"Omega{l}"], n2[f"Omega{l}"] - carry[f"Omega{l}"]
        assert np.max(np.abs(d1 - gamma * d2)) <= 1e-12 * np.max(np.abs(d2))


# ---- options and model-file errors --------------------------------------------------
def test_bad_options_give_one_line_errors():
    from neurodyn.circuits.continuous_dtp import CDTPOptions

    sizes = [4, 3, 3]
    arrays = {"W1": np.ones((3, 4)), "W2": np.eye(3), "Omega2": np.eye(3)}
    with pytest.raises(ValueError, match="gamma: unknown schedule type 'sawtooth'"):
        ContinuousDTP.from_arrays(sizes, CDTPOptions(gamma={"type": "sawtooth"}), arrays)
    with pytest.raises(ValueError, match="wave over the 2 layers"):
        ContinuousDTP.from_arrays(sizes, CDTPOptions(gamma={"type": "wave", "base": 0.5, "layers": 3, "delay": 1.0}), arrays)
    with pytest.raises(ValueError, match="hidden layer"):
        ContinuousDTP.validate_sizes([4, 3])
    c = ContinuousDTP.from_arrays(sizes, CDTPOptions(gamma={"type": "periodic", "period": 10.0, "shape": "square"}, t_max=30.0), arrays)
    assert c.jump_times() == tuple(sorted({5.0, 10.0, 15.0, 20.0, 25.0, 30.0} | {5.0 + 1e-6, 15.0 + 1e-6, 25.0 + 1e-6}))
    assert c.where("Omega2")(c) is c.Omega[0]
    with pytest.raises(KeyError, match="Omega2..Omega2"):
        c.where("Omega3")
