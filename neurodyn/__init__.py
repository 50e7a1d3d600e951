"""neurodyn: biologically plausible credit-assignment circuits as ODEs (JAX + diffrax)."""

__version__ = "0.1.0"

from . import circuits  # noqa: F401  (registers the circuit kinds)
from .core import Circuit, Equilibrium, ReducedBlock, Trajectory, fixed_point, jacobian, simulate

__all__ = ["__version__", "Circuit", "Equilibrium", "ReducedBlock", "Trajectory", "fixed_point", "jacobian", "simulate"]
