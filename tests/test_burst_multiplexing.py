"""Burst-multiplexing network (thesis section 6.9, eqs 6.43-6.59):
event rates are the forward pass in both phases, the phase difference of the burst
probabilities is (6.59) (exact for a linear apical transfer, O(eta_hat^2) otherwise), the
analytic Jacobian, the local rules against a hand computation, phase switches on the
jump times, and the forward rule learning with plastic W."""

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
from neurodyn.circuits import BurstMultiplexing
from neurodyn.circuits.burst_multiplexing import phase_schedule, two_phases
from neurodyn.core import schedules
from neurodyn.core.circuit import flatten, jacobian, unflatten
from neurodyn.core.equilibrium import checks
from neurodyn.core.nonlinearities import parse
from neurodyn.core.plasticity import Plastic

from helpers import rel

SIZES = [5, 4, 4, 3]  # L = 3: two apical layers, so (6.59) has a product of two J_g


def burst(rng, sizes=SIZES, *, s="tanh", apical="tanh", phase="learning", eta_hat=0.1, **kw):
    """W_i ~ N(0, 1/d_{i-1}), Q_i ~ N(0, 1/d_{i+1}) (a poor inverse: large reconstruction errors)."""
    L = len(sizes) - 1
    W = tuple(jnp.asarray(rng.normal(size=(sizes[i], sizes[i - 1])) / np.sqrt(sizes[i - 1])) for i in range(1, L + 1))
    Q = tuple(jnp.asarray(rng.normal(size=(sizes[i], sizes[i + 1])) / np.sqrt(sizes[i + 1])) for i in range(1, L))
    ph = phase if isinstance(phase, schedules.Schedule) else phase_schedule(phase)
    return BurstMultiplexing(
        W=W, Q=Q, s=tuple(parse(s) for _ in W), apical=tuple(parse(apical) for _ in Q), phase=ph, eta_hat=eta_hat, **kw
    )


def data(rng, sizes=SIZES, batch=None):
    shape = (batch,) if batch else ()
    return {"x": jnp.asarray(rng.normal(size=shape + (sizes[0],))), "target": jnp.asarray(0.5 * rng.normal(size=shape + (sizes[-1],)))}


def cat(d, L):
    return np.concatenate([np.asarray(d[i]) for i in range(1, L + 1)])


def residual_6_59(c, x):
    """``||(hhat^f - hhat^l) - (6.59)||`` and ``||(6.59)||`` at the exact fixed points."""
    state = c.closed_form(x)
    hhat_l = c.bursts(1.0, state, x)
    hhat_f = c.free_bursts(x)
    sig = c.learning_signal(hhat_f, hhat_l)
    pred = c.predicted_signal(hhat_f, c.output_error(x))
    return np.linalg.norm(cat(sig, c.L) - cat(pred, c.L)), np.linalg.norm(cat(pred, c.L))


# ---- event rates: the forward pass, in both phases (6.49) ----------------------------
@pytest.mark.parametrize("phase", ["free", "learning"])
def test_fixed_point_event_rates_are_the_forward_pass(phase):
    rng = np.random.default_rng(0)
    c = burst(rng, phase=phase)
    x = data(rng, batch=4)
    eq = nd.fixed_point(c, x, method="equilibrium")  # the ODE route: models/ and the phase tests
    assert eq.all_converged and np.all(eq.stable), eq.reason
    fwd = jax.vmap(c.forward)(x["x"])
    for i in range(1, c.L + 1):
        assert rel(np.tanh(eq.state[f"ab_{i}"]), fwd[i]) <= 1e-10
    report = checks(c, eq.state, x, tol=1e-10)
    assert report["event_rate_relative_error"]["passed"], report
    assert report["closed_form_relative_error"]["value"] <= 1e-10  # (6.47)-(6.50), (6.54)
    # the teaching signal reaches the burst probabilities only in the learning phase
    hhat_f = jax.vmap(c.free_bursts)(x)
    moved = rel(np.tanh(eq.state["aa_1"]), hhat_f[1])
    assert (moved > 1e-3) if phase == "learning" else (moved <= 1e-10)


