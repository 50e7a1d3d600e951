"""Analysis tests run in float64, as the CLI does."""

import jax

jax.config.update("jax_enable_x64", True)

import neurodyn  # noqa: E402,F401  (registers the circuit kinds)
