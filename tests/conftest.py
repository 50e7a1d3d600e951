"""Analysis tests run in float64, as the CLI does.

Most tests are dominated by compiling small programs, not by running them, so the suite
asks XLA for little optimisation (``jax_disable_most_optimizations``: about 20% less time
on the 2-core machine, the same results to the tolerances the tests use). Set
``NEURODYN_TEST_OPTIMIZED=1`` to run the suite with the optimisations and code generation
users get; tests that start ``neurodyn`` in a subprocess always run optimised (with the
faster-compiling code generation below).
"""

import os
import subprocess
import sys

# the CLI's persistent compilation cache stays off in tests (its writes cost the suite more
# than its hits save); tests that start ``neurodyn`` in a subprocess inherit this too
os.environ.setdefault("NEURODYN_CACHE_DIR", "off")

#: XLA CPU code generation without the fusion emitters and the thunk runtime: half the
#: compile time of the suite's small programs (most of its time), the same results to the
#: tests' tolerances, though large programs then run up to 40% slower, which is why the
#: package does not set them for users. An XLA that does not know a flag aborts, so they are
#: tried once in a subprocess (by the first process; pytest-xdist's workers inherit the answer).
FAST_COMPILE_FLAGS = "--xla_cpu_use_fusion_emitters=false --xla_cpu_use_thunk_runtime=false"


def _with_fast_compile_flags() -> str:
    flags = os.environ.get("XLA_FLAGS", "")
    if os.environ.get("NEURODYN_TEST_OPTIMIZED", "") == "1" or FAST_COMPILE_FLAGS in flags:
        return flags
    if "NEURODYN_TEST_FAST_COMPILE" not in os.environ:
        probe = f"{flags} {FAST_COMPILE_FLAGS}".strip()
        run = subprocess.run(
            [sys.executable, "-c", "import jax.numpy as jnp; jnp.zeros(2).block_until_ready()"],
            env={**os.environ, "XLA_FLAGS": probe}, capture_output=True, timeout=300,
        )
        os.environ["NEURODYN_TEST_FAST_COMPILE"] = "1" if run.returncode == 0 else "0"
    return f"{flags} {FAST_COMPILE_FLAGS}".strip() if os.environ["NEURODYN_TEST_FAST_COMPILE"] == "1" else flags


os.environ["XLA_FLAGS"] = _with_fast_compile_flags()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
# two CPU devices, as `neurodyn sweep` presents on the 2-core CI machine: stacked seeds
# spread over both (neurodyn.learning.train.spread), whatever order the tests run in
jax.config.update("jax_num_cpu_devices", 2)
if os.environ.get("NEURODYN_TEST_OPTIMIZED", "") != "1":
    jax.config.update("jax_disable_most_optimizations", True)

import neurodyn  # noqa: E402,F401  (registers the circuit kinds)
