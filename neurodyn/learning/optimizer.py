"""Plain SGD as in the paper (supplement Eq. 2, section 7.7): learning rate, weight decay,
clipping of the backpropagated signals, and layers held fixed.

``W_l += eta (dW_l - lambda W_l)`` and ``b_l += eta db_l`` for every layer that is not
frozen; a network built without biases keeps them at zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax.numpy as jnp


@dataclass(frozen=True)
class SGD:
    """Learning rate, weight decay, clipping (None: off; ``clip_output`` clips the output
    error as well), mini-batch size and the layers (1-based) whose parameters stay fixed."""

    lr: float
    weight_decay: float = 0.0
    clip: float | None = None
    batch_size: int = 1
    clip_output: bool = False
    frozen: tuple[int, ...] = ()


def clip_norm(delta, clip):
    """Scale each sample's signal (last axis) to norm at most ``clip``."""
    if clip is None:
        return delta
    norm = jnp.linalg.norm(delta, axis=-1, keepdims=True)
    return delta * jnp.minimum(1.0, clip / jnp.maximum(norm, jnp.finfo(delta.dtype).tiny))


def apply_updates(network, updates: tuple[tuple, tuple], opt: SGD):
    """``network`` after one SGD step along ``updates = (dW, db)`` (per unit rate)."""
    dW, db = updates
    W = tuple(
        w if l in opt.frozen else w + opt.lr * (g - opt.weight_decay * w) for l, (w, g) in enumerate(zip(network.W, dW), start=1)
    )
    if not network.biases:
        return eqx.tree_at(lambda n: n.W, network, W)
    b = tuple(v if l in opt.frozen else v + opt.lr * g for l, (v, g) in enumerate(zip(network.b, db), start=1))
    return eqx.tree_at(lambda n: (n.W, n.b), network, (W, b))
