"""The engine: circuits, simulation, fixed points, stability. Knows no algorithm."""

from .circuit import REGISTRY, ArraySpec, Circuit, KindInfo, ReducedBlock, flatten, get_kind, jacobian, register, unflatten
from .continuation import continue_to_rest
from .equilibrium import Equilibrium, fixed_point
from .nonlinearities import Nonlinearity
from .plasticity import Frozen, Plastic
from .results import Reason
from .simulate import SOLVERS, Trajectory, simulate

__all__ = [
    "REGISTRY", "ArraySpec", "Circuit", "KindInfo", "ReducedBlock", "flatten", "get_kind", "jacobian", "register", "unflatten",
    "continue_to_rest", "Equilibrium", "fixed_point", "Nonlinearity", "SOLVERS", "Trajectory", "simulate", "Frozen", "Plastic",
    "Reason",
]
