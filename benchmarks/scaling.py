"""How dynamic-inversion steady states scale: batch, width and depth, both fixed-point paths.

What is measured
----------------
``nd.fixed_point`` on the nonlinear DI controller (tanh, leak 0.01) with its defaults, by
``method="equilibrium"`` (Newton on the reduced controllers, block by block, verified by
every sample's spectral abscissa), ``method="ode"`` (Tsit5 until the steady-state test
passes at the hand-off tolerance, then the same Newton and verification) and
``method="continuation"`` (backward-Euler steps that grow, each solved through the loops'
Schur complements and limited by the spectral abscissa, to the same hand-off; in the depth
scan also ``continuation_unlimited``, without that limit and its eigenproblems), over three
one-factor scans around the MNIST output layer (width 1000, one layer, 1000 samples):

- batch 1, 10, 100, 1,000, 10,000;
- input width d_0 = 100, 500, 1,000, 2,000, 4,000 (layer d_0 -> 10);
- depth 1, 2, 4: 1000 -> 10, 1000 -> 100 -> 10, 1000 -> 100 -> 100 -> 100 -> 10.

Set-ups are well-posed: layer l has W_l ~ U(-s_l, s_l) with s_l = 0.01 sqrt(1000 / d_{l-1})
and B_l = -50 W_l^T (a loop gain W_l B_l of about -1.7 at every width), and the output
errors delta_out ~ N(0, 1) are scaled so that the linear circuit's errors (g = identity,
closed form) peak at 0.5 in every layer: tanh is used well inside its range, nothing
saturates. Every configuration runs in a fresh process (``--one``): one call compiles and
warms up (``compile_s`` is that call minus the best one), then the best of ``--repeats``
calls is reported, with ``peak_mb``, the growth of the process's peak resident memory over
the configuration's first call (it includes XLA's compilation), beside ``state_mb``, the
size of the batch's state (every ``delta`` and ``u``). All cores are used.

Run::

    python benchmarks/scaling.py                   # every configuration (~10 min on 2 cores)
    python benchmarks/scaling.py --quick           # small batches and widths only
    python benchmarks/scaling.py --methods continuation continuation_unlimited
    python benchmarks/scaling.py --json scaling.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

BASE = dict(batch=1000, sizes=[1000, 10])
SCANS = {
    "batch": [dict(BASE, batch=b) for b in (1, 10, 100, 1000, 10000)],
    "width": [dict(BASE, sizes=[d, 10]) for d in (100, 500, 1000, 2000, 4000)],
    "depth": [dict(BASE, sizes=s) for s in ([1000, 10], [1000, 100, 10], [1000, 100, 100, 100, 10])],
}
QUICK = {
    "batch": [dict(BASE, batch=b) for b in (1, 10, 100)],
    "width": [dict(BASE, batch=100, sizes=[d, 10]) for d in (100, 500)],
    "depth": [dict(BASE, batch=100, sizes=s) for s in ([1000, 10], [1000, 100, 10])],
}
#: name in the table -> ``fixed_point`` arguments
METHODS = {
    "equilibrium": dict(method="equilibrium"),
    "ode": dict(method="ode"),
    "continuation": dict(method="continuation"),
    "continuation_unlimited": dict(method="continuation", limit_unstable=False),
}
#: the scans that run each method: the continuation without its step limit (no
#: eigenproblem per step) only where the loops are wide enough for that to matter
SCAN_METHODS = {"batch": ("equilibrium", "ode", "continuation"), "width": ("equilibrium", "ode", "continuation"), "depth": tuple(METHODS)}
#: the largest |delta| of the linear circuit's steady state, in every layer
PEAK_ERROR = 0.5
LEAK = 0.01


def setup(sizes, batch, seed=0):
    """The circuit and its inputs (module docstring)."""
    import jax.numpy as jnp
    import numpy as np

    from neurodyn.circuits import DynamicInversion
    from neurodyn.core.nonlinearities import parse

    rng = np.random.default_rng(seed)
    W = [rng.uniform(-s, s, size=(d1, d0)) for d0, d1 in zip(sizes, sizes[1:]) for s in [0.01 * np.sqrt(1000 / d0)]]
    W, B = tuple(jnp.asarray(w) for w in W), tuple(jnp.asarray(-50.0 * w.T) for w in W)
    L = len(W)
    linear = DynamicInversion(W=W, B=B, alpha=LEAK, g=tuple(parse("linear") for _ in range(L)))
    delta_out = rng.standard_normal((batch, sizes[-1]))
    import jax

    closed = jax.vmap(linear.closed_form)({"delta_out": jnp.asarray(delta_out)})
    peak = max(float(jnp.max(jnp.abs(closed[f"delta_{i}"]))) for i in range(L))
    circuit = DynamicInversion(W=W, B=B, alpha=LEAK, g=tuple(parse("tanh") for _ in range(L)))
    return circuit, {"delta_out": jnp.asarray(delta_out * PEAK_ERROR / peak)}


def run_one(config: dict, method: str, repeats: int) -> dict:
    """One configuration in this process (call it in a fresh one)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import numpy as np

    import neurodyn as nd

    circuit, inputs = setup(config["sizes"], config["batch"])
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    eq = nd.fixed_point(circuit, inputs, **METHODS[method])
    first = time.perf_counter() - start
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        eq = nd.fixed_point(circuit, inputs, **METHODS[method])
        times.append(time.perf_counter() - start)
    best = min(times)
    state_mb = sum(np.asarray(v).nbytes for v in eq.state.values()) / 2**20
    return {
        **config, "method": method, "best_s": best, "compile_s": first - best, "samples_per_s": config["batch"] / best,
        "peak_mb": peak_mb, "state_mb": state_mb, "peak_over_state": peak_mb / state_mb,
        "reason": eq.reason, "stable": int(np.sum(eq.stable)), "newton_steps": eq.newton_steps,
        "ode_steps": eq.trajectory.num_steps if eq.trajectory is not None else None,
        "max_abs_delta_0": float(np.max(np.abs(eq.state["delta_0"]))),
    }


