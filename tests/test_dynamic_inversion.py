"""Sequential dynamic inversion: steady states against the paper's closed forms
(supplement eq. 16, Algorithms 1-3 and 5), the Euler reference, and the S24 matrix."""

import equinox as eqx
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

import neurodyn as nd
from neurodyn.core.circuit import flatten
from neurodyn.core.stability import spectral_abscissa

from neurodyn.circuits import DynamicInversion
from neurodyn.core.nonlinearities import parse

from helpers import conditioned, di, expanding, inputs, orthogonal, rel, same_spectrum

SIZES = {"contracting": [20, 10], "equal": [15, 15], "expanding": [10, 20]}


# an expanding layer has no fixed point without a leak (W B is singular, supplement 7.2)
CASES = [(shape, leak) for shape in SIZES for leak in (0.0, 0.01, 0.1) if not (shape == "expanding" and leak == 0.0)]


@pytest.mark.parametrize("shape, leak", CASES)
def test_linear_steady_state_equals_ndi_closed_form(shape, leak):
    """Linear DI settles at B (W B - alpha I)^{-1} delta."""
    rng = np.random.default_rng(CASES.index((shape, leak)))
    d_in, d_out = SIZES[shape]
    W = jnp.asarray(conditioned(rng, d_out, d_in))
    c = DynamicInversion(W=(W,), B=(-W.T,), alpha=leak, g=(parse("linear"),))
    x = inputs(rng, c, batch=4, std=1.0)
    eq = nd.fixed_point(c, x, t1=5000.0)
    assert eq.all_converged and np.all(eq.stable), eq.reason
    delta = x["delta_out"]
    W, B = np.asarray(c.W[0]), np.asarray(c.B[0])
    expected = np.stack([B @ np.linalg.solve(W @ B - leak * np.eye(W.shape[0]), d) for d in np.asarray(delta)])
    assert rel(eq.state["delta_0"], expected) <= 1e-8
    # the push-through form (Algorithm 5 picks the smaller inverse) is the same matrix
    if leak > 0:
        push = np.stack([np.linalg.solve(B @ W - leak * np.eye(W.shape[1]), B @ d) for d in np.asarray(delta)])
        assert rel(eq.state["delta_0"], push) <= 1e-8
    if shape != "expanding" and leak == 0.0:
        assert rel(np.einsum("ij,bj->bi", W, eq.state["delta_0"]), delta) <= 1e-8  # exact readout


def test_ode_path_without_polish_reaches_the_accuracy_asked():
    """The steady-state test alone (no Newton) leaves an error ~ tolerance / |abscissa|."""
    rng = np.random.default_rng(1)
    c = di(rng, [20, 10], g="linear", leak=0.01)
    x = inputs(rng, c, batch=8, std=1.0)
    tr = nd.simulate(c, x, t1=500.0, rtol=1e-8, atol=1e-10)
    assert tr.reason == "steady_state" and tr.all_converged
    cf = jax.vmap(c.closed_form)(x)
    assert rel(tr.final["delta_0"], cf["delta_0"]) < 1e-6


@pytest.mark.parametrize("leak", [0.0, 0.01])
@pytest.mark.parametrize("g", ["tanh", "leaky_relu:0.2"])
def test_nonlinear_steady_state_satisfies_readout(g, leak):
    """W g(delta_0) = delta + alpha u at the fixed point (eq. 16 at rest)."""
    rng = np.random.default_rng(2)
    c = di(rng, [20, 10], g=g, leak=leak)
    x = inputs(rng, c, batch=6)
    eq = nd.fixed_point(c, x, t1=500.0)
    assert eq.all_converged, eq.reason
    for k in range(6):
        d0, u = eq.state["delta_0"][k], eq.state["u_1"][k]
        lhs = np.asarray(c.W[0]) @ np.asarray(c.g[0](d0))
        assert rel(lhs - leak * u, x["delta_out"][k]) <= 1e-8
    assert nd.core.equilibrium.checks(c, eq.state, x)["readout_relative_error"]["passed"]


