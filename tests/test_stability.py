"""Spectra, the smoothed spectral abscissa (Vanbiervliet et al. 2009) and its optimisation
(supplement section 7.5), the stability CLI and the ``stabilize`` key."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg

from neurodyn.circuits import DynamicInversion
from neurodyn.cli import main
from neurodyn.core.nonlinearities import parse
from neurodyn.core.stability import (
    smoothed_spectral_abscissa,
    smoothed_spectral_abscissa_two_block,
    system_spectrum,
    two_block_eigenvalues,
)
from neurodyn.core.stabilize import stabilize, target_abscissa

from helpers import same_spectrum, sldi


def _random(rng, n, shift=0.5):
    return rng.normal(size=(n, n)) / np.sqrt(n) - shift * np.eye(n)


@pytest.mark.parametrize("eps", [1e-1, 1e-2, 1e-3])
def test_ssa_solves_its_defining_integral(eps):
    """int_0^inf ||exp((M - s I) t)||_F^2 dt = 1/eps at s = SSA, and SSA > abscissa."""
    M = _random(np.random.default_rng(0), 5)
    r = smoothed_spectral_abscissa(M, eps)
    A = M - r.value * np.eye(5)
    integral, _ = scipy.integrate.quad(lambda t: np.linalg.norm(scipy.linalg.expm(A * t), "fro") ** 2, 0, np.inf, limit=500)
    assert integral == pytest.approx(1 / eps, rel=1e-6)
    assert r.abscissa < r.value


def test_ssa_tends_to_the_abscissa_as_eps_shrinks():
    M = _random(np.random.default_rng(1), 6)
    values = [smoothed_spectral_abscissa(M, eps).value for eps in (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)]
    a = smoothed_spectral_abscissa(M, 1e-3).abscissa
    assert all(v1 > v2 for v1, v2 in zip(values, values[1:]))
    assert values[-1] - a < 1e-2 * (values[0] - a)


def test_ssa_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    M = _random(rng, 6)
    G = smoothed_spectral_abscissa(M, 1e-2).grads[0]
    for _ in range(3):
        E = rng.normal(size=M.shape)
        h = 1e-6
        fd = (smoothed_spectral_abscissa(M + h * E, 1e-2).value - smoothed_spectral_abscissa(M - h * E, 1e-2).value) / (2 * h)
        assert fd == pytest.approx(np.sum(G * E), rel=1e-6)


@pytest.mark.parametrize("n, m", [(300, 5), (40, 3)])
def test_reduced_two_block_ssa_equals_dense(n, m):
    """The rank <= 2m reduction is exact: value and gradients agree with the dense problem."""
    rng = np.random.default_rng(3)
    W = rng.uniform(-0.05, 0.05, (m, n))
    B = rng.uniform(-0.05, 0.05, (n, m)) * 20
    red = smoothed_spectral_abscissa_two_block(B, W, 1.0, 0.01, 1e-3)
    dense = smoothed_spectral_abscissa(np.block([[-np.eye(n), B], [W, -0.01 * np.eye(m)]]), 1e-3)
    assert red.value == pytest.approx(dense.value, abs=1e-12)
    assert red.abscissa == pytest.approx(dense.abscissa, abs=1e-12)
    G = dense.grads[0]
    assert np.max(np.abs(red.grads[0] - G[:n, n:])) < 1e-10
    assert np.max(np.abs(red.grads[1] - G[n:, :n])) < 1e-10


@pytest.mark.parametrize("n, m", [(8, 3), (3, 8), (5, 5)])
def test_two_block_spectrum_equals_dense(n, m):
    """S24's Schur-complement form: lambda^2 + (1+alpha) lambda + alpha - nu = 0, plus -1 / -alpha."""
    rng = np.random.default_rng(4)
    P, Q = rng.normal(size=(n, m)), rng.normal(size=(m, n))
    M = np.block([[-np.eye(n), P], [Q, -0.05 * np.eye(m)]])
    assert same_spectrum(two_block_eigenvalues(jnp.asarray(P), jnp.asarray(Q), 1.0, 0.05), np.linalg.eigvals(M))


def test_system_spectrum_structured_equals_dense_for_stacked_di():
    rng = np.random.default_rng(5)
    W = tuple(jnp.asarray(rng.uniform(-1, 1, s)) for s in [(6, 9), (4, 6)])
    B = tuple(jnp.asarray(rng.uniform(-1, 1, s)) for s in [(9, 6), (6, 4)])
    c = DynamicInversion(W=W, B=B, alpha=0.02, g=(parse("tanh"),) * 2)
    structured, dense = system_spectrum(c)
    assert same_spectrum(structured, dense)


