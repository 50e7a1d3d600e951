"""Training: online or mini-batch SGD with weight decay, the updates coming from a
credit-assignment rule (supplement Eq. 2, section 7.7).

Each mini-batch is one :meth:`Rule.step`: for the signal rules ``W_l += eta (sum_b
delta_l h_{l-1}^T - lambda W_l)`` and ``b_l += eta sum_b delta_l``, with each sample's
backpropagated ``delta_l`` (hidden layers; the output error too only with
``clip_output``) clipped to ``||delta_l|| <= clip`` (7.7.1); rules with parameters of their
own (learned inverses, plastic circuits) update those in the same step. Updates are
summed over a mini-batch (the paper's learning rate 1e-6 for mini-batches of 100 implies
sums). The samples of one evaluation interval run in a single ``lax.scan``; the order of
an epoch is a permutation drawn from ``(seed, epoch)``, so a run resumed at any interval
repeats and skips nothing.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .losses import loss_value
from .network import Network
from .optimizer import SGD, apply_updates, clip_norm
from .rules import Rule

__all__ = ["SGD", "apply_updates", "clip_norm", "run_steps", "epoch_order", "batches", "evaluate"]


@eqx.filter_jit
def run_steps(rule: Rule, network: Network, loss: str, opt: SGD, xs, ts) -> tuple[Network, Rule]:
    """One ``lax.scan`` over mini-batches ``xs`` (steps, batch, d_0): the network and the
    rule (its own parameters) after them."""

    def body(carry, xt):
        net, r = carry
        return r.step(net, *xt, loss, opt), None

    (network, rule), _ = jax.lax.scan(body, (network, rule), (xs, ts))
    return network, rule


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
def evaluate(network: Network, loss: str, x, t, classification: bool = False) -> dict:
    """Mean loss, and accuracy (argmax of the output against argmax of the one-hot ``t``)
    for cross-entropy or when ``classification`` is set."""
    fwd = network.forward(x)
    out = {"loss": jnp.mean(loss_value(loss, fwd, t))}
    if classification or loss == "cross_entropy":
        out["accuracy"] = jnp.mean(jnp.argmax(fwd.a[-1], axis=-1) == jnp.argmax(t, axis=-1))
    return out
