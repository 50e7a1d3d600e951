"""Training: online or mini-batch SGD with weight decay, the learning signals coming from
a credit-assignment rule (supplement Eq. 2, section 7.7; EQUATIONS.md 1.8).

``W_l += eta (sum_b delta_l h_{l-1}^T - lambda W_l)`` and ``b_l += eta sum_b delta_l``, with
each sample's backpropagated ``delta_l`` (hidden layers; the output error too only with
``clip_output``) clipped to ``||delta_l|| <= clip`` (7.7.1). Updates are summed
over a mini-batch (the paper's learning rate 1e-6 for mini-batches of 100 implies sums).
The samples of one evaluation interval run in a single ``lax.scan``; the order of an
epoch is a permutation drawn from ``(seed, epoch)``, so a run resumed at any interval
repeats and skips nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .losses import loss_value, output_error
from .network import Network
from .rules import BP, Rule


@dataclass(frozen=True)
class SGD:
    """Plain SGD as in the paper: learning rate, weight decay, clipping of the backpropagated
    signals (None: off; ``clip_output`` clips the output error as well)."""

    lr: float
    weight_decay: float = 0.0
    clip: float | None = None
    batch_size: int = 1
    clip_output: bool = False


def clip_norm(delta, clip):
    """Scale each sample's signal (last axis) to norm at most ``clip``."""
    if clip is None:
        return delta
    norm = jnp.linalg.norm(delta, axis=-1, keepdims=True)
    return delta * jnp.minimum(1.0, clip / jnp.maximum(norm, jnp.finfo(delta.dtype).tiny))


def weight_updates(rule: Rule, network: Network, loss: str, x, t, clip, clip_output: bool = False):
    """Per-layer ``(sum_b delta_l h_{l-1}^T, sum_b delta_l)`` for a mini-batch ``x`` (batch, d_0);
    the hidden signals are clipped to norm ``clip``, the output error only if ``clip_output``."""
    fwd = network.forward(x)
    *hidden, delta_L = rule.signals(network, fwd, output_error(loss, network, fwd, t))
    deltas = [clip_norm(d, clip) for d in hidden] + [clip_norm(delta_L, clip if clip_output else None)]
    dW = tuple(d.T @ h for d, h in zip(deltas, fwd.h[:-1]))
    db = tuple(jnp.sum(d, axis=0) for d in deltas)
    return dW, db


def sgd_step(rule: Rule, network: Network, loss: str, opt: SGD, x, t) -> Network:
    dW, db = weight_updates(rule, network, loss, x, t, opt.clip, opt.clip_output)
    W = tuple(w + opt.lr * (g - opt.weight_decay * w) for w, g in zip(network.W, dW))
    b = tuple(v + opt.lr * g for v, g in zip(network.b, db))
    return eqx.tree_at(lambda n: (n.W, n.b), network, (W, b))


@eqx.filter_jit
def run_steps(rule: Rule, network: Network, loss: str, opt: SGD, xs, ts) -> Network:
    """One ``lax.scan`` over mini-batches ``xs`` (steps, batch, d_0)."""

    def body(net, xt):
        return sgd_step(rule, net, loss, opt, *xt), None

    network, _ = jax.lax.scan(body, network, (xs, ts))
    return network


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The sample order of one epoch: a permutation fixed by ``(seed, epoch)``."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def batches(x, t, *, start: int, steps: int, batch_size: int, seed: int):
    """Mini-batches ``start .. start + steps`` of the infinite, epoch-wise shuffled stream:
    ``(steps, batch, d)`` arrays (an epoch's last partial batch is dropped)."""
    per_epoch = len(x) // batch_size
    idx = []
    for step in range(start, start + steps):
        epoch, k = divmod(step, per_epoch)
        order = epoch_order(len(x), seed, epoch)
        idx.append(order[k * batch_size : (k + 1) * batch_size])
    idx = np.stack(idx)
    return jnp.asarray(x[idx]), jnp.asarray(t[idx])


@eqx.filter_jit
def evaluate(network: Network, loss: str, x, t) -> dict:
    """Mean loss, and accuracy when ``t`` is one-hot (classification)."""
    fwd = network.forward(x)
    out = {"loss": jnp.mean(loss_value(loss, fwd, t))}
    if loss == "cross_entropy":
        out["accuracy"] = jnp.mean(jnp.argmax(fwd.a[-1], axis=-1) == jnp.argmax(t, axis=-1))
    return out


@eqx.filter_jit
def alignment(rule: Rule, network: Network, loss: str, x, t) -> jax.Array:
    """Angle in degrees between the rule's and BP's weight updates, per layer, on ``x``."""
    ours, _ = weight_updates(rule, network, loss, x, t, None)
    bp, _ = weight_updates(BP(), network, loss, x, t, None)

    def angle(a, b):
        cos = jnp.sum(a * b) / jnp.maximum(jnp.linalg.norm(a) * jnp.linalg.norm(b), jnp.finfo(a.dtype).tiny)
        return jnp.degrees(jnp.arccos(jnp.clip(cos, -1.0, 1.0)))

    return jnp.stack([angle(a, b) for a, b in zip(ours, bp)])


@eqx.filter_jit
def steady_state_metrics(rule, network: Network, loss: str, x, t) -> tuple:
    """For a circuit rule on ``x``: the largest steady-state residual ``max|dy/dt|``, the
    fraction of samples that converged, and the fraction whose fixed point is stable.
    Compiled once per rule structure (run eagerly, the solver's loops recompile per call)."""
    fwd = network.forward(x)
    delta_L = output_error(loss, network, fwd, t)
    state, residual, converged = rule.solve(network, fwd, delta_L)
    return jnp.max(residual), jnp.mean(converged), rule.stable_fraction(network, fwd, delta_L, state)


def feedback_abscissa(rule: Rule, network: Network, alpha: float = 0.0) -> list[float]:
    """Maximum real eigenvalue of each layer's S24 block matrix ``[[-I, B_l], [W_l, -alpha I]]``
    (supplement 7.7.1: stability measured initially and throughout training)."""
    from ..core.stability import two_block_eigenvalues

    pairs = rule.feedback_matrices(network)
    if not pairs:
        return []
    alpha = getattr(rule, "alpha", alpha)
    return [float(jnp.max(jnp.real(two_block_eigenvalues(B, W, 1.0, alpha)))) for W, B in pairs]