def _layer(seed, d0, d1, alpha, g="tanh"):
    rng = np.random.default_rng(seed)
    W, B = rng.uniform(-1, 1, (d1, d0)), rng.uniform(-1, 1, (d0, d1))
    return DynamicInversion(W=(jnp.asarray(W),), B=(jnp.asarray(B),), alpha=alpha, g=(parse(g),))


def test_stabilize_compiles_once_per_shape():
    """A second SSA descent on another layer of the same shapes (another draw, another
    ``where`` function) compiles nothing: the gradient's pullback is compiled per kind and
    shape, not per call."""
    import jax

    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kw: compiles.append(event) if event == "/jax/core/compile/backend_compile_duration" else None
    )
    first = stabilize(_layer(11, 20, 10, 0.0), lambda c: c.B, margin=0.1)
    before = len(compiles)
    second = stabilize(_layer(12, 20, 10, 0.0), lambda c: c.B, margin=0.1)
    assert first.success and second.success and first.iterations > 0 and second.iterations > 0
    assert len(compiles) == before, f"{len(compiles) - before} programs compiled again"


@pytest.mark.parametrize("d0, d1, alpha", [(20, 10, 0.0), (20, 10, 0.1), (10, 20, 0.01), (10, 20, 0.1), (20, 20, 0.1)])
def test_ssa_descent_stabilises_random_layers(d0, d1, alpha):
    """Random W, B ~ U(-1, 1): B alone is optimised until S24's abscissa < target, every seed."""
    for seed in range(5):
        c = _layer(seed, d0, d1, alpha)
        r = stabilize(c, lambda c: c.B, margin=0.1)
        assert r.success, (seed, r.message)
        assert r.abscissa_after < r.target and r.iterations <= 200
        np.testing.assert_array_equal(r.circuit.W[0], c.W[0])  # W untouched
        structured, dense = system_spectrum(r.circuit)
        assert np.max(dense.real) == pytest.approx(r.abscissa_after, abs=1e-9)


def test_expanding_layer_margin_is_relative():
    """d_l > d_{l-1}: -alpha is always an eigenvalue, so the target is -min(margin, alpha/2)."""
    c = _layer(0, 10, 20, 0.05)
    assert target_abscissa(c, 0.1) == pytest.approx(-0.025)
    assert target_abscissa(c, 0.01) == pytest.approx(-0.01)
    r = stabilize(c, lambda c: c.B, margin=0.1)
    assert r.success and -0.05 - 1e-9 <= r.abscissa_after < -0.025
    # with no leak an expanding layer cannot be made stable: reported, not faked
    r0 = stabilize(_layer(0, 10, 20, 0.0), lambda c: c.B, margin=0.1, max_iter=20)
    assert not r0.success and r0.target == 0.0 and r0.abscissa_after >= 0.0


def test_nearly_singular_layer_needs_eps_continuation():
    """W with a singular value 1e-4: plain descent at eps = 1e-3 stalls with the abscissa
    near 0 (the SSA's own minimum lies above the target); the Polyak steps and the eps
    continuation reach the target."""
    rng = np.random.default_rng(1)
    U, s, Vt = np.linalg.svd(rng.uniform(-1, 1, (8, 8)))
    s[-1] = 1e-4
    W, B = U @ np.diag(s) @ Vt, rng.uniform(-1, 1, (8, 8))
    c = DynamicInversion(W=(jnp.asarray(W),), B=(jnp.asarray(B),), alpha=0.0, g=(parse("linear"),))
    plain = stabilize(c, lambda c: c.B, margin=0.01, max_iter=120, polyak_tries=0, eps_min=1e-3)
    assert not plain.success and plain.abscissa_after > -1e-3
    r = stabilize(c, lambda c: c.B, margin=0.01, max_iter=300)
    assert r.success, r.message
    assert r.eps_steps and r.eps_steps[-1][1] < 1e-3
    assert np.max(np.linalg.eigvals(np.asarray(r.circuit.system_matrix())).real) < -0.01
    with pytest.raises(ValueError):
        stabilize(c, lambda c: c.B, eps=1e-3, eps_min=1e-2)


