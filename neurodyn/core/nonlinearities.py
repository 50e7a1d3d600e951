"""Element-wise transfer functions with derivative and (where it exists) inverse.

Names follow the model-file contract: ``linear``, ``tanh``, ``relu`` and
``leaky_relu:<slope>`` (slope in (0, 1], e.g. ``leaky_relu:0.35``).
"""

from __future__ import annotations

import difflib

import equinox as eqx
import jax.numpy as jnp

NAMES = ("linear", "tanh", "relu", "leaky_relu")


class Nonlinearity(eqx.Module):
    """A transfer function ``s`` with ``s'`` and ``s^{-1}`` ."""

    name: str = eqx.field(static=True)
    slope: float = eqx.field(static=True, default=0.0)

    def __check_init__(self):
        if self.name not in NAMES:
            close = difflib.get_close_matches(str(self.name), NAMES, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ValueError(f"unknown nonlinearity '{self.name}' (choose from {', '.join(NAMES)}){hint}")
        if self.name == "leaky_relu" and not 0.0 < self.slope <= 1.0:
            raise ValueError(f"leaky_relu slope must lie in (0, 1], got {self.slope}")

    def __call__(self, x):
        if self.name == "linear":
            return x
        if self.name == "tanh":
            return jnp.tanh(x)
        if self.name == "relu":
            return jnp.maximum(x, 0.0)
        return jnp.where(x > 0, x, self.slope * x)

    def deriv(self, x):
        """``s'(x)``; for relu the derivative at 0 is taken as 0."""
        if self.name == "linear":
            return jnp.ones_like(x)
        if self.name == "tanh":
            return 1.0 - jnp.tanh(x) ** 2
        if self.name == "relu":
            return jnp.where(x > 0, 1.0, 0.0).astype(x.dtype)
        return jnp.where(x > 0, 1.0, self.slope).astype(x.dtype)

    @property
    def invertible(self) -> bool:
        return self.name != "relu"

    def inverse(self, y):
        """``s^{-1}(y)``; tanh gives NaN outside (-1, 1). relu has none."""
        if self.name == "linear":
            return y
        if self.name == "tanh":
            return jnp.arctanh(y)
        if self.name == "leaky_relu":
            return jnp.where(y > 0, y, y / self.slope)
        raise ValueError("relu has no inverse; use leaky_relu:<slope> for an invertible variant")

    def __str__(self) -> str:
        return f"leaky_relu:{self.slope:g}" if self.name == "leaky_relu" else self.name


def parse(spec: str) -> Nonlinearity:
    """Parse a nonlinearity name, e.g. ``"tanh"`` or ``"leaky_relu:0.1"``.

    Raises ``ValueError`` with the closest valid name when the name is unknown.
    """
    if not isinstance(spec, str):
        raise ValueError(f"nonlinearity must be a string, got {spec!r}")
    head, _, arg = spec.strip().partition(":")
    if head not in NAMES:
        close = difflib.get_close_matches(head, NAMES, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"unknown nonlinearity '{spec}' (choose from linear, tanh, relu, leaky_relu:<slope>){hint}")
    if head == "leaky_relu":
        try:
            slope = float(arg) if arg else 0.01
        except ValueError:
            raise ValueError(f"leaky_relu slope must be a number, e.g. 'leaky_relu:0.1', got '{spec}'") from None
        if not 0.0 < slope <= 1.0:
            raise ValueError(f"leaky_relu slope must lie in (0, 1], got {slope}")
        return Nonlinearity("leaky_relu", slope)
    if arg:
        raise ValueError(f"'{head}' takes no parameter, got '{spec}'")
    return Nonlinearity(head)
