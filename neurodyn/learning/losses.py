"""Losses and the output error ``delta_L`` they define (``delta_L = t - y`` for the squared error).

Errors point downhill: ``delta_L = -dL/da_L``, so ``W_l += eta delta_l h_{l-1}^T`` descends.
Each loss is a :class:`Loss` that registers its name where it is defined; experiment files
name it (``loss = "cross_entropy"``) and the rules pass that name to :func:`output_error`
and :func:`output_descent`.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from equinox import AbstractClassVar

#: name -> loss, filled by :func:`register`
REGISTRY: dict[str, "Loss"] = {}


class Loss(eqx.Module):
    """A loss ``L(o, t)`` of the network's output activity ``o`` (:meth:`Network.output`)."""

    name: AbstractClassVar[str]

    @abc.abstractmethod
    def value(self, forward, t):
        """``L`` per sample."""

    @abc.abstractmethod
    def descent(self, network, forward, t):
        """``-dL/do``: a target step is ``o_hat = o + eta_hat (-dL/do)`` (thesis 4.4)."""

    @abc.abstractmethod
    def error(self, network, forward, t):
        """``delta_L = -dL/da_L``."""


def register(cls: type["Loss"]) -> type["Loss"]:
    """Class decorator: make a loss available by name."""
    REGISTRY[cls.name] = cls()
    return cls


@register
class SquaredError(Loss):
    """``0.5 ||y - t||^2`` of the output ``y = h_L``."""

    name = "squared_error"

    def value(self, forward, t):
        return squared_error(forward.h[-1], t)

    def descent(self, network, forward, t):
        return t - forward.h[-1]

    def error(self, network, forward, t):
        """``(t - y) s'(a_L)`` (``t - y`` for a linear output, as in the paper)."""
        return (t - forward.h[-1]) * network.s[-1].deriv(forward.a[-1])


@register
class CrossEntropy(Loss):
    """Softmax cross-entropy of the output pre-activation ``o = a_L`` against one-hot ``t``."""

    name = "cross_entropy"

    def value(self, forward, t):
        return cross_entropy(forward.a[-1], t)

    def descent(self, network, forward, t):
        return t - jax.nn.softmax(forward.a[-1], axis=-1)

    def error(self, network, forward, t):
        return self.descent(network, forward, t)  # the output activity is o = a_L itself


LOSSES = tuple(REGISTRY)


def squared_error(y, t):
    """``0.5 ||y - t||^2`` per sample (linear output)."""
    return 0.5 * jnp.sum((y - t) ** 2, axis=-1)


def cross_entropy(a_out, t):
    """Softmax cross-entropy of the output pre-activation ``a_L`` against one-hot ``t``."""
    return -jnp.sum(t * jax.nn.log_softmax(a_out, axis=-1), axis=-1)


def get(name: str) -> Loss:
    """The loss called ``name``; ValueError naming the choices otherwise."""
    if name not in REGISTRY:
        raise ValueError(f"unknown loss '{name}' (choose from {', '.join(REGISTRY)})")
    return REGISTRY[name]


def loss_value(name: str, forward, t):
    """``L`` per sample for the loss called ``name``."""
    return get(name).value(forward, t)


def output_descent(name: str, network, forward, t):
    """``-dL/do`` on the output activity ``o`` of :meth:`Network.output`: ``t - h_L`` for
    squared error, ``t - softmax(a_L)`` for cross-entropy (``o = a_L``)."""
    return get(name).descent(network, forward, t)


def output_error(name: str, network, forward, t):
    """``delta_L = -dL/da_L``: ``(t - y) s'(a_L)`` for squared error, ``t - softmax(a_L)``
    for cross-entropy."""
    return get(name).error(network, forward, t)
