"""Small builders shared by the tests."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from neurodyn.circuits import DynamicInversion, DynamicInversionExpanding, SingleLoopDynamicInversion
from neurodyn.core.nonlinearities import parse


def di(rng, sizes, *, g="tanh", leak=0.0, controller="nonlinear", w=1.0, b_scale=1.0):
    """Stacked DI with W_l ~ U(-w, w) and B_l = -b_scale W_l^T."""
    W = tuple(jnp.asarray(rng.uniform(-w, w, (sizes[l], sizes[l - 1]))) for l in range(1, len(sizes)))
    B = tuple(-b_scale * Wl.T for Wl in W)
    gs = tuple(parse(g) for _ in W)
    return DynamicInversion(W=W, B=B, alpha=leak, g=gs, controller=controller)


def sldi(rng, sizes, *, g="tanh", leak=0.0, controller="nonlinear", w=0.3, b_scale=1.0):
    """SLDI with W_l ~ U(-w, w) and the paper's B = -b_scale W_1^T ... W_L^T."""
    W = tuple(jnp.asarray(rng.uniform(-w, w, (sizes[l], sizes[l - 1]))) for l in range(1, len(sizes)))
    P = W[0]
    for Wl in W[1:]:
        P = Wl @ P
    return SingleLoopDynamicInversion(W=W, B=-b_scale * P.T, alpha=leak, g=tuple(parse(g) for _ in W), controller=controller)


def expanding(rng, sizes, *, g="tanh", leak=0.01, w=1.0):
    W = jnp.asarray(rng.uniform(-w, w, (sizes[1], sizes[0])))
    return DynamicInversionExpanding(W=W, B=W.T, alpha=leak, g=parse(g))


def inputs(rng, circuit, batch=None, std=0.1):
    """Random inputs for every input of ``circuit`` (pre-activations ~ N(0, 1))."""
    out = {}
    for name, shape in circuit.input_shapes().items():
        s = (batch, *shape) if batch else shape
        out[name] = jnp.asarray((std if name == "delta_out" else 1.0) * rng.normal(size=s))
    return out


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def same_spectrum(a, b, tol=1e-9) -> bool:
    """Equal multisets of eigenvalues, matched by optimal assignment."""
    from scipy.optimize import linear_sum_assignment

    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    cost = np.abs(a[:, None] - b[None, :])
    rows, cols = linear_sum_assignment(cost)
    return bool(np.max(cost[rows, cols]) <= tol)


def orthogonal(rng, n):
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))


def conditioned(rng, m, n, lo=0.5, hi=1.5):
    """An m x n matrix with singular values in [lo, hi] and random singular vectors."""
    u, _ = np.linalg.qr(rng.normal(size=(m, m)))
    v, _ = np.linalg.qr(rng.normal(size=(n, n)))
    k = min(m, n)
    return (u[:, :k] * rng.uniform(lo, hi, k)) @ v[:, :k].T


def interrupted_training(monkeypatch, exp, out, at: int):
    """Run ``neurodyn.io.training.run_training`` and interrupt it (KeyboardInterrupt) at the
    ``at``-th evaluation interval, as a user's Ctrl-C would; the checkpoint stays in ``out``."""
    import pytest

    from neurodyn.io import training

    real, calls = training.run_steps, {"n": 0}

    def flaky(*args, **kw):
        calls["n"] += 1
        if calls["n"] == at:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(training, "run_steps", flaky)
    with pytest.raises(KeyboardInterrupt):
        training.run_training(exp, out)
    monkeypatch.setattr(training, "run_steps", real)


BP_AND_FA = '[rules.bp]\n[rules.fa]\nfeedback = "random"\n'


def tiny_experiment(*, name="tiny_training", seed=1, n_train=40, n_test=20, lr=0.01, eval_samples=20, probe_samples=5, rules=BP_AND_FA) -> str:
    """The text of a small experiment file (4-5-3 tanh regression, 20 updates in two
    evaluation intervals, no Gauss-Newton or null-space analysis) that tests edit with
    ``str.replace``."""
    return f"""\
name = "{name}"
seed = {seed}
[network]
sizes = [4, 5, 3]
nonlinearities = ["tanh", "linear"]
init = "normal"
init_scale = 1.0
[data]
kind = "nonlinear_regression"
n_train = {n_train}
n_test = {n_test}
teacher_scale = 1.0
[training]
lr = {lr}
batch_size = 4
steps = 20
eval_every = 10
eval_samples = {eval_samples}
probe_samples = {probe_samples}
gauss_newton_angles = false
null_space_samples = 0
{rules}"""
