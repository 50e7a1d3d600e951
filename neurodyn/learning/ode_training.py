"""Online training of a network by a circuit whose weights evolve as ODEs.

A circuit with plastic arrays (:class:`neurodyn.core.plasticity.Plastic`) learns one
sample at a time: for each sample ``(x, t)`` the circuit starts from its rest at the
current weights, runs its own phase sequence (single phase, free/learning phases, a gamma
cycle) over ``[0, t1]`` with diffrax, and the weights it ends with are carried to the next
sample. The samples run in one ``lax.scan`` (no Python loop over samples); the whole run is
a pure function of the initial weights and the data, so it ``vmap``s over seeds.

The network being trained is the plain MLP ``h_l = s_l(W_l h_{l-1})``, ``h_0 = x``, without
biases, squared loss ``0.5 ||h_L - t||^2`` (so ``e_L = h_L - t``). A circuit kind whose
parametrisation differs maps the data with ``encode`` (e.g. ``continuous_dtp``, whose
``f_l = W_l sigma(.)`` applies ``sigma`` to its input: ``encode = sigma^{-1}`` makes its
network the same MLP with ``s_1..s_{L-1} = sigma`` and a linear output).

Metrics at every evaluation point (:func:`evaluate`): the train and test loss, and for every
hidden layer ``l < L`` the angle between the learner's weight update of ``W_l`` over one
cycle (``signal``) and three references at the same weights and sample:

- ``bp``: ``-dL/dW_l = D_{s_l} delta_l^{BP} h_{l-1}^T`` (BP, thesis (5.61));
- ``gn``: the update driven by the Gauss-Newton target ``Delta h_l = -J_l^+ e_L``
  (EQUATIONS.md section 5, Meulemans 2020 eq. 13, thesis (5.60)),
  ``D_{s_l} Delta h_l h_{l-1}^T``, with ``J_l = dh_L/dh_l``;
- ``gn_weight``: the minimum-norm Gauss-Newton step of ``W_l`` alone for one sample,
  ``-(J_l D_{s_l})^+ e_L h_{l-1}^T / ||h_{l-1}||^2`` (it has ``D_{s_l}^{-1}`` where the
  target-driven update has ``D_{s_l}``; the two coincide for a linear layer).

Angles are taken per sample with the Frobenius inner product and averaged over the probe
samples; ``obtuse_bp`` is the fraction of probe samples whose update makes more than 90
degrees with BP's (not a descent direction for that sample).

Discrete references with the same interface: :class:`GradientDescent` (online BP, or BP
with frozen hidden layers, the thesis's control).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ..core.plasticity import Plastic
from ..core.simulate import integrate

Weights = dict[str, jax.Array]


# ---------------------------------------------------------------------------------
# The network being trained and the reference directions
def layer_weights(weights: Mapping[str, jax.Array], L: int) -> tuple:
    """``(W_1, ..., W_L)`` from a weights dict with model-file names."""
    return tuple(weights[f"W{l}"] for l in range(1, L + 1))


def forward(s: Sequence, W: Sequence, x) -> tuple[list, list]:
    """``a_l = W_l h_{l-1}``, ``h_l = s_l(a_l)`` for one sample: ``(a_1..a_L, h_0..h_L)``."""
    a, h = [], [x]
    for Wl, sl in zip(W, s):
        a.append(Wl @ h[-1])
        h.append(sl(a[-1]))
    return a, h


def loss(s: Sequence, W: Sequence, x, t) -> jax.Array:
    """Mean over the rows of ``x`` of ``0.5 ||h_L - t||^2``."""
    y = jax.vmap(lambda xi: forward(s, W, xi)[1][-1])(x)
    return jnp.mean(0.5 * jnp.sum((y - t) ** 2, axis=-1))


def bp_direction(s: Sequence, W: Sequence, x, t) -> tuple:
    """``-dL/dW_l`` for one sample, l = 1..L."""
    grads = jax.grad(lambda Ws: 0.5 * jnp.sum((forward(s, Ws, x)[1][-1] - t) ** 2))(tuple(W))
    return tuple(-g for g in grads)


def _upper_jacobian(s, W, l, h_l):
    """``J_l = dh_L/dh_l`` at ``h_l`` (layers l+1..L)."""

    def top(h):
        for Wk, sk in zip(W[l:], s[l:]):
            h = sk(Wk @ h)
        return h

    return jax.jacfwd(top)(h_l)


def gn_directions(s: Sequence, W: Sequence, x, t) -> tuple[tuple, tuple]:
    """For the hidden layers l = 1..L-1 of one sample: the update driven by the
    Gauss-Newton target ``D_{s_l} (-J_l^+ e_L) h_{l-1}^T`` and the Gauss-Newton step of
    ``W_l`` alone ``-(J_l D_{s_l})^+ e_L h_{l-1}^T / ||h_{l-1}||^2`` (module docstring)."""
    a, h = forward(s, W, x)
    e = h[-1] - t
    target, weight = [], []
    for l in range(1, len(W)):
        J = _upper_jacobian(s, W, l, h[l])
        D = s[l - 1].deriv(a[l - 1])
        dh = -jnp.linalg.pinv(J) @ e
        target.append(jnp.outer(D * dh, h[l - 1]))
        step = -jnp.linalg.pinv(J * D[None, :]) @ e
        weight.append(jnp.outer(step, h[l - 1]) / jnp.sum(h[l - 1] ** 2))
    return tuple(target), tuple(weight)


def angle(a, b) -> jax.Array:
    """Angle in degrees between two arrays (Frobenius inner product); 90 if either is 0."""
    na, nb = jnp.linalg.norm(a), jnp.linalg.norm(b)
    tiny = jnp.finfo(jnp.result_type(a, b)).tiny
    cos = jnp.where((na > tiny) & (nb > tiny), jnp.sum(a * b) / jnp.maximum(na * nb, tiny), 0.0)
    return jnp.degrees(jnp.arccos(jnp.clip(cos, -1.0, 1.0)))


# ---------------------------------------------------------------------------------
# Learners: ``step`` (one sample, weights carried) and ``signal`` (update per sample)
class OnlineCircuit(eqx.Module):
    """A plastic circuit as an online learner (module docstring).

    Arguments:
        plastic: the circuit with its plastic arrays (``W1..WL`` and any of ``Q``/``Omega``),
            their ``tau_w`` and gates; its own arrays are only the template (shapes and the
            non-plastic arrays).
        t1: length of one sample's cycle (the end of the kind's phase sequence).
        s: ``s_1..s_L`` of the MLP the circuit trains (for the loss and the references).
        encode: network input -> the circuit's input ``x`` (default: unchanged).
        start: the neural state each sample starts from: ``"init_state"`` (the kind's own,
            e.g. the forward pass) or ``"closed_form"`` (its analytic rest, e.g. the
            free-phase fixed point of ``burst_multiplexing``).
        solver, dt0, rtol, atol, max_steps: as in :func:`neurodyn.core.simulate.integrate`.
    """

    plastic: Plastic
    s: tuple
    t1: float = eqx.field(static=True)
    encode: Callable | None = eqx.field(static=True, default=None)
    start: str = eqx.field(static=True, default="init_state")
    solver: str = eqx.field(static=True, default="tsit5")
    dt0: float | None = eqx.field(static=True, default=None)
    rtol: float = eqx.field(static=True, default=1e-5)
    atol: float = eqx.field(static=True, default=1e-7)
    max_steps: int = eqx.field(static=True, default=4096)

    def __check_init__(self):
        if not isinstance(self.plastic, Plastic):
            raise ValueError("plastic must be a core.plasticity.Plastic circuit (the arrays that learn)")
        missing = [f"W{l}" for l in range(1, len(self.s) + 1) if f"W{l}" not in self.plastic.arrays]
        if missing:
            raise ValueError(f"the forward weights {missing} must be plastic (add them to Plastic's arrays)")
        if self.start not in ("init_state", "closed_form"):
            raise ValueError(f"start must be 'init_state' or 'closed_form', got {self.start!r}")
        if not self.t1 > 0:
            raise ValueError(f"t1 (the cycle length) must be positive, got {self.t1}")

    @property
    def L(self) -> int:
        return len(self.s)

    def initial_weights(self) -> Weights:
        """The plastic arrays of the template circuit."""
        c = self.plastic.circuit
        return {n: jnp.asarray(c.where(n)(c)) for n in self.plastic.arrays}

    def inputs(self, x, t) -> dict:
        """Circuit inputs for a batch of samples ``x`` (B, d_0), ``t`` (B, d_L)."""
        xe = x if self.encode is None else jax.vmap(self.encode)(x)
        return {"x": xe, "target": t}

    def cycle(self, weights: Weights, x, t) -> tuple[Weights, dict]:
        """One cycle for a batch of independent samples, each with its own copy of the
        weights (``weights`` batched like ``x``): the weights at ``t1`` and the solver stats."""
        inputs = self.inputs(x, t)

        def neural(w, inp):
            c = self.plastic.rebuild(w)
            y = c.closed_form(inp) if self.start == "closed_form" else c.init_state(inp)
            if y is None:
                raise ValueError(f"start = 'closed_form', but kind {c.kind} has no closed form here; use start = 'init_state'")
            return y

        y0 = dict(jax.vmap(neural)(weights, inputs))
        y0.update(weights)
        final, stats = integrate(
            self.plastic, inputs, y0, t1=self.t1, solver=self.solver, dt0=self.dt0,
            rtol=self.rtol, atol=self.atol, max_steps=self.max_steps,
        )
        return {n: final[n] for n in weights}, stats

    def step(self, weights: Weights, x, t) -> Weights:
        """Learn one sample ``(x, t)`` (unbatched): the weights after its cycle; unchanged
        (the sample skipped) when the solver did not reach ``t1`` or the result is not finite."""
        w = jax.tree_util.tree_map(lambda v: v[None], weights)
        new, stats = self.cycle(w, x[None], t[None])
        new = jax.tree_util.tree_map(lambda v: v[0], new)
        good = stats["ok"] & jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in new.values()]))
        return {n: jnp.where(good, new[n], weights[n]) for n in weights}

    def signal(self, weights: Weights, x, t) -> tuple[Weights, dict]:
        """Per-sample weight change over one cycle from the same ``weights`` (unbatched),
        for a batch ``x`` (B, d_0): ``({name: (B, *shape)}, stats)``."""
        B = x.shape[0]
        w = jax.tree_util.tree_map(lambda v: jnp.broadcast_to(v, (B, *v.shape)), weights)
        new, stats = self.cycle(w, x, t)
        return {n: new[n] - w[n] for n in weights}, stats


class GradientDescent(eqx.Module):
    """Online SGD on ``0.5 ||h_L - t||^2`` by BP: ``W_l -= lr dL/dW_l`` for the layers in
    ``train`` (default all; ``train = (L,)`` is BP with frozen hidden layers)."""

    s: tuple
    lr: float = eqx.field(static=True)
    train: tuple[int, ...] | None = eqx.field(static=True, default=None)

    @property
    def L(self) -> int:
        return len(self.s)

    def _update(self, weights, x, t):
        g = bp_direction(self.s, layer_weights(weights, self.L), x, t)
        layers = range(1, self.L + 1) if self.train is None else self.train
        return {f"W{l}": self.lr * g[l - 1] if l in layers else jnp.zeros_like(g[l - 1]) for l in range(1, self.L + 1)}

    def step(self, weights: Weights, x, t) -> Weights:
        dW = self._update(weights, x, t)
        return {n: weights[n] + dW[n] for n in weights}

    def signal(self, weights: Weights, x, t) -> tuple[Weights, dict]:
        dW = jax.vmap(lambda xi, ti: self._update(weights, xi, ti))(x, t)
        return dW, {"num_steps": jnp.zeros((), jnp.int32), "ok": jnp.asarray(True)}


# ---------------------------------------------------------------------------------
def evaluate(learner, weights: Weights, data: Mapping[str, jax.Array]) -> dict:
    """Metrics at ``weights``: ``train_loss``, ``test_loss`` and, per hidden layer (axis of
    length L-1), the mean angles ``angle_bp``, ``angle_gn``, ``angle_gn_weight`` of the
    learner's one-cycle update on the probe samples, ``obtuse_bp`` (fraction of probes at
    more than 90 degrees from BP), ``signal_norm`` (mean ``||Delta W_l||_F``) and, for
    circuits, ``solver_ok`` (fraction of probe solves that reached ``t1``).

    ``data`` holds ``train_x, train_t, test_x, test_t, probe_x, probe_t``.
    """
    s, L = learner.s, learner.L
    W = layer_weights(weights, L)
    out = {"train_loss": loss(s, W, data["train_x"], data["train_t"]), "test_loss": loss(s, W, data["test_x"], data["test_t"])}
    dW, stats = learner.signal(weights, data["probe_x"], data["probe_t"])

    def per_sample(x, t, ours):
        bp = bp_direction(s, W, x, t)
        gn, gnw = gn_directions(s, W, x, t)
        rows = []
        for l in range(1, L):
            d = ours[f"W{l}"]
            rows.append(jnp.stack([angle(d, bp[l - 1]), angle(d, gn[l - 1]), angle(d, gnw[l - 1]), jnp.linalg.norm(d)]))
        return jnp.stack(rows)  # (L-1, 4)

    table = jax.vmap(per_sample)(data["probe_x"], data["probe_t"], dW)  # (P, L-1, 4)
    out["angle_bp"] = jnp.mean(table[:, :, 0], axis=0)
    out["angle_gn"] = jnp.mean(table[:, :, 1], axis=0)
    out["angle_gn_weight"] = jnp.mean(table[:, :, 2], axis=0)
    out["obtuse_bp"] = jnp.mean(jnp.where(table[:, :, 0] > 90.0, 1.0, 0.0), axis=0)
    out["signal_norm"] = jnp.mean(table[:, :, 3], axis=0)
    out["solver_ok"] = jnp.mean(jnp.asarray(stats["ok"], float))
    return out


def train_online(learner, weights: Weights, xs, ts, data: Mapping[str, jax.Array] | None, *, evals: int = 1) -> tuple[Weights, dict]:
    """Present the samples ``xs`` (N, d_0), ``ts`` (N, d_L) one at a time, in order, with
    ``learner.step``; evaluate (:func:`evaluate`) before the first sample and after every
    ``N / evals`` samples. Two nested ``lax.scan``s, no Python loop over samples; jit and
    vmap (over seeds) freely.

    Returns the final weights and the metrics, each with a leading axis of ``evals + 1``
    (``data = None``: no evaluation, empty metrics).
    """
    N = xs.shape[0]
    if evals < 1 or N % evals:
        raise ValueError(f"evals must divide the number of samples ({N}), got {evals}")
    blocks = (xs.reshape(evals, N // evals, *xs.shape[1:]), ts.reshape(evals, N // evals, *ts.shape[1:]))

    def one(w, xt):
        return learner.step(w, *xt), None

    def block(w, xts):
        w, _ = jax.lax.scan(one, w, xts)
        return w, ({} if data is None else evaluate(learner, w, data))

    first = {} if data is None else evaluate(learner, weights, data)
    weights, metrics = jax.lax.scan(block, weights, blocks)
    metrics = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), first, metrics)
    return weights, metrics


def train_seeds(learner, weights: Weights, xs, ts, data: Mapping[str, Any], *, evals: int) -> tuple[Weights, dict]:
    """:func:`train_online` vmapped over a leading seed axis of every argument, jitted."""
    fn = eqx.filter_jit(jax.vmap(lambda w, x, t, d: train_online(learner, w, x, t, d, evals=evals)))
    return fn(weights, xs, ts, dict(data))