def test_event_rates_identical_across_a_phase_switch():
    """One trajectory through free (0-40) and learning (40-80): h_i(t) at the end of each
    phase is the forward pass; the phases differ only in the burst probabilities."""
    rng = np.random.default_rng(1)
    c = burst(rng, phase={"type": "phases", "durations": [40.0, 40.0], "values": [0.0, 1.0]})
    x = data(rng, batch=3)
    tr = nd.simulate(c, x, t1=80.0, saveat=[40.0, 80.0], steady_state=False, rtol=1e-11, atol=1e-13)
    assert tr.reason == "t1_reached" and tr.jump_times == (40.0,)
    fwd = jax.vmap(c.forward)(x["x"])
    for k in (0, 1):
        for i in range(1, c.L + 1):
            assert rel(np.tanh(tr.ys[f"ab_{i}"][k]), fwd[i]) <= 1e-10
    assert rel(np.tanh(tr.ys["aa_1"][1]), np.tanh(tr.ys["aa_1"][0])) > 1e-3


# ---- (6.59) --------------------------------------------------------------------------
def test_6_59_exact_for_linear_apical_transfer():
    """Linear t_i: g_i is linear, so hhat^f - hhat^l = eta_hat Q_i ... Q_{L-1} e_L exactly."""
    rng = np.random.default_rng(2)
    c = burst(rng, apical="linear", eta_hat=0.3)
    x = data(rng, batch=4)
    eq = nd.fixed_point(c, x, method="equilibrium")
    assert eq.all_converged
    report = checks(c, eq.state, x, tol=1e-10)
    assert report["signal_6_59_relative_error"]["value"] <= 1e-10, report
    # the same through the two-phase dynamics: the buffer holds hhat^f during learning
    c2 = burst(np.random.default_rng(2), apical="linear", eta_hat=0.3,
               phase={"type": "phases", "durations": [40.0, 40.0], "values": [0.0, 1.0]})
    tr = nd.simulate(c2, x, t1=80.0, steady_state=False, rtol=1e-11, atol=1e-13)
    report2 = checks(c2, tr.final, x, tol=1e-10)
    assert report2["signal_6_59_relative_error"]["value"] <= 1e-10, report2


def test_6_59_residual_is_second_order_in_eta_hat_for_tanh_apical():
    """Nonlinear t_i: hhat^l_i = G_i(h_L - eta_hat e_L) with G_i = g_i o ... o g_{L-1} and
    hhat^f_i = G_i(h_L), so hhat^f_i - hhat^l_i = eta_hat J_{G_i}(h_L) e_L + O(eta_hat^2),
    and J_{G_i}(h_L) = J_{g_i}(hhat^f_{i+1}) ... J_{g_{L-1}}(h_L) (chain rule): the residual
    of (6.59) is O(eta_hat^2), relative to the signal O(eta_hat). Fitted log-slopes: 2 and 1
    within 0.05. With the Jacobians at h^* instead of hhat^f it does not vanish."""
    rng = np.random.default_rng(3)
    base = burst(rng, apical="tanh")
    x = data(rng)
    etas = np.geomspace(1e-4, 1e-2, 5)
    res, sig = np.array([residual_6_59(BurstMultiplexing(**{**vars_of(base), "eta_hat": float(e)}), x) for e in etas]).T
    slope_abs = np.polyfit(np.log(etas), np.log(res), 1)[0]
    slope_rel = np.polyfit(np.log(etas), np.log(res / sig), 1)[0]
    assert abs(slope_abs - 2.0) <= 0.05, slope_abs
    assert abs(slope_rel - 1.0) <= 0.05, slope_rel
    assert res[0] / sig[0] <= 1e-3  # 4.4e-5 measured at eta_hat = 1e-4
    # Jacobians at the event rates h^* (not at hhat^f): an O(1) relative error remains
    c = BurstMultiplexing(**{**vars_of(base), "eta_hat": 1e-4})
    h = c.forward(x["x"])
    at_h = c.predicted_signal({i: h[i] for i in range(1, c.L + 1)}, c.output_error(x))
    state = c.closed_form(x)
    s = c.learning_signal(c.free_bursts(x), c.bursts(1.0, state, x))
    assert rel(cat(s, c.L), cat(at_h, c.L)) > 1e-2


def vars_of(c):
    return {k: getattr(c, k) for k in ("W", "Q", "s", "apical", "phase", "eta_hat", "eta", "eta_inv", "decay")}