def test_tanh_with_no_leak_is_the_explicit_inversion():
    """alpha = 0, equal widths: DI recovers g^{-1}(W^{-1} delta), the explicit inversion
    (supplement Fig. S1). delta is made from a known preimage so that the inverse exists."""
    rng = np.random.default_rng(3)
    Q = jnp.asarray(orthogonal(rng, 10))
    c = di(rng, [10, 10], g="tanh")
    c = type(c)(W=(Q,), B=(-Q.T,), alpha=0.0, g=c.g)
    z = 0.3 * rng.normal(size=(3, 10))
    delta = np.tanh(z) @ np.asarray(c.W[0]).T
    eq = nd.fixed_point(c, {"delta_out": jnp.asarray(delta)}, t1=500.0)
    assert eq.all_converged, eq.reason
    explicit = np.arctanh(np.linalg.solve(np.asarray(c.W[0]), delta.T).T)
    assert rel(explicit, z) <= 1e-10
    assert rel(eq.state["delta_0"], z) <= 1e-8


def _algorithm_1(W, B, alpha, g, delta, dt=0.5, steps=1000):
    """Supplement Algorithm 1 as printed: explicit Euler, delta first, then u."""
    d0, u = np.zeros(W.shape[1]), np.zeros(W.shape[0])
    for _ in range(steps):
        d0 = d0 + dt * (-d0 + B @ u)
        u = u + dt * (-alpha * u + W @ g(d0) - delta)
    return d0, u


def test_euler_algorithm_1_agrees_with_diffrax_where_it_converges():
    rng = np.random.default_rng(4)
    W = rng.uniform(-0.01, 0.01, (10, 200))
    c = di(rng, [200, 10], g="tanh", leak=0.01)
    c = type(c)(W=(jnp.asarray(W),), B=(jnp.asarray(-50 * W.T),), alpha=0.01, g=c.g)
    x = inputs(rng, c, batch=3)
    eq = nd.fixed_point(c, x, t1=500.0)
    for k in range(3):
        d0, u = _algorithm_1(W, -50 * W.T, 0.01, np.tanh, np.asarray(x["delta_out"][k]))
        # Euler has converged here (its own fixed point is the ODE's): the two agree
        assert np.linalg.norm(-d0 + (-50 * W.T) @ u) < 1e-12
        assert rel(eq.state["delta_0"][k], d0) <= 1e-8
        assert rel(eq.state["u_1"][k], u) <= 1e-8


def test_euler_with_dt_half_diverges_where_the_ode_does_not():
    """With W ~ U(-1, 1), B = -W^T the S24 eigenvalues reach |1 + dt lambda| > 1 at dt = 0.5:
    Algorithm 1 never settles (tanh bounds it to an oscillation) while the ODE does."""
    rng = np.random.default_rng(5)
    c = di(rng, [20, 10], g="tanh", leak=0.01)
    x = inputs(rng, c)
    W, B = np.asarray(c.W[0]), np.asarray(c.B[0])
    eig = np.linalg.eigvals(np.asarray(c.block_matrix(c.init_state(x), x)))
    assert np.max(np.abs(1 + 0.5 * eig)) > 1
    with np.errstate(all="ignore"):
        d0, _ = _algorithm_1(W, B, 0.01, np.tanh, np.asarray(x["delta_out"]))
    eq = nd.fixed_point(c, x, t1=500.0)
    assert eq.all_converged
    assert not np.all(np.isfinite(d0)) or rel(d0, eq.state["delta_0"]) > 0.1


