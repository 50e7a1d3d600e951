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

__all__ = ["__version__", "Circuit", "Equilibrium", "Reason", "ReducedBlock", "Trajectory", "continue_to_rest", "fixed_point", "jacobian", "simulate"]


def __getattr__(name: str):
    """The public API, imported on first use: ``import neurodyn`` (and ``neurodyn
    --version`` or ``--help``) starts no JAX. The circuit kinds register with it."""
    if name in __all__:
        from . import circuits  # noqa: F401  (registers the circuit kinds)
        from . import core

        value = getattr(core, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'neurodyn' has no attribute '{name}'")