# ---- Jacobian -----------------------------------------------------------------------
@pytest.mark.parametrize("phase", ["free", "learning", "two"])
def test_jacobian_matches_block_matrix_and_spectrum_is_minus_one(phase):
    rng = np.random.default_rng(4)
    c = burst(rng, phase=phase)
    x = data(rng)
    for t in (10.0, 70.0):  # free and learning phase of "two" (50, 50)
        state = {k: jnp.asarray(rng.normal(size=s)) for k, s in c.state_shapes().items()}
        J = np.asarray(jax.jit(lambda s: jacobian(c, s, x, t=t))(state))
        assert np.max(np.abs(J - np.asarray(jax.jit(lambda s: c.block_matrix(s, x, t=t))(state)))) <= 1e-12
        assert np.array_equal(J, np.tril(J))  # lower triangular in the state order
        lam = float(c.phase(t))
        expected = np.concatenate([np.full(s, -(1.0 - lam) if k.startswith("hhatf_") else -1.0) for k, s in
                                   ((k, s[0]) for k, s in c.state_shapes().items())])
        assert np.array_equal(np.asarray(c.eigenvalues(state, x, t=t)).real, expected)
        assert np.array_equal(np.sort(np.linalg.eigvals(J).real), np.sort(expected))  # exact: triangular


# ---- plasticity ---------------------------------------------------------------------
@pytest.mark.parametrize("lam", [0.0, 1.0, 0.3])
def test_plasticity_against_hand_computation(lam):
    """(6.58) gated by lambda and the apical rule gated by 1 - lambda, written out entry by
    entry (L = 2)."""
    rng = np.random.default_rng(5)
    sizes = [3, 4, 2]
    phase = schedules.Ramp(t_on=0.0, duration=1.0, start=0.0, end=1.0)  # lambda(t) in [0, 1], buffered
    c = burst(rng, sizes, apical="tanh", phase=phase, eta_hat=0.2, eta=0.7, eta_inv=1.3, decay=0.05)
    x = data(rng, sizes)
    t = float(np.arccos(1.0 - 2.0 * lam) / np.pi)  # the raised-cosine ramp reaches lam at t
    assert abs(float(c.phase(t)) - lam) <= 1e-12
    st = {k: jnp.asarray(rng.normal(size=s)) for k, s in c.state_shapes().items()}
    rule = c.plasticity(t, st, x)
    W1, W2, Q1 = (np.asarray(a) for a in (c.W[0], c.W[1], c.Q[0]))
    xv, tv = np.asarray(x["x"]), np.asarray(x["target"])
    ab1, ab2, aa1 = (np.asarray(st[k]) for k in ("ab_1", "ab_2", "aa_1"))
    hf1, hf2 = np.asarray(st["hhatf_1"]), np.asarray(st["hhatf_2"])
    h1, h2 = np.tanh(ab1), np.tanh(ab2)
    eL = np.tanh(W2 @ np.tanh(W1 @ xv)) - tv
    hhat2 = (1 - lam) * h2 + lam * hf2 - lam * 0.2 * eL  # (6.54), h_L^* held in hhatf_L
    hhat1 = np.tanh(aa1)
    dW1 = np.zeros((4, 3))
    for j in range(4):
        for k in range(3):
            dW1[j, k] = -0.7 * lam * (1 - np.tanh(ab1[j]) ** 2) * (hf1[j] - hhat1[j]) * xv[k]
    dW2 = np.zeros((2, 4))
    for j in range(2):
        for k in range(4):
            dW2[j, k] = -0.7 * lam * (1 - np.tanh(ab2[j]) ** 2) * (hf2[j] - hhat2[j]) * h1[k]
    dQ1 = np.zeros((4, 2))
    for j in range(4):
        for k in range(2):
            dQ1[j, k] = -1.3 * (1 - lam) * ((1 - np.tanh(aa1[j]) ** 2) * (hhat1[j] - h1[j]) * hhat2[k] + 0.05 * Q1[j, k])
    for name, ref in (("W1", dW1), ("W2", dW2), ("Q1", dQ1)):
        got = np.asarray(rule[name])
        assert np.max(np.abs(got - ref)) <= 1e-14 * max(1.0, np.max(np.abs(ref))), name
    assert sorted(rule) == ["Q1", "W1", "W2"]