@pytest.mark.parametrize("controller", ["nonlinear", "linearized"])
def test_stacked_layers_chain_the_targets(controller):
    """Algorithm 3 generalised: layer l-1 inverts the live delta_{l-1} (times s'(a) when linearized)."""
    rng = np.random.default_rng(6)
    c = di(rng, [20, 15, 10, 5], g="tanh", leak=0.01, controller=controller, w=0.5)
    x = inputs(rng, c, batch=3)
    eq = nd.fixed_point(c, x, t1=2000.0)
    assert eq.all_converged, eq.reason
    for l in range(1, 4):
        d_prev, u = eq.state[f"delta_{l - 1}"], eq.state[f"u_{l}"]
        if l == 3:
            target = np.asarray(x["delta_out"])
        else:
            target = eq.state[f"delta_{l}"]
            if controller == "linearized":
                target = target * np.asarray(c.g[l].deriv(x[f"a_{l}"]))
        read = d_prev if controller == "linearized" else np.tanh(d_prev)
        lhs = np.einsum("ij,bj->bi", np.asarray(c.W[l - 1]), read) - 0.01 * u
        assert rel(lhs, target) <= 1e-8
    if controller == "linearized":  # linear dynamics: closed form layer by layer
        cf = jax.vmap(c.closed_form)(x)
        for k, v in cf.items():
            assert rel(eq.state[k], v) <= 1e-8


@pytest.mark.parametrize("controller", ["nonlinear", "linearized"])
def test_jacobian_equals_analytic_block_matrix(controller):
    """jacfwd of the vector field = S24 blocks (with g' at the state) plus the layer coupling."""
    rng = np.random.default_rng(7)
    c = di(rng, [6, 5, 7, 3], g="tanh", leak=0.03, controller=controller)
    x = inputs(rng, c)
    state = {k: jnp.asarray(rng.normal(size=s)) for k, s in c.state_shapes().items()}
    J = nd.jacobian(c, state, x)
    assert np.max(np.abs(J - c.block_matrix(state, x))) <= 1e-12
    # the structured (Schur-complement) spectrum equals the dense one
    assert same_spectrum(np.linalg.eigvals(np.asarray(J)), c.eigenvalues(state, x))


def test_one_layer_block_matrix_is_s24():
    rng = np.random.default_rng(8)
    c = di(rng, [8, 4], g="linear", leak=0.05)
    x = inputs(rng, c)
    W, B = np.asarray(c.W[0]), np.asarray(c.B[0])
    s24 = np.block([[-np.eye(8), B], [W, -0.05 * np.eye(4)]])
    assert np.array_equal(np.asarray(c.block_matrix(c.init_state(x), x)), s24)


def test_expanding_architecture_s1_s2():
    """S1-S2: linear steady state (B W + alpha I)^{-1} B delta; Jacobian = analytic; tanh settles."""
    rng = np.random.default_rng(9)
    c = expanding(rng, [10, 20], g="linear", leak=0.01)
    x = inputs(rng, c, batch=4, std=1.0)
    eq = nd.fixed_point(c, x, t1=1000.0)
    W, B = np.asarray(c.W), np.asarray(c.B)
    expected = np.stack([np.linalg.solve(B @ W + 0.01 * np.eye(10), B @ d) for d in np.asarray(x["delta_out"])])
    assert rel(eq.state["delta_0"], expected) <= 1e-8
    assert rel(eq.state["dtilde_1"], expected @ W.T) <= 1e-8
    ct = expanding(rng, [10, 20], g="tanh", leak=0.01)
    state = {k: jnp.asarray(rng.normal(size=s)) for k, s in ct.state_shapes().items()}
    J = nd.jacobian(ct, state, {"delta_out": x["delta_out"][0]})
    assert np.max(np.abs(J - ct.block_matrix(state, {}))) <= 1e-12
    assert same_spectrum(np.linalg.eigvals(np.asarray(J)), ct.eigenvalues(state, {}))
    assert nd.fixed_point(ct, x, t1=1000.0).all_converged


def test_batched_and_per_sample_runs_agree():
    rng = np.random.default_rng(10)
    c = di(rng, [12, 6], g="tanh", leak=0.01)
    x = inputs(rng, c, batch=5)
    batched = nd.fixed_point(c, x, t1=500.0)
    for k in range(5):
        single = nd.fixed_point(c, {"delta_out": x["delta_out"][k]}, t1=500.0)
        assert single.state["delta_0"].shape == (12,)
        assert rel(single.state["delta_0"], batched.state["delta_0"][k]) <= 1e-10
    tr = nd.simulate(c, x, t1=500.0, saveat=11)
    assert tr.ys["delta_0"].shape[1:] == (5, 12) and tr.ts.shape[0] == tr.ys["delta_0"].shape[0]


