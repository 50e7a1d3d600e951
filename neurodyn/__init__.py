"""neurodyn: biologically plausible credit-assignment circuits as ODEs (JAX + diffrax)."""

__version__ = "0.1.0"

import os as _os

# XLA's CPU scheduler that runs independent operations concurrently deadlocks (every thread
# asleep, block_until_ready never returns) on programs with several batched SVDs, as the
# Gauss-Newton analysis of a deep network has (jax 0.10.2, 2 cores: 5 pseudo-inverses of
# (50, 10, 256) hang every time). Turned off unless the user's XLA_FLAGS decides; it must be
# set before JAX starts its CPU backend, i.e. before the first computation.
_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"
if _FLAG not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = f"{_os.environ.get('XLA_FLAGS', '')} {_FLAG}=false".strip()

from . import circuits  # noqa: F401  (registers the circuit kinds)
from .core import Circuit, Equilibrium, ReducedBlock, Trajectory, fixed_point, jacobian, simulate

__all__ = ["__version__", "Circuit", "Equilibrium", "ReducedBlock", "Trajectory", "fixed_point", "jacobian", "simulate"]