def test_forward_rule_needs_a_free_phase():
    """Without a phase schedule there is no free-phase buffer: only Q has a rule."""
    c = burst(np.random.default_rng(6), phase="learning")
    x = data(np.random.default_rng(6))
    assert sorted(c.plasticity(0.0, c.init_state(x), x)) == ["Q1", "Q2"]
    with pytest.raises(ValueError, match="no local rule for 'W1'"):
        Plastic(c, ["W1"], tau_w=10.0)


def test_plastic_apical_weights_learn_the_reconstruction_in_the_free_phase():
    """The Q rule descends 0.5 ||g_i(hhat_{i+1}) - h_i||^2 with g_i = t_i(Q_i .): in the free
    phase (hhat_L = h_L) the burst probabilities approach the event rates,
    ||hhat^f - h^*|| / ||h^*|| falls from O(1) (random Q) by more than 100x."""
    rng = np.random.default_rng(9)
    c = burst(rng, apical="tanh", phase="free", eta_inv=1.0)
    x = data(rng)
    p = Plastic(c, ["Q1", "Q2"], tau_w=2.0)
    tr = nd.simulate(p, x, t1=200.0, steady_state=False, rtol=1e-8, atol=1e-10)
    h = c.forward(x["x"])

    def reconstruction(Q):
        cc = p.rebuild(Q)
        hf = cc.free_bursts(x)
        return rel(cat(hf, 2), cat({i: h[i] for i in (1, 2)}, 2))

    before = reconstruction({n: p.circuit.where(n)(p.circuit) for n in p.arrays})
    after = reconstruction({n: jnp.asarray(tr.final[n]) for n in p.arrays})
    assert before > 0.3 and after < before / 100, (before, after)


# ---- jump times ---------------------------------------------------------------------
def test_phase_switch_lands_on_the_jump_time():
    """A short free phase (3 time units, the buffers still moving) then learning: the
    buffer is held at exactly its value at the switch. Linear transfers make the free
    phase an affine ODE ``y' = A y + b`` whose solution at the switch is
    ``expm(3 A) y0 + A^{-1} (expm(3 A) - I) b``. The engine steps to the jump; a solver
    straddling it integrates a mixture of both phases into the held value."""
    from scipy.linalg import expm

    rng = np.random.default_rng(7)
    sched = two_phases(3.0, 20.0, cycles=2)
    assert sched.jump_times() == (3.0, 23.0, 26.0, 46.0)
    c = burst(rng, s="linear", apical="linear", phase=sched)
    assert c.jump_times() == sched.jump_times()
    x = data(rng)
    tr = nd.simulate(c, x, t1=20.0, saveat=[3.0, 10.0, 20.0], steady_state=False, rtol=1e-10, atol=1e-12)
    assert tr.jump_times == (3.0,)
    buffers = lambda ys: np.concatenate([np.asarray(ys[f"hhatf_{i}"]) for i in (1, 2, 3)])  # noqa: E731
    held = buffers({k: v[-1] for k, v in tr.ys.items()})
    at_switch = buffers({k: v[0] for k, v in tr.ys.items()})
    assert np.max(np.abs(held - at_switch)) <= 1e-14  # held exactly after the jump
    # the free-phase solution at t = 3 in closed form
    shapes = c.state_shapes()
    y0 = {k: jnp.zeros(s) for k, s in shapes.items()}
    A = np.asarray(jax.jit(lambda y: jacobian(c, y, x, t=0.0))(y0))
    b = np.asarray(jax.jit(lambda y: flatten(c.vector_field(0.0, y, x), shapes))(y0))
    E = expm(3.0 * A)
    y3 = unflatten(jnp.asarray(np.linalg.solve(A, (E - np.eye(len(b))) @ b)), shapes)
    free_buf = buffers(y3)
    err = np.max(np.abs(at_switch - free_buf))
    assert err <= 1e-10  # 2.9e-14 measured
    hhat_3 = np.concatenate([np.asarray(y3["aa_1"]), np.asarray(y3["aa_2"]), np.asarray(y3["ab_3"])])
    assert np.max(np.abs(free_buf - hhat_3)) > 1e-2  # the buffer was still moving at the switch
    # the same solve, not told of the jump: a step straddles t = 3 and the held value is off
    straddled = _straddling_buffer(c, x, 20.0)
    assert np.max(np.abs(straddled - free_buf)) > 100 * err, (np.max(np.abs(straddled - free_buf)), err)  # 1.2e-10


