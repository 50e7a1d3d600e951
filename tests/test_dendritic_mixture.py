"""Segregated-dendrite mixture model (thesis sections 6.3-6.8):
fixed points against (6.12), (6.15) and the first-order recursion, the two-phase signal
(6.35) against the single-phase one (6.17), the block-tridiagonal Jacobian (6.40) and the
plasticity rules (6.17), (6.26), (6.35), (6.37)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
from neurodyn.circuits import DendriticMixture
from neurodyn.circuits.dendritic_mixture import InverseOf, phase_schedule
from neurodyn.core.circuit import jacobian
from neurodyn.core.nonlinearities import parse

from helpers import orthogonal


def mixture(rng, sizes, *, s="tanh", mu=0.2, eta_hat=0.1, inverses="exact", t="linear", q_noise=0.1, gain=1.0, phases=None, **kw):
    """W_i = gain * orthogonal (square) or N(0, 1/d) (otherwise); learned Q_i = W_{i+1}^+ + noise."""
    L = len(sizes) - 1
    W = []
    for i in range(1, L + 1):
        if sizes[i] == sizes[i - 1]:
            W.append(gain * orthogonal(rng, sizes[i]))
        else:
            W.append(rng.normal(size=(sizes[i], sizes[i - 1])) / np.sqrt(sizes[i - 1]))
    ss = tuple(parse(s) for _ in range(L))
    Q, ts = (), ()
    if inverses == "learned":
        Q = tuple(jnp.asarray(np.linalg.pinv(W[i]) + q_noise * rng.normal(size=(sizes[i], sizes[i + 1]))) for i in range(1, L))
        ts = tuple(InverseOf(ss[i]) if t == "inverse" else parse(t) for i in range(1, L))
    schedule = None if phases is None else phase_schedule(*phases)
    return DendriticMixture(
        W=tuple(jnp.asarray(w) for w in W), Q=Q, s=ss, t=ts, mu=mu, eta_hat=eta_hat, inverses=inverses, schedule=schedule, **kw
    )


def data(rng, c, x_std=0.5, t_std=0.3, batch=None):
    shape = lambda d: (batch, d) if batch else (d,)  # noqa: E731
    return {"x": jnp.asarray(x_std * rng.normal(size=shape(c.sizes[0]))), "target": jnp.asarray(t_std * rng.normal(size=shape(c.sizes[-1])))}


def rest(c, x, **kw):
    eq = nd.fixed_point(c, x, t1=kw.pop("t1", 400.0), rtol=1e-10, atol=1e-12, **kw)
    assert eq.all_converged and np.all(eq.stable), eq.reason
    return eq.state


def d(c, state, x):
    return [np.asarray(v) for v in c.displacements(state, x)]


def slope(xs, ys):
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


# ---- exact inverses -------------------------------------------------------------------
@pytest.mark.parametrize("s", ["tanh", "leaky_relu:0.3"])
def test_without_target_the_fixed_point_is_the_forward_pass(s):
    """eta_hat = 0 (and, separately, a target equal to the forward output): the circuit
    relaxes from a perturbed start to the forward pass (6.9, below it), error <= 1e-10."""
    rng = np.random.default_rng(0)
    c = mixture(rng, [4, 4, 4, 4], s=s, eta_hat=0.0)
    x = data(rng, c, batch=3)
    fwd = jax.vmap(c.forward)(x["x"])
    y0 = {f"h_{i}": fwd[i] + 0.1 * rng.normal(size=fwd[i].shape) for i in range(1, 4)}
    state = rest(c, x, y0=y0)
    assert max(np.max(np.abs(state[f"h_{i}"] - fwd[i])) for i in range(1, 4)) <= 1e-10
    assert nd.core.equilibrium.checks(c, state, x)["closed_form_relative_error"]["value"] <= 1e-10
    if s != "tanh":
        return
    # a target at the forward output gives e_L = 0: no teaching signal either
    c2 = mixture(np.random.default_rng(0), [4, 4, 4, 4], s=s, eta_hat=0.5)
    x2 = {"x": x["x"], "target": fwd[-1]}
    state = rest(c2, x2, y0=y0)
    assert max(np.max(np.abs(state[f"h_{i}"] - fwd[i])) for i in range(1, 4)) <= 1e-10


@pytest.mark.parametrize("inverses", ["exact", "learned"])
def test_eq_6_12_holds_exactly(inverses):
    """h_L^* = f_L(h_{L-1}^*) - (mu/(1-mu)) eta_hat e_L at the fixed point (6.12)."""
    for mu, eta_hat in [(0.1, 0.05), (0.3, 0.2), (0.45, 0.5)]:
        rng = np.random.default_rng(1)
        c = mixture(rng, [3, 4, 4, 4], mu=mu, eta_hat=eta_hat, inverses=inverses, gain=0.9)
        x = data(rng, c, batch=2)
        state = rest(c, x)
        value = nd.core.equilibrium.checks(c, state, x)["eq_6_12_relative_error"]["value"]
        assert value <= 1e-10, (mu, eta_hat, value)


def test_eq_6_15_error_falls_like_eta_hat():
    """(6.15): d_i = h_i^* - f_i(h_{i-1}^*) = -eta_hat r^{L+1-i} J_{f_{i+1}}^{-1}..J_{f_L}^{-1} e_L
    to first order: for tanh the relative error falls like eta_hat (log-slope 1 +- 0.1)."""
    rng = np.random.default_rng(2)
    W = mixture(rng, [4, 4, 4, 4]).W
    x = data(rng, mixture(rng, [4, 4, 4, 4]), x_std=0.8, t_std=0.8)
    etas = np.array([3e-2, 1e-2, 3e-3, 1e-3])
    errs = []
    for eta in etas:
        c = DendriticMixture(W=W, Q=(), s=tuple(parse("tanh") for _ in W), mu=0.2, eta_hat=float(eta))
        state = rest(c, x)
        fo = c.first_order_errors(state, x)
        errs.append([float(fo[f"eq_6_15_relative_error_h{i}"]) for i in (1, 2)])
    errs = np.array(errs)
    for k in range(2):
        assert abs(slope(etas, errs[:, k]) - 1.0) <= 0.1, errs[:, k]
    assert np.all(errs[-1] < 1e-2)  # and it is small


def test_eq_6_15_scales_like_r_to_the_L_plus_1_minus_i():
    """|h_i^* - f_i(h_{i-1}^*)| ~ (mu/(1-mu))^{L+1-i} (6.15): fitted log-slope against
    mu/(1-mu) is L+1-i within 0.1 for tanh (L = 3: slopes 3, 2, 1)."""
    rng = np.random.default_rng(3)
    W = mixture(rng, [4, 4, 4, 4]).W
    x = data(rng, mixture(rng, [4, 4, 4, 4]))
    mus = np.array([0.02, 0.05, 0.1, 0.2, 0.3])
    norms = []
    for mu in mus:
        c = DendriticMixture(W=W, Q=(), s=tuple(parse("tanh") for _ in W), mu=float(mu), eta_hat=0.05)
        state = rest(c, x)
        norms.append([np.linalg.norm(v) for v in d(c, state, x)])
    norms = np.array(norms)
    r = mus / (1 - mus)
    L = 3
    for i in range(1, L + 1):
        assert abs(slope(r, norms[:, i - 1]) - (L + 1 - i)) <= 0.1, (i, slope(r, norms[:, i - 1]))


# ---- learned inverses -----------------------------------------------------------------
@pytest.mark.parametrize("s", ["linear", "tanh"])
def test_recursion_is_exact_for_affine_apical_transfer(s):
    """d_i = r rho_i + r J_{g_i} d_{i+1}, d_L = -r eta_hat e_L:
    exact when t_i is linear (g_i affine), whatever s_i; here with unequal sizes, where no
    exact inverse exists."""
    rng = np.random.default_rng(4)
    c = mixture(rng, [6, 5, 4, 3], s=s, inverses="learned", q_noise=0.2, mu=0.25, eta_hat=0.3)
    x = data(rng, c)
    state = rest(c, x)
    dd = d(c, state, x)
    pred = [np.asarray(p) for p in c.recursion_predictions(state, x)]
    for i in range(3):
        assert np.max(np.abs(dd[i] - pred[i])) <= 1e-10 * max(1.0, np.max(np.abs(dd[i])))
    assert np.linalg.norm(dd[0]) > 1e-3  # reconstruction errors make the signal large


def test_recursion_is_first_order_for_tanh_apical_transfer():
    """With t_i = tanh the recursion's remainder is second order in the displacements:
    r |d_{i+1}|^2 with d ~ r, so |d_i - prediction| scales like r^3 (log-slope 3 +- 0.15)."""
    rng = np.random.default_rng(5)
    base = mixture(rng, [4, 4, 4, 4], inverses="learned", t="tanh", q_noise=0.3)
    x = data(rng, base, x_std=0.8)
    mus = np.array([0.005, 0.01, 0.02, 0.04])
    res = []
    for mu in mus:
        c = DendriticMixture(W=base.W, Q=base.Q, s=base.s, t=base.t, mu=float(mu), eta_hat=0.2, inverses="learned")
        state = rest(c, x)
        dd = d(c, state, x)
        pred = [np.asarray(p) for p in c.recursion_predictions(state, x)]
        res.append([np.linalg.norm(dd[i] - pred[i]) for i in range(2)])
        assert np.all([np.linalg.norm(dd[i] - pred[i]) < 1e-2 * np.linalg.norm(dd[i]) for i in range(2)])
    res = np.array(res)
    r = mus / (1 - mus)
    for i in range(2):
        assert abs(slope(r, res[:, i]) - 3.0) <= 0.15, (i, res[:, i])


def test_two_phase_signal_beats_single_phase_by_the_predicted_ratio():
    """Linear s and t, L = 2, A = Q_1 W_2 - I (reconstruction operator), r = mu/(1-mu).
    Ideal signal (last term of 6.22): sigma = eta_hat r^2 Q_1 e_L. The recursion gives
      single phase (6.17):  -d_1^l           = sigma - r A h_1^l,
      two phases   (6.35):  d_1^f - d_1^l    = sigma - r A dh,   dh = h_1^l - h_1^f = -(I - rA)^{-1} sigma,
    so the two-phase error is smaller by R = |A h_1^l| / |A (I - rA)^{-1} sigma|
    ~ |A h_1| / (eta_hat r^2 |A Q_1 e_L|) to leading order. The two-phase circuit (buffers
    d_free held through the learning phase) reproduces R to 1e-6, and R > 100 here."""
    rng = np.random.default_rng(6)
    mu, eta = 0.1, 0.05
    kw = dict(s="linear", inverses="learned", q_noise=0.1, mu=mu, eta_hat=eta)
    single = mixture(np.random.default_rng(6), [4, 4, 4], **kw)
    two = mixture(np.random.default_rng(6), [4, 4, 4], phases=(100.0, 100.0), **kw)
    x = data(rng, single, x_std=1.0)
    r = mu / (1 - mu)
    tr = nd.simulate(two, x, t1=199.0, rtol=1e-11, atol=1e-13, steady_state=False)  # end of the learning phase
    d1_free, d1_learn = tr.final["d_free_1"], np.asarray(two.displacements(tr.final, x)[0])
    state = rest(single, x)
    h1 = state["h_1"]
    Q, W2 = np.asarray(single.Q[0]), np.asarray(single.W[1])
    A = Q @ W2 - np.eye(4)
    e = np.asarray(single.output_error(x))
    sigma = eta * r**2 * Q @ e
    err_single = np.linalg.norm(-d1_learn - sigma)
    err_two = np.linalg.norm(d1_free - d1_learn - sigma)
    measured = err_single / err_two
    exact = np.linalg.norm(A @ h1) / np.linalg.norm(A @ np.linalg.solve(np.eye(4) - r * A, sigma))
    leading = np.linalg.norm(A @ h1) / (eta * r**2 * np.linalg.norm(A @ Q @ e))
    assert abs(measured / exact - 1) <= 1e-6, (measured, exact)
    assert abs(leading / exact - 1) <= 2 * r  # the leading-order ratio, to O(r)
    assert measured > 100
    # the buffer holds the free-phase displacement: the eta_hat = 0 fixed point
    free = rest(mixture(np.random.default_rng(6), [4, 4, 4], **{**kw, "eta_hat": 0.0}), x)
    assert np.max(np.abs(d1_free - np.asarray(single.displacements(free, x)[0]))) <= 1e-8


# ---- Jacobian (6.40) ------------------------------------------------------------------
CASES = [("exact", None), ("learned", None), ("exact", (20.0, 20.0)), ("learned", (20.0, 20.0))]


@pytest.mark.parametrize("inverses, phases", CASES)
def test_autodiff_jacobian_equals_block_tridiagonal_matrix(inverses, phases):
    """At the fixed point the Jacobian is (6.40): -I diagonal (-(1-mu) I for the teaching
    layer), (1-mu) J_{f_i} below, mu J_{g_i} above (J_{f_{i+1}}^{-1} for exact inverses),
    over tau; with two phases in both the free (t=0) and learning (t=30) phase."""
    rng = np.random.default_rng(7)
    c = mixture(rng, [3, 4, 4, 4], inverses=inverses, phases=phases, tau=2.0, mu=0.3)
    x = data(rng, c)
    state = rest(c, x)
    for t in (0.0, 30.0) if phases else (0.0,):
        J = np.asarray(jacobian(c, state, x, t=t))
        B = np.asarray(c.block_matrix(state, x, t=t))
        assert np.max(np.abs(J - B)) <= 1e-10
    if inverses == "exact":
        assert np.max(np.real(np.linalg.eigvals(np.asarray(c.block_matrix(state, x))))) < 0  # stable (section 6.7)


def test_stability_command_reports_the_jacobian_at_the_fixed_point(tmp_path):
    from pathlib import Path

    from neurodyn.io.errors import ModelError
    from neurodyn.io.model import load_model
    from neurodyn.io.stability import run_stability

    model = load_model(Path(__file__).parents[1] / "models" / "dendritic_mixture.toml")
    report = run_stability(model, tmp_path / "st")
    assert report["before"]["matrix"] == "jacobian_at_fixed_point"
    assert report["before"]["spectral_abscissa"] < 0 and report["fixed_point_before"]["analytic_vs_autodiff_jacobian"] <= 1e-12
    with pytest.raises(ModelError, match="no state-independent block system matrix"):
        run_stability(model, tmp_path / "st2", optimize=["W1"])


# ---- plasticity -----------------------------------------------------------------------
def _hand(c, state, x):
    """numpy versions of f_i, d_i, D_{s_i} and g_i for the tiny networks below."""
    W = [np.asarray(w) for w in c.W]
    h = [np.asarray(x["x"])] + [np.asarray(state[f"h_{i}"]) for i in (1, 2)]
    a = [None] + [W[i - 1] @ h[i - 1] for i in (1, 2)]
    D = [None] + [1 - np.tanh(a[i]) ** 2 for i in (1, 2)]
    dd = [None] + [h[i] - np.tanh(a[i]) for i in (1, 2)]
    return W, h, D, dd


def test_single_phase_rules_against_hand_computed_formulas():
    """(6.17) dW_i = -eta_i D_{s_i} (f_i(h_{i-1}) - h_i) h_{i-1}^T and
    (6.26) dQ_1 = -eta_inv (Q_1 t(h_2) - h_1) t(h_2)^T - eta_inv lambda Q_1, at a random state."""
    rng = np.random.default_rng(8)
    c = mixture(rng, [2, 2, 2], inverses="learned", t="tanh", eta=(0.3, 0.7), eta_inv=(0.2,), decay=0.05)
    x = data(rng, c)
    state = {"h_1": jnp.asarray(rng.normal(size=2) * 0.5), "h_2": jnp.asarray(rng.normal(size=2) * 0.5)}
    out = {k: np.asarray(v) for k, v in c.plasticity(0.0, state, x).items()}
    assert set(out) == {"W1", "W2", "Q1"}
    W, h, D, dd = _hand(c, state, x)
    for i, eta in ((1, 0.3), (2, 0.7)):
        expected = -eta * np.outer(D[i] * (-dd[i]), h[i - 1])
        assert np.max(np.abs(out[f"W{i}"] - expected)) <= 1e-14
    Q = np.asarray(c.Q[0])
    th = np.tanh(h[2])
    expected = -0.2 * np.outer(Q @ th - h[1], th) - 0.2 * 0.05 * Q
    assert np.max(np.abs(out["Q1"] - expected)) <= 1e-14


def test_two_phase_rules_are_gated_by_the_phase():
    """Free phase (t < 10): W frozen, Q by (6.37) on the live rates; learning phase: Q frozen,
    dW_i = -eta_i D^l_{s_i} (d_free_i - d_i^l) h_{i-1}^T (6.35 read with d_i)."""
    rng = np.random.default_rng(9)
    c = mixture(rng, [2, 2, 2], inverses="learned", t="linear", phases=(10.0, 10.0), eta=(0.3, 0.7), eta_inv=(0.2,), decay=0.1)
    x = data(rng, c)
    state = {k: jnp.asarray(rng.normal(size=2) * 0.4) for k in ("h_1", "h_2", "d_free_1", "d_free_2")}
    W, h, D, dd = _hand(c, state, x)
    Q = np.asarray(c.Q[0])
    free = {k: np.asarray(v) for k, v in c.plasticity(5.0, state, x).items()}
    learn = {k: np.asarray(v) for k, v in c.plasticity(15.0, state, x).items()}
    assert np.all(free["W1"] == 0) and np.all(free["W2"] == 0) and np.all(learn["Q1"] == 0)
    expected_q = -0.2 * np.outer(Q @ h[2] - h[1], h[2]) - 0.2 * 0.1 * Q
    assert np.max(np.abs(free["Q1"] - expected_q)) <= 1e-14
    for i, eta in ((1, 0.3), (2, 0.7)):
        expected = -eta * np.outer(D[i] * (np.asarray(state[f"d_free_{i}"]) - dd[i]), h[i - 1])
        assert np.max(np.abs(learn[f"W{i}"] - expected)) <= 1e-14
    assert c.jump_times() == (10.0, 20.0) and float(c.phase(25.0)) == 0.0  # free again after the cycle


# ---- bad input --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sizes, s, match",
    [([4, 4, 3], "tanh", "equal sizes"), ([4, 4, 4], "relu", "invertible s_2"), ([4, 4, 4], "tanh", None)],
)
def test_exact_inverses_need_equal_sizes_and_invertible_s(sizes, s, match):
    W = tuple(jnp.eye(sizes[i], sizes[i - 1]) for i in range(1, len(sizes)))
    ss = tuple(parse(s) for _ in W)
    if match is None:
        assert DendriticMixture(W=W, Q=(), s=ss).L == 2
    else:
        with pytest.raises(ValueError, match=match):
            DendriticMixture(W=W, Q=(), s=ss)


def test_model_file_errors(tmp_path):
    from neurodyn.io.errors import ModelError
    from neurodyn.io.model import load_model

    def write(circuit, arrays='W1 = { init = "orthogonal" }\nW2 = { init = "orthogonal" }\nx = { values = [0.1, 0.2] }\ntarget = { values = [0.0, 0.1] }'):
        p = tmp_path / "m.toml"
        p.write_text(f'[circuit]\nkind = "dendritic_mixture"\n{circuit}\n[arrays]\n{arrays}\n')
        return p

    assert load_model(write("sizes = [2, 2, 2]")).circuit.L == 2
    with pytest.raises(ModelError, match="mu"):
        load_model(write("sizes = [2, 2, 2]\nmu = 0.6"))
    with pytest.raises(ModelError, match="equal sizes"):
        load_model(write("sizes = [2, 2, 3]"))
    with pytest.raises(ModelError, match="singular"):
        load_model(write("sizes = [2, 2, 2]", 'W1 = { init = "orthogonal" }\nW2 = { values = [[1.0, 1.0], [1.0, 1.0]] }\nx = { values = [0.1, 0.2] }\ntarget = { values = [0.0, 0.1] }'))
