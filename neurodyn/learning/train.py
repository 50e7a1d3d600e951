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

__all__ = ["SGD", "apply_updates", "clip_norm", "run_steps", "run_steps_seeds", "stack", "unstack", "same_structure", "epoch_order", "batches", "evaluate"]


@eqx.filter_jit
def run_steps(rule: Rule, network: Network, loss: str, opt: SGD, xs, ts) -> tuple[Network, Rule]:
    """One ``lax.scan`` over mini-batches ``xs`` (steps, batch, d_0): the network and the
    rule (its own parameters) after them."""

    def body(carry, xt):
        net, r = carry
        return r.step(net, *xt, loss, opt), None

    (network, rule), _ = jax.lax.scan(body, (network, rule), (xs, ts))
    return network, rule


@eqx.filter_jit
def run_steps_seeds(rules: Rule, networks: Network, loss: str, opt: SGD, xs, ts) -> tuple[Network, Rule]:
    """:func:`run_steps` for several seeds in one program: ``rules`` and ``networks`` stacked
    along a leading seed axis (:func:`stack`), ``xs``, ``ts`` of shape (seeds, steps, batch,
    d). The seeds' steps run side by side (``vmap``): one program, wider matrix products."""
    return eqx.filter_vmap(run_steps, in_axes=(0, 0, None, None, 0, 0))(rules, networks, loss, opt, xs, ts)


def stack(trees: list):
    """Modules of one structure as one, their arrays stacked along a new leading axis."""
    arrays = [eqx.filter(t, eqx.is_array) for t in trees]
    return eqx.combine(jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *arrays), eqx.filter(trees[0], eqx.is_array, inverse=True))


def unstack(tree, i: int):
    """Entry ``i`` of a :func:`stack`."""
    arrays, static = eqx.partition(tree, eqx.is_array)
    return eqx.combine(jax.tree_util.tree_map(lambda x: x[i], arrays), static)


def same_structure(trees: list) -> bool:
    """Whether modules can be stacked: the same non-array fields, arrays of the same shapes
    and dtypes."""
    flat = [jax.tree_util.tree_flatten(eqx.filter(t, eqx.is_array)) for t in trees]
    kinds = [(treedef, [(x.shape, x.dtype) for x in leaves]) for leaves, treedef in flat]
    statics = [eqx.filter(t, eqx.is_array, inverse=True) for t in trees]
    return all(k == kinds[0] for k in kinds) and all(eqx.tree_equal(s, statics[0]) is True for s in statics)


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
