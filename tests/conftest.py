"""Analysis tests run in float64, as the CLI does.

Most tests are dominated by compiling small programs, not by running them, so the suite
asks XLA for little optimisation (``jax_disable_most_optimizations``: about 20% less time
on the 2-core machine, the same results to the tolerances the tests use). Set
``NEURODYN_TEST_OPTIMIZED=1`` to run the suite with the optimisations users get; tests
that start ``neurodyn`` in a subprocess always run optimised.
"""

import os

# the CLI's persistent compilation cache stays off in tests (its writes cost the suite more
# than its hits save); tests that start ``neurodyn`` in a subprocess inherit this too
os.environ.setdefault("NEURODYN_CACHE_DIR", "off")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
if os.environ.get("NEURODYN_TEST_OPTIMIZED", "") != "1":
    jax.config.update("jax_disable_most_optimizations", True)

import neurodyn  # noqa: E402,F401  (registers the circuit kinds)