def _straddling_buffer(c, x, t1):
    term = dfx.ODETerm(lambda t, y, a: c.vector_field(t, y, a))
    ctrl = dfx.PIDController(rtol=1e-11, atol=1e-13, dtmax=0.7)  # no jump_ts
    sol = dfx.diffeqsolve(term, dfx.Tsit5(), 0.0, t1, 0.7, c.init_state(x), args=x, stepsize_controller=ctrl, max_steps=100000)
    return np.concatenate([np.asarray(sol.ys[f"hhatf_{i}"][-1]) for i in (1, 2, 3)])


# ---- learning with plastic W (6.58) -------------------------------------------------
class LiveTarget(BurstMultiplexing):
    """The reading rejected in the module docstring: ``h_L^*`` of (6.54) taken as the live
    ``h_L(t)`` also in the learning phase, so the target follows the output it teaches."""

    def bursts(self, lam, state, inputs, h_L=None):
        h_L = self.s[-1](state[f"ab_{self.L}"]) if h_L is None else h_L
        hhat = super().bursts(lam, state, inputs, h_L)
        hhat[self.L] = h_L - lam * self.eta_hat * self.output_error(inputs)
        return hhat


def _student(cls, cycles):
    rng = np.random.default_rng(8)
    sizes = [4, 4, 4, 2]
    W = (jnp.asarray(np.linalg.qr(rng.normal(size=(4, 4)))[0]), jnp.asarray(np.linalg.qr(rng.normal(size=(4, 4)))[0]),
         jnp.asarray(rng.normal(size=(2, 4)) / 2))
    # Q_i: the pseudo-inverse of W_{i+1} (an approximate inverse of f_{i+1} for small rates)
    Q = tuple(jnp.asarray(np.linalg.pinv(np.asarray(W[i]))) for i in (1, 2))
    c = cls(W=W, Q=Q, s=tuple(parse("tanh") for _ in W), apical=tuple(parse("linear") for _ in Q),
            phase=two_phases(20.0, 20.0, cycles=cycles), eta_hat=0.2, eta=1.0)
    x = {"x": jnp.asarray(rng.normal(size=sizes[0])), "target": jnp.asarray([0.5, -0.5])}
    return Plastic(c, ["W1", "W2", "W3"], tau_w=20.0), x


def _loss(p, weights, x):
    c = p.rebuild({n: jnp.asarray(weights[n]) for n in p.arrays})
    return 0.5 * float(np.sum((np.asarray(c.forward(x["x"])[-1]) - np.asarray(x["target"])) ** 2))


@pytest.mark.slow
def test_plastic_forward_weights_reduce_the_loss_and_freeze_in_free_phases():
    """Three cycles (free 20, learning 20), tau_w = 20, eta_hat = 0.2: the loss falls in every
    learning phase (measured 0.080 -> 0.021 -> 0.0057 -> 0.0016) and W is constant in the
    free phases. With the live h_L in the target the first learning phase overshoots and
    the loss rises (measured 0.080 -> 0.151)."""
    p, x = _student(BurstMultiplexing, 3)
    ends = [20.0, 40.0, 60.0, 80.0, 100.0, 120.0, 140.0]  # end of each phase
    tr = nd.simulate(p, x, t1=140.0, saveat=ends, steady_state=False, rtol=1e-9, atol=1e-11)
    assert tr.reason == "t1_reached" and tr.jump_times == tuple(ends[:-1])
    for k in (2, 4, 6):  # ends of the free phases 40-60, 80-100, 120-140
        for n in p.arrays:
            assert np.max(np.abs(tr.ys[n][k] - tr.ys[n][k - 1])) <= 1e-12
    initial = _loss(p, {n: p.circuit.where(n)(p.circuit) for n in p.arrays}, x)
    learned = [initial] + [_loss(p, {n: tr.ys[n][k] for n in p.arrays}, x) for k in (1, 3, 5)]
    assert all(b < 0.5 * a for a, b in zip(learned, learned[1:])), learned
    live, _ = _student(LiveTarget, 1)
    tr_live = nd.simulate(live, x, t1=41.0, saveat=[40.0], steady_state=False, rtol=1e-9, atol=1e-11)
    assert _loss(live, {n: tr_live.ys[n][0] for n in live.arrays}, x) > initial
