"""Where the time of a vmapped seed step goes, on one CPU device: why vmapping 8 seeds of a
small network saves only part of the sequential time (``sweep_seeds.py`` measures the
ratio itself), and what an evaluation of the seeds costs.

Printed, each the best of ``--repeats`` runs after compilation, in microseconds per step of
a 500-step ``lax.scan`` (float64):

``step``
    One BP training step of a 20-30-10 tanh network on a mini-batch of 10 (``run_steps``)
    for one seed, and for 8 seeds vmapped (``run_steps_seeds``), also per seed.
``dots`` / ``tanh``
    The two matrix products of a layer's forward pass and update (``x W^T`` and
    ``d^T x``, batch 10, 20 -> 30) and a ``tanh`` of a 30 x 20 matrix, alone in a scan, for
    1 and 8 seeds: how the parts of the step grow with the seeds.
``evaluation``
    The angles of FA's update to BP's and to the Gauss-Newton-target update on 100 probe
    samples, for 8 seeds vmapped (``alignment``), with and without the Gauss-Newton angle,
    in milliseconds per call.

Run: ``python benchmarks/vmap_anatomy.py [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)
from neurodyn.io.resources import present_cores  # noqa: E402

present_cores(1)  # one device: the seeds side by side, not spread
import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from neurodyn.learning.metrics import alignment  # noqa: E402
from neurodyn.learning.network import init_network  # noqa: E402
from neurodyn.learning.rules import make_rule  # noqa: E402
from neurodyn.learning.train import SGD, run_steps, run_steps_seeds, stack  # noqa: E402

SEEDS, STEPS, BATCH, SIZES = 8, 500, 10, [20, 30, 10]


def best(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def step_times(repeats: int) -> dict:
    nets = [init_network(SIZES, ["tanh", "linear"], seed=s, init="normal", scale=1.0) for s in range(SEEDS)]
    rules = [make_rule("bp", n, seed=s)[0] for s, n in enumerate(nets)]
    opt = SGD(lr=0.01, weight_decay=0.0, clip=None, batch_size=BATCH, clip_output=False, frozen=())
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.normal(size=(SEEDS, STEPS, BATCH, SIZES[0])))
    ts = jnp.asarray(rng.normal(size=(SEEDS, STEPS, BATCH, SIZES[-1])))
    rb, nb = stack(rules), stack(nets)
    one = best(lambda: jax.block_until_ready(run_steps(rules[0], nets[0], "squared_error", opt, xs[0], ts[0])), repeats)
    many = best(lambda: jax.block_until_ready(run_steps_seeds(rb, nb, "squared_error", opt, xs, ts)), repeats)
    return {"one seed": one / STEPS * 1e6, f"{SEEDS} seeds": many / STEPS * 1e6, f"{SEEDS} seeds, per seed": many / STEPS / SEEDS * 1e6}


def part_times(repeats: int) -> dict:
    rng = np.random.default_rng(0)

    @jax.jit
    def dots(W, X):
        def body(W, x):
            d = jnp.einsum("sbi,soi->sbo", x, W)
            return W + 1e-3 * jnp.einsum("sbo,sbi->soi", d, x), None
        return jax.lax.scan(body, W, X)[0]

    @jax.jit
    def tanh(W, X):
        def body(W, x):
            return jnp.tanh(W) * 0.5 + x[:, :1, :1].sum(), None
        return jax.lax.scan(body, W, X)[0]

    out = {}
    for s in (1, SEEDS):
        W = jnp.asarray(rng.normal(size=(s, SIZES[1], SIZES[0])))
        X = jnp.asarray(rng.normal(size=(STEPS, s, BATCH, SIZES[0])))
        for name, fn in (("dots", dots), ("tanh", tanh)):
            out[f"{name}, {s} seed{'s' if s > 1 else ''}"] = best(lambda fn=fn: jax.block_until_ready(fn(W, X)), repeats) / STEPS * 1e6
    return out


def evaluation_times(repeats: int) -> dict:
    nets = [init_network(SIZES, ["tanh", "linear"], seed=s, init="normal", scale=1.0) for s in range(SEEDS)]
    rules = stack([make_rule("fa", n, seed=s, feedback="random")[0] for s, n in enumerate(nets)])
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(SEEDS, 100, SIZES[0])))
    t = jnp.asarray(rng.normal(size=(SEEDS, 100, SIZES[-1])))
    arrays = eqx.if_array(0)
    out = {}
    for gn in (True, False):
        fn = eqx.filter_vmap(lambda r, n, x, t, gn=gn: alignment(r, n, "squared_error", x, t, gauss_newton=gn), in_axes=(arrays, arrays, 0, 0))
        out[f"evaluation, {SEEDS} seeds, {'with' if gn else 'without'} the Gauss-Newton angle (ms)"] = best(
            lambda fn=fn: jax.block_until_ready(fn(rules, stack(nets), x, t)), repeats) * 1e3
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    print(f"{jax.devices()[0].platform}, {jax.device_count()} device")
    for part in (step_times, part_times, evaluation_times):
        for name, value in part(args.repeats).items():
            print(f"{name:<70} {value:8.2f}")


if __name__ == "__main__":
    main()