def test_mnist_scale_layer_uses_the_reduced_problem():
    """1000 -> 10 (W, B ~ U(-0.01, 0.01), alpha 0) reaches -0.01 in a few small solves."""
    rng = np.random.default_rng(7)
    W, B = rng.uniform(-0.01, 0.01, (10, 1000)), rng.uniform(-0.01, 0.01, (1000, 10))
    c = DynamicInversion(W=(jnp.asarray(W),), B=(jnp.asarray(B),), alpha=0.0, g=(parse("tanh"),))
    r = stabilize(c, lambda c: c.B, margin=0.01)
    assert r.success and r.iterations < 50
    _, dense = system_spectrum(r.circuit)
    assert np.max(dense.real) < -0.01


def test_dense_path_for_single_loop():
    """SLDI has no two-block structure: the dense SSA is used on its system matrix."""
    rng = np.random.default_rng(8)
    c = sldi(rng, [8, 6, 4], g="tanh", leak=0.05, w=1.0, b_scale=1.0)
    assert c.system_blocks() is None
    assert np.max(np.linalg.eigvals(np.asarray(c.system_matrix())).real) > 0
    r = stabilize(c, lambda c: c.B, margin=0.02)
    assert r.success, r.message


def test_heuristic_is_available_for_comparison():
    r = stabilize(_layer(1, 20, 10, 0.0), lambda c: c.B, method="heuristic", lr=5e-2, margin=0.01, max_iter=30)
    assert r.iterations >= 1 and isinstance(r.success, bool)
    with pytest.raises(ValueError):
        stabilize(_layer(1, 20, 10, 0.0), lambda c: c.B, method="newton")


MODEL = """
name = "m"
seed = 3
[circuit]
kind = "dynamic_inversion"
sizes = [12, 6]
nonlinearity = "tanh"
leak = 0.01
[arrays]
W1 = {{ init = "uniform", low = -1.0, high = 1.0 }}
B1 = {{ init = "uniform", low = -1.0, high = 1.0{stab} }}
delta_out = {{ init = "normal", std = 0.1, batch = 3 }}
[simulation]
t1 = 1000.0
saveat = 11
"""


def test_stability_cli_optimises_and_writes_a_working_model(tmp_path, capsys):
    path = tmp_path / "m.toml"
    path.write_text(MODEL.format(stab=""))
    out = tmp_path / "st"
    assert main(["stability", str(path), "--optimize", "B1", "--out", str(out)]) == 0
    report = json.loads((out / "stability.json").read_text())
    assert report["before"]["spectral_abscissa"] > 0 and report["success"]
    assert report["after"]["spectral_abscissa"] < -0.1 and report["block_matrix_shape"] == [18, 18]
    assert {"B1.npy", "m_stabilized.toml", "spectrum.png", "stability.json"} <= {p.name for p in out.iterdir()}
    B1 = np.load(out / "B1.npy", allow_pickle=False)
    assert B1.shape == (12, 6)
    # the written model file simulates to a stable fixed point with the optimised B1
    assert main(["simulate", str(out / "m_stabilized.toml"), "--out", str(tmp_path / "sim"), "--no-plot"]) == 0
    summary = json.loads((tmp_path / "sim" / "summary.json").read_text())
    assert summary["converged"] and summary["stable"]


def test_stability_cli_failure_exits_3_and_writes_no_arrays(tmp_path, capsys):
    path = tmp_path / "m.toml"
    path.write_text(MODEL.format(stab=""))
    out = tmp_path / "st"
    assert main(["stability", str(path), "--optimize", "B1", "--max-iter", "1", "--out", str(out)]) == 3
    assert not (out / "B1.npy").exists() and json.loads((out / "stability.json").read_text())["success"] is False
    assert main(["stability", str(path), "--optimize", "B7", "--out", str(tmp_path / "x")]) == 2
    assert "B7" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_stabilize_key_optimises_before_simulate(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(MODEL.format(stab=", stabilize = { margin = 0.2 }"))
    assert main(["simulate", str(path), "--out", str(tmp_path / "sim"), "--no-plot"]) == 0
    summary = json.loads((tmp_path / "sim" / "summary.json").read_text())
    st = summary["stabilization"]["B1"]
    assert st["abscissa_before"] > 0 and st["abscissa_after"] < -0.2
    assert summary["converged"] and summary["stable"]
    path.write_text(MODEL.format(stab=", stabilize = { margin = 0.2, max_iter = 1 }"))
    assert main(["simulate", str(path), "--out", str(tmp_path / "sim2")]) == 3
    assert not (tmp_path / "sim2").exists()
    path.write_text(MODEL.format(stab=", stabilize = { margn = 0.2 }"))
    assert main(["simulate", str(path), "--out", str(tmp_path / "sim3")]) == 2
