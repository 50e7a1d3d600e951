"""Seeds of one setting vmapped against the same seeds one after another, and the cost of a
sweep around its trainings.

What is measured (all in one process, float64, the same repeats for every variant):

``steps``
    The training steps alone, compiled beforehand: 8 seeds of BP and of FA (random
    feedback) on a 20-30-10 tanh network (mini-batches of 10, 500 steps per seed) and on
    784-256-10 (online, 1,000 steps), as one ``run_steps_seeds`` call (the seeds vmapped)
    against 8 ``run_steps`` calls. The vmapped call runs twice: on one device, and with
    the seeds spread over the CPU cores (``spread``: JAX presents each core as a device, as
    ``neurodyn sweep`` does with one worker). Ratio of the sequential time to each (the
    issue's goal: >= 3 on 2 cores).
``harness``
    The same 8 trainings end to end through the harness (data, compilation, evaluations
    every 100 steps with every metric, checkpoints, result files; no learning-curve figure,
    as in a sweep): ``run_training_seeds`` against 8 ``run_training`` calls, each into its
    own temporary folder.
``sweep overhead``
    ``neurodyn sweep --workers 1 --no-vmap`` on a file whose [sweep] gives 8 seeds, against
    the same 8 ``run_training`` calls: the difference per trial is what the sweep adds
    (validation, trial files, the results table, the summary and its plot).

Run: ``python benchmarks/sweep_seeds.py [--repeats 3] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
from neurodyn.io.resources import cores, present_cores  # noqa: E402

present_cores(cores())  # as `neurodyn sweep --workers 1` does
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import neurodyn  # noqa: E402,F401
from neurodyn.cli import main as cli  # noqa: E402
from neurodyn.io.experiment import load_experiment  # noqa: E402
from neurodyn.io.training import run_training, run_training_seeds  # noqa: E402
from neurodyn.learning.network import init_network  # noqa: E402
from neurodyn.learning.rules import make_rule  # noqa: E402
from neurodyn.learning.train import SGD, run_steps, run_steps_seeds, spread, spreadable, stack  # noqa: E402
from target_rules import best_time as best  # noqa: E402  (same repeats, best of)

SEEDS, STEPS, BATCH = 8, 500, 10
FILE = """
name = "bench_seeds"
seed = 0
[network]
sizes = [20, 30, 10]
nonlinearities = ["tanh", "linear"]
init = "normal"
init_scale = 1.0
[data]
kind = "nonlinear_regression"
n_train = 1000
n_test = 500
teacher_scale = 1.0
[training]
lr = 0.01
batch_size = 10
steps = 500
eval_every = 100
eval_samples = 500
probe_samples = 100
null_space_samples = 0
[rules.bp]
[rules.fa]
feedback = "random"
"""


#: (rule, sizes, batch, steps) of the ``steps`` cases
STEP_CASES = (("bp", [20, 30, 10], BATCH, STEPS), ("fa", [20, 30, 10], BATCH, STEPS), ("bp", [784, 256, 10], 1, 1000), ("fa", [784, 256, 10], 1, 1000))


def steps_case(rule_name: str, sizes: list, batch: int, steps: int, repeats: int) -> dict:
    nets = [init_network(sizes, ["tanh", "linear"], seed=s, init="normal", scale=1.0) for s in range(SEEDS)]
    rules = [make_rule(rule_name, n, seed=s, **({"feedback": "random"} if rule_name == "fa" else {}))[0] for s, n in enumerate(nets)]
    opt = SGD(lr=0.01, weight_decay=0.0, clip=None, batch_size=batch, clip_output=False, frozen=())
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.normal(size=(SEEDS, steps, batch, sizes[0])))
    ts = jnp.asarray(rng.normal(size=(SEEDS, steps, batch, sizes[-1])))
    rb, nb = stack(rules), stack(nets)
    assert spreadable(run_steps_seeds, rb, nb, "squared_error", opt, xs, ts) == (jax.device_count() > 1)
    spread_args = (spread(rb), spread(nb), "squared_error", opt, spread(xs), spread(ts))

    def vmapped():
        jax.block_until_ready(run_steps_seeds(rb, nb, "squared_error", opt, xs, ts))

    def spread_out():
        jax.block_until_ready(run_steps_seeds(*spread_args))

    def sequential():
        for s in range(SEEDS):
            jax.block_until_ready(run_steps(rules[s], nets[s], "squared_error", opt, xs[s], ts[s]))

    vmapped(), spread_out(), sequential()  # compile all three
    tv, tsp, ts_ = best(vmapped, repeats), best(spread_out, repeats), best(sequential, repeats)
    return {"vmapped_s": tv, "spread_s": tsp, "sequential_s": ts_, "ratio": ts_ / tv, "spread_ratio": ts_ / tsp, "devices": jax.device_count()}


def harness_case(tmp: Path, repeats: int) -> dict:
    path = tmp / "bench.toml"
    path.write_text(FILE)
    exps = [load_experiment(path).model_copy(update={"seed": s}) for s in range(SEEDS)]

    def vmapped():
        run_training_seeds(exps, [tmp / f"v{s}" for s in range(SEEDS)], plot=False)

    def sequential():
        for s, e in enumerate(exps):
            run_training(e, tmp / f"s{s}", plot=False)

    tv, ts_ = best(vmapped, repeats), best(sequential, repeats)
    return {"vmapped_s": tv, "sequential_s": ts_, "ratio": ts_ / tv}


def overhead_case(tmp: Path, repeats: int) -> dict:
    path = tmp / "sweep.toml"
    path.write_text(FILE + f"[sweep]\nseeds = {SEEDS}\n")
    exps = [load_experiment(path).model_copy(update={"seed": s}) for s in range(SEEDS)]
    counter = iter(range(10**6))

    def sweep():
        assert cli(["sweep", str(path), "--out", str(tmp / f"sw{next(counter)}"), "--workers", "1", "--no-vmap"]) == 0

    def trainings():
        for s, e in enumerate(exps):
            run_training(e, tmp / f"t{s}", plot=False)

    tsw, ttr = best(sweep, repeats), best(trainings, repeats)
    return {"sweep_s": tsw, "trainings_s": ttr, "overhead_per_trial_s": (tsw - ttr) / SEEDS}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    out = {"machine": f"{jax.devices()[0].platform}, {jax.local_device_count()} device(s)", "seeds": SEEDS}
    with tempfile.TemporaryDirectory() as tmp:
        for rule, sizes, batch, steps in STEP_CASES:
            key = f"steps {rule} {'-'.join(map(str, sizes))} batch {batch} x {steps}"
            out[key] = steps_case(rule, sizes, batch, steps, args.repeats)
            print(f"{key}: {out[key]}")
        out["harness"] = harness_case(Path(tmp), args.repeats)
        print(f"harness: {out['harness']}")
        out["sweep_overhead"] = overhead_case(Path(tmp), args.repeats)
        print(f"sweep overhead: {out['sweep_overhead']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