def test_equilibrium_path_agrees_with_ode_path_and_is_verified_stable():
    rng = np.random.default_rng(11)
    W = rng.uniform(-0.01, 0.01, (10, 300))
    c = di(rng, [300, 10], g="tanh", leak=0.01)
    c = type(c)(W=(jnp.asarray(W),), B=(jnp.asarray(-50 * W.T),), alpha=0.01, g=c.g)
    x = inputs(rng, c, batch=16)
    a = nd.fixed_point(c, x, method="equilibrium")
    b = nd.fixed_point(c, x, method="ode", t1=500.0)
    assert a.all_converged and np.all(a.stable) and b.all_converged
    assert rel(a.state["delta_0"], b.state["delta_0"]) <= 1e-10
    # the structured abscissa is the dense Jacobian's
    s0 = {k: jnp.asarray(v[0]) for k, v in a.state.items()}
    dense = spectral_abscissa(np.linalg.eigvals(np.asarray(nd.jacobian(c, s0, {"delta_out": x["delta_out"][0]}))))
    assert abs(float(dense) - a.spectral_abscissa[0]) <= 1e-9


@pytest.mark.parametrize(
    "controller, g",
    [pytest.param("linearized", "tanh", marks=pytest.mark.slow), ("nonlinear", "tanh"), ("nonlinear", "linear")],  # slow: 14 s; .ci/run runs it
)
def test_layer_by_layer_newton_equals_the_joint_newton(controller, g):
    """The reduced equation is block-triangular (u_l sees only u_l and u_{l+1}): solving the
    loops from the top down, with one shared factorisation per loop where W_l B_l - alpha I
    is the Jacobian, lands on the joint Newton's fixed point, for contracting and expanding
    layers alike."""
    rng = np.random.default_rng(14)
    c = di(rng, [7, 9, 4, 6, 3], g=g, leak=0.05, controller=controller, w=0.6)
    blocks = c.reduced_blocks()
    assert [(b.start, b.stop) for b in blocks] == [(19, 22), (13, 19), (9, 13), (0, 9)]
    assert all(b.shared_jacobian == (controller == "linearized" or g == "linear") for b in blocks)
    x = inputs(rng, c, batch=6)
    one, z = {k: v[0] for k, v in x.items()}, jnp.asarray(rng.normal(size=sum(c.sizes[1:])))
    for b in blocks:
        # a shared block declares its one Jacobian (W_l B_l - alpha I), a nonlinear one its slopes
        assert b.jacobian is not None and (b.jacobian.gain is None) == b.shared_jacobian
        if b.shared_jacobian:
            lo, hi = b.start, b.stop
            auto = jax.jacfwd(lambda zk: c.reduced_residual(z.at[lo:hi].set(zk), one)[lo:hi])(z[lo:hi])
            np.testing.assert_allclose(np.asarray(b.jacobian.constant()), np.asarray(auto), rtol=1e-12, atol=1e-14)

    class Joint(type(c)):
        def reduced_blocks(self):
            return None

    joint = Joint(W=c.W, B=c.B, alpha=c.alpha, g=c.g, controller=controller)
    a = nd.fixed_point(c, x, method="equilibrium")
    b = nd.fixed_point(joint, x, method="equilibrium")
    assert a.all_converged and b.all_converged
    for k in a.state:
        assert rel(a.state[k], b.state[k]) <= 1e-10
    closed = c.closed_form({k: v[0] for k, v in x.items()})
    if closed is not None:
        assert max(rel(a.state[k][0], closed[k]) for k in closed) <= 1e-10


