"""Losses and the output error ``delta_L`` they define (``delta_L = t - y`` for the squared error).

Errors point downhill: ``delta_L = -dL/da_L``, so ``W_l += eta delta_l h_{l-1}^T`` descends.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

LOSSES = ("squared_error", "cross_entropy")


def squared_error(y, t):
    """``0.5 ||y - t||^2`` per sample (linear output)."""
    return 0.5 * jnp.sum((y - t) ** 2, axis=-1)


def cross_entropy(a_out, t):
    """Softmax cross-entropy of the output pre-activation ``a_L`` against one-hot ``t``."""
    return -jnp.sum(t * jax.nn.log_softmax(a_out, axis=-1), axis=-1)


def loss_value(name: str, forward, t):
    if name == "squared_error":
        return squared_error(forward.h[-1], t)
    if name == "cross_entropy":
        return cross_entropy(forward.a[-1], t)
    raise ValueError(f"unknown loss '{name}' (choose from {', '.join(LOSSES)})")


def output_descent(name: str, network, forward, t):
    """``-dL/do`` on the output activity ``o`` of :meth:`Network.output`: ``t - h_L`` for
    squared error, ``t - softmax(a_L)`` for cross-entropy (``o = a_L``). A target step is
    ``o_hat = o + eta_hat (-dL/do)``, i.e. ``h_L - eta_hat e_L`` (thesis 4.4)."""
    if name == "cross_entropy":
        return t - jax.nn.softmax(forward.a[-1], axis=-1)
    return t - forward.h[-1]


def output_error(name: str, network, forward, t):
    """``delta_L = -dL/da_L``: ``(t - y) s'(a_L)`` for squared error (``t - y`` for a linear
    output, as in the paper), ``t - softmax(a_L)`` for cross-entropy."""
    if name == "cross_entropy":
        return t - jax.nn.softmax(forward.a[-1], axis=-1)
    s = network.s[-1]
    return (t - forward.h[-1]) * s.deriv(forward.a[-1])