def run_all(scans: dict, repeats: int, methods=tuple(METHODS)) -> list[dict]:
    rows = []
    for scan, configs in scans.items():
        for config in configs:
            for method in (m for m in SCAN_METHODS[scan] if m in methods):
                cmd = [sys.executable, __file__, "--one", json.dumps(config), "--method", method, "--repeats", str(repeats)]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    raise SystemExit(f"configuration {config} ({method}) failed: {done.stderr.strip().splitlines()[-1:]}")
                row = {"scan": scan, **json.loads(done.stdout.strip().splitlines()[-1])}
                rows.append(row)
                print(table_row(row), flush=True)
    return rows


HEADER = "| scan | sizes | batch | method | samples/s | best s | compile s | peak MB | state MB | peak / state | steps (ODE or continuation, Newton) |\n|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|"


def table_row(r: dict) -> str:
    sizes = "->".join(map(str, r["sizes"]))
    steps = f"{r['ode_steps'] if r['ode_steps'] is not None else '-'}, {r['newton_steps']}"
    ok = "" if r["reason"] == "converged" and r["stable"] == r["batch"] else f" ({r['reason']}, stable {r['stable']}/{r['batch']})"
    return (f"| {r['scan']} | {sizes} | {r['batch']} | {r['method']}{ok} | {r['samples_per_s']:,.0f} | {r['best_s']:.3f} | {r['compile_s']:.2f} | "
            f"{r['peak_mb']:.0f} | {r['state_mb']:.1f} | {r['peak_over_state']:.1f} | {steps} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="small batches and widths only")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS), help="a subset of the methods (default all)")
    p.add_argument("--json")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--method", choices=METHODS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(json.loads(args.one), args.method, args.repeats)))
        return 0
    print(HEADER)
    rows = run_all(QUICK if args.quick else SCANS, args.repeats, tuple(args.methods))
    if args.json:
        import jax

        machine = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "jax": jax.__version__, "device": jax.devices()[0].platform}
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "machine": machine}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