@pytest.mark.slow  # 9 s; .ci/run runs it after the default suite
def test_declared_loop_jacobians_are_the_reduced_residuals_jacobians():
    """Each nonlinear layer declares its reduced Jacobian as W_l diag(g'(B_l u_l)) B_l - alpha I
    (a LoopJacobian, from which the engine builds the batch's Jacobians in one product): it
    equals autodiff of the residual in the block's own unknowns at a random point, for
    contracting, equal and expanding layers; and the loop products behind the structured
    eigenvalues match the dense Jacobian's spectrum there."""
    rng = np.random.default_rng(21)
    c = di(rng, [9, 6, 6, 8, 3], g="tanh", leak=0.05, w=0.6)
    x = {k: v[0] for k, v in inputs(rng, c, batch=1).items()}
    z = jnp.asarray(rng.normal(size=sum(c.sizes[1:])))
    for block in c.reduced_blocks():
        lo, hi, jac = block.start, block.stop, block.jacobian
        assert jac is not None and not block.shared_jacobian
        auto = jax.jacfwd(lambda zk: c.reduced_residual(z.at[lo:hi].set(zk), x)[lo:hi])(z[lo:hi])
        declared = jac.left @ jnp.diag(jac.gain(z, x)) @ jac.right + jac.shift * jnp.eye(hi - lo)
        np.testing.assert_allclose(np.asarray(declared), np.asarray(auto), rtol=1e-12, atol=1e-14)
    state = c.expand(z, x)
    dense = np.linalg.eigvals(np.asarray(nd.jacobian(c, state, x)))
    assert same_spectrum(np.asarray(c.eigenvalues(state, x)), dense)


def test_loop_product_by_outer_products_and_directly_agree(monkeypatch):
    """``left diag(gain) right`` from the stacked outer products and, past the size limit,
    directly: both the plain product, per sample under vmap."""
    from neurodyn.core import circuit as core_circuit

    rng = np.random.default_rng(3)
    left, right, gains = rng.normal(size=(4, 9)), rng.normal(size=(9, 4)), rng.normal(size=(5, 9))
    expected = np.einsum("ij,sj,jk->sik", left, gains, right)
    batched = jax.vmap(core_circuit.loop_product, in_axes=(None, 0, None))
    np.testing.assert_allclose(np.asarray(batched(left, gains, right)), expected, rtol=1e-12)
    monkeypatch.setattr(core_circuit, "LOOP_PRODUCT_MAX_ENTRIES", 0)
    np.testing.assert_allclose(np.asarray(batched(left, gains, right)), expected, rtol=1e-12)


def test_unstable_feedback_is_reported_not_returned():
    """B = +W^T makes S24 unstable: the solve stops with reason 'diverged', converged False."""
    rng = np.random.default_rng(12)
    c = di(rng, [20, 10], g="linear", leak=0.0, b_scale=-1.0)
    x = inputs(rng, c, batch=2)
    tr = nd.simulate(c, x, t1=1e4)
    assert tr.reason == "diverged" and not np.any(tr.converged)
    eq = nd.fixed_point(c, x, t1=1e4)
    assert not np.any(eq.converged) and eq.reason == "diverged"
    # Newton alone finds the (unstable) fixed point; verification flags it
    eq2 = nd.fixed_point(c, x, method="equilibrium")
    assert np.all(eq2.converged) and not np.any(eq2.stable) and eq2.reason == "unstable_fixed_point"


def test_max_steps_is_reported():
    rng = np.random.default_rng(13)
    c = di(rng, [8, 4], g="tanh", leak=0.01)
    tr = nd.simulate(c, inputs(rng, c), t1=500.0, max_steps=5)
    assert tr.reason == "max_steps" and not tr.all_converged


def test_flattened_state_order_is_the_declared_one():
    rng = np.random.default_rng(14)
    c = di(rng, [4, 3, 2], g="tanh")
    state = {k: jnp.full(s, i, dtype=float) for i, (k, s) in enumerate(c.state_shapes().items())}
    assert list(c.state_shapes()) == ["delta_0", "delta_1", "u_1", "u_2"]
    np.testing.assert_array_equal(flatten(state, c.state_shapes()), [0] * 4 + [1] * 3 + [2] * 3 + [3] * 2)


