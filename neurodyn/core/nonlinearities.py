"""Element-wise transfer functions with derivative and (where it exists) inverse.

Names follow the model-file contract: ``linear``, ``tanh``, ``relu`` and
``leaky_relu:<slope>`` (slope in (0, 1], e.g. ``leaky_relu:0.35``). Each transfer function
is a subclass of :class:`Nonlinearity` that registers its name where it is defined;
:func:`parse` looks names up in :data:`REGISTRY`.
"""

import abc
import difflib
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
from equinox import AbstractClassVar

#: name -> class, filled by :func:`register`
REGISTRY: dict[str, type["Nonlinearity"]] = {}


class Nonlinearity(eqx.Module):
    """A transfer function ``s`` with ``s'`` and, where ``invertible``, ``s^{-1}``.

    A subclass sets ``name`` (its model-file name), defines ``__call__`` and ``deriv``,
    and either ``inverse`` or ``invertible = False``. A parameterised one (``leaky_relu``)
    reads its parameter in :meth:`from_arg`.
    """

    name: AbstractClassVar[str]
    invertible: ClassVar[bool] = True

    @abc.abstractmethod
    def __call__(self, x):
        """``s(x)``."""

    @abc.abstractmethod
    def deriv(self, x):
        """``s'(x)``."""

    def inverse(self, y):
        """``s^{-1}(y)``."""
        raise ValueError(f"{self.name} has no inverse; use leaky_relu:<slope> for an invertible variant")

    @classmethod
    def from_arg(cls, arg: str) -> "Nonlinearity":
        """The instance for ``name:arg`` (``arg`` empty when the spec has none)."""
        if arg:
            raise ValueError(f"'{cls.name}' takes no parameter, got '{cls.name}:{arg}'")
        return cls()

    @classmethod
    def usage(cls) -> str:
        """How a model file writes it."""
        return cls.name

    def __str__(self) -> str:
        return self.name


def register(cls: type[Nonlinearity]) -> type[Nonlinearity]:
    """Class decorator: make a transfer function available by name."""
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise TypeError(f"nonlinearity '{cls.name}' registered twice")
    REGISTRY[cls.name] = cls
    return cls


@register
class Linear(Nonlinearity):
    """``s(x) = x``."""

    name: ClassVar[str] = "linear"

    def __call__(self, x):
        return x

    def deriv(self, x):
        return jnp.ones_like(x)

    def inverse(self, y):
        return y


@register
class Tanh(Nonlinearity):
    """``s(x) = tanh x``; the inverse is NaN outside (-1, 1)."""

    name: ClassVar[str] = "tanh"

    def __call__(self, x):
        return jnp.tanh(x)

    def deriv(self, x):
        return 1.0 - jnp.tanh(x) ** 2

    def inverse(self, y):
        return jnp.arctanh(y)


@register
class ReLU(Nonlinearity):
    """``s(x) = max(x, 0)``, with ``s'(0) = 0``; not invertible."""

    name: ClassVar[str] = "relu"
    invertible: ClassVar[bool] = False

    def __call__(self, x):
        return jnp.maximum(x, 0.0)

    def deriv(self, x):
        return jnp.where(x > 0, 1.0, 0.0).astype(x.dtype)


@register
class LeakyReLU(Nonlinearity):
    """``s(x) = x`` for ``x > 0``, ``slope x`` otherwise (``slope`` in (0, 1], default 0.01)."""

    name: ClassVar[str] = "leaky_relu"
    slope: float = eqx.field(static=True, default=0.01)

    def __check_init__(self):
        if not 0.0 < self.slope <= 1.0:
            raise ValueError(f"leaky_relu slope must lie in (0, 1], got {self.slope}")

    def __call__(self, x):
        return jnp.where(x > 0, x, self.slope * x)

    def deriv(self, x):
        return jnp.where(x > 0, 1.0, self.slope).astype(x.dtype)

    def inverse(self, y):
        return jnp.where(y > 0, y, y / self.slope)

    @classmethod
    def from_arg(cls, arg: str) -> "LeakyReLU":
        try:
            slope = float(arg) if arg else 0.01
        except ValueError:
            raise ValueError(f"leaky_relu slope must be a number, e.g. 'leaky_relu:0.1', got '{arg}'") from None
        return cls(slope)

    @classmethod
    def usage(cls) -> str:
        return "leaky_relu:<slope>"

    def __str__(self) -> str:
        return f"leaky_relu:{self.slope:g}"


def parse(spec: str) -> Nonlinearity:
    """Parse a nonlinearity name, e.g. ``"tanh"`` or ``"leaky_relu:0.1"``.

    Raises ``ValueError`` with the closest valid name when the name is unknown.
    """
    if not isinstance(spec, str):
        raise ValueError(f"nonlinearity must be a string, got {spec!r}")
    head, colon, arg = spec.strip().partition(":")
    if colon and not arg:
        raise ValueError(f"'{spec}' ends with ':' but gives no parameter; write '{head}' or e.g. 'leaky_relu:0.1'")
    if head not in REGISTRY:
        close = difflib.get_close_matches(head, list(REGISTRY), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        names = ", ".join(c.usage() for c in REGISTRY.values())
        raise ValueError(f"unknown nonlinearity '{spec}' (choose from {names}){hint}")
    return REGISTRY[head].from_arg(arg)
