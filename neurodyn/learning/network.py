"""Fully connected networks with biases and a nonlinearity per layer.

``a_l = W_l h_{l-1} + b_l``, ``h_l = s_l(a_l)``, ``h_0 = x``; ``W_l`` is ``d_l x d_{l-1}``.
A network is an :class:`equinox.Module`; its forward pass keeps every ``a_l`` and ``h_l``
because the credit-assignment rules need them. The output layer's nonlinearity may be
``softmax`` (for the cross-entropy loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..core.layers import LayerSizes
from ..core.nonlinearities import parse


class Softmax(eqx.Module):
    """Output nonlinearity paired with the cross-entropy loss (``delta_L = t - softmax(a)``)."""

    name: str = eqx.field(static=True, default="softmax")

    def __call__(self, x):
        return jax.nn.softmax(x, axis=-1)

    def __str__(self) -> str:
        return "softmax"


def parse_output(name: str):
    return Softmax() if name == "softmax" else parse(name)


class Network(LayerSizes, eqx.Module):
    """An MLP ``sizes = [d_0, ..., d_L]`` with ``L`` weight matrices, biases and nonlinearities."""

    W: tuple
    b: tuple
    s: tuple  # s[l-1] is the nonlinearity of layer l
    biases: bool = eqx.field(static=True, default=True)  # False: b stays zero (apply_updates skips it)

    def forward(self, x) -> "Forward":
        """One sample (or a batch, leading axis): every ``a_l`` and ``h_l``."""
        h, a = [x], []
        for W, b, s in zip(self.W, self.b, self.s):
            # W h without materialising W^T (XLA on CPU copied the transpose every call)
            a.append(jnp.einsum("...j,ij->...i", h[-1], W) + b)
            h.append(s(a[-1]))
        return Forward(a=tuple(a), h=tuple(h))

    def __call__(self, x):
        return self.forward(x).h[-1]

    @property
    def softmax_output(self) -> bool:
        return isinstance(self.s[-1], Softmax)

    def target_nonlinearity(self, l: int):
        """``s_l`` as seen by target propagation: the output of a softmax layer is its
        pre-activation ``a_L`` (the loss holds the softmax), so there it is the identity."""
        return parse("linear") if l == self.L and self.softmax_output else self.s[l - 1]

    def output(self, fwd: "Forward"):
        """The output activity ``o`` that targets and Gauss-Newton steps live on: ``h_L``,
        or ``a_L`` for a softmax output."""
        return fwd.a[-1] if self.softmax_output else fwd.h[-1]

    def layer(self, l: int, h):
        """``f_l(h_{l-1}) = s_l(W_l h_{l-1} + b_l)`` in target space (:meth:`target_nonlinearity`)."""
        return self.target_nonlinearity(l)(jnp.einsum("...j,ij->...i", h, self.W[l - 1]) + self.b[l - 1])

    def head(self, l: int, h_l):
        """``f_{l,L}(h_l)``: the output activity ``o`` reached from layer ``l``'s activity."""
        for k in range(l + 1, self.L + 1):
            h_l = self.layer(k, h_l)
        return h_l


@dataclass(frozen=True)
class Forward:
    """``a[l-1] = a_l`` (l = 1..L) and ``h[l] = h_l`` (l = 0..L)."""

    a: tuple
    h: tuple


jax.tree_util.register_dataclass(Forward, data_fields=["a", "h"], meta_fields=[])


INITS = ("uniform", "normal")


def init_network(
    sizes, nonlinearities, *, seed: int = 0, scale: float = 0.01, init: str = "uniform", biases: bool = True, dtype=jnp.float64
) -> Network:
    """Weights drawn layer by layer from ``numpy.random.default_rng(seed)``, biases zero.

    ``init = "uniform"``: ``W_l ~ U(-scale, scale)`` (supplement 7.7.2-7.7.4: scale 0.01);
    ``init = "normal"``: ``W_l ~ N(0, scale^2 / d_{l-1})`` (scale 1: variance 1 / fan-in).
    ``nonlinearities`` has one name per layer 1..L (``softmax`` allowed last);
    ``biases = False`` keeps every bias at zero during training.
    """
    if len(nonlinearities) != len(sizes) - 1:
        raise ValueError(f"one nonlinearity per layer: expected {len(sizes) - 1}, got {len(nonlinearities)}")
    if init not in INITS:
        raise ValueError(f"unknown init '{init}' (choose from {', '.join(INITS)})")
    rng = np.random.default_rng(seed)

    def draw(shape):
        return rng.uniform(-scale, scale, shape) if init == "uniform" else rng.normal(size=shape) * (scale / np.sqrt(shape[1]))

    W = tuple(jnp.asarray(draw((sizes[l], sizes[l - 1])), dtype) for l in range(1, len(sizes)))
    b = tuple(jnp.zeros(d, dtype) for d in sizes[1:])
    s = tuple(parse_output(n) if l == len(nonlinearities) - 1 else parse(n) for l, n in enumerate(nonlinearities))
    return Network(W=W, b=b, s=s, biases=biases)