def test_newton_tolerances_follow_the_precision():
    """In float32 Newton stops at float32's resolution after a few steps (at float64's
    1e-12 it ran all 64 every time), and the fixed point agrees with float64's to float32
    accuracy."""
    from neurodyn.core.equilibrium import fixed_point, newton_tolerances

    rng = np.random.default_rng(3)
    c64 = di(rng, [20, 10], leak=0.01)
    x64 = inputs(rng, c64, batch=8)
    c32 = jax.tree_util.tree_map(lambda a: a.astype(np.float32) if eqx.is_inexact_array(a) else a, c64)
    x32 = {k: v.astype(np.float32) for k, v in x64.items()}
    e64, e32 = fixed_point(c64, x64, method="equilibrium"), fixed_point(c32, x32, method="equilibrium")
    assert e32.all_converged and e32.newton_steps <= 10
    assert fixed_point(c32, x32, method="equilibrium", newton_rtol=1e-12, newton_atol=1e-14).newton_steps == 64
    for k in e64.state:
        assert rel(e32.state[k], e64.state[k]) < 1e-4
    assert newton_tolerances(np.float64) == (1e-12, 1e-14) and newton_tolerances(np.float32)[0] > 1e-6


def test_verification_in_chunks_keeps_every_sample_in_place(monkeypatch):
    """A batch of 11 in chunks of 4 (two chunks and a rest of 3) gives each sample the
    residual, scale and spectral abscissa it gets in one piece, in the same order."""
    from neurodyn.core import equilibrium

    rng = np.random.default_rng(5)
    c = di(rng, [12, 4], g="tanh", leak=0.05, w=0.6)
    x = inputs(rng, c, batch=11)
    state = {k: jnp.asarray(rng.normal(size=(11, *s))) for k, s in c.state_shapes().items()}
    whole = equilibrium._verify.__wrapped__(c, state, x)  # eager: the chunk size is read each call
    monkeypatch.setattr(equilibrium, "VERIFY_CHUNK", 4)
    chunked = equilibrium._verify.__wrapped__(c, state, x)
    for a, b in zip(whole, chunked):
        assert a.shape == (11,)
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-12)
    assert len(set(np.round(np.asarray(whole[0]), 12))) == 11  # the samples differ: an order swap would show


def _primitives(jaxpr) -> set:
    """Every primitive of a jaxpr, sub-jaxprs (loops, branches) included."""
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            names |= _primitives(sub)
    return names


def test_solve_fixed_point_falls_back_to_integration_only_where_newton_can_fail():
    """The pure-JAX solve of the training steps: for the linearized controller (an affine
    reduced equation) Newton is exact and the program holds no integration to fall back to
    (no cond); for the nonlinear controller the fallback is there, and when Newton alone
    fails (two steps allowed from rest) the batch is integrated first and still lands on
    the fixed point of fixed_point."""
    from neurodyn.core.equilibrium import solve_fixed_point

    rng = np.random.default_rng(8)
    W = rng.uniform(-0.01, 0.01, (10, 300))
    for controller in ("linearized", "nonlinear"):
        c = DynamicInversion(W=(jnp.asarray(W),), B=(jnp.asarray(-50 * W.T),), alpha=0.01, g=(parse("tanh"),), controller=controller)
        x = inputs(rng, c, batch=5)
        names = _primitives(jax.make_jaxpr(lambda xx: solve_fixed_point(c, xx))(x).jaxpr)
        assert ("cond" in names) == (controller == "nonlinear")
        reference = nd.fixed_point(c, x, method="equilibrium")
        steps = 2 if controller == "nonlinear" else 64
        state, _, converged = solve_fixed_point(c, x, newton_max_steps=steps)
        assert np.all(np.asarray(converged)) and rel(state["delta_0"], reference.state["delta_0"]) <= 1e-10
        if controller == "nonlinear":  # two Newton steps from rest alone do not converge: the fallback ran
            assert not np.any(nd.fixed_point(c, x, method="equilibrium", newton_max_steps=steps).converged)
