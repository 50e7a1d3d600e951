"""Cost of the target-propagation rules against BP, and of the Gauss-Newton analysis.

What is measured
----------------
Mini-batch training (batch 128) of the 784-256-256-256-256-256-10 network of Meulemans et
al. (2020, Table 1): tanh hidden layers, softmax output, cross-entropy, float64, weights
from ``init_network(seed=0)``. Every rule trains the same network on the same batches
through the package's ``run_steps`` (one ``lax.scan`` over ``--steps`` batches, compiled
ahead of time, so compilation is excluded and reported apart). A rule's cost per sample is
its best wall time over ``--repeats`` interleaved repeats divided by the samples it saw;
``cost_vs_bp`` is that cost over BP's in the same run (the goal for DTP and DDTP-linear:
at most 3x, as they add one feedback pass and one feedback update to BP's work).

The analysis: on ``--probes`` probe samples, the time of one compiled evaluation of

- ``alignment``: the DTP update of every layer and its angles to BP's update and to the
  Gauss-Newton-target update (``J_l^+ e_L`` for every sample and hidden layer);
- ``target_metrics``: the null-space fraction of the update (per sample), ``e_rec`` and
  ``e_approx``.

Goal: the two together under 2 s for 500 probes on the 2-core CPU.

Data: MNIST t10k from ``--data-dir`` or ``$NEURODYN_DATA`` (split ``test-8k-2k``), else
random inputs with MNIST's shapes (the cost does not depend on the values); the output
says which.

Run::

    python benchmarks/target_rules.py                 # ~2 min on 2 cores
    python benchmarks/target_rules.py --json tp.json
    python benchmarks/target_rules.py --quick         # smoke run

Timings on a shared machine are noisy; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

from neurodyn.learning.metrics import alignment, target_metrics  # noqa: E402
from neurodyn.learning.network import init_network  # noqa: E402
from neurodyn.learning.optimizer import SGD  # noqa: E402
from neurodyn.learning.rules import make_rule  # noqa: E402
from neurodyn.learning.train import batches  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mnist_data import load_data  # noqa: E402
from rule_timing import best_time, report, time_rules  # noqa: E402

SIZES = [784, 256, 256, 256, 256, 256, 10]
NONLINEARITIES = ["tanh"] * 5 + ["softmax"]
LOSS = "cross_entropy"
BATCH = 128
LR = 0.01
RULES = ("bp", "dtp", "ddtp_linear", "dtp_drl", "ddtp_rhl", "ddtp_control", "sdtp", "gn")
GOAL_COST_VS_BP = 3.0
GOAL_ANALYSIS_S = 2.0


def training(names, net, xs, ts, repeats: int) -> dict:
    """Per rule: compile seconds and best seconds for the scan over ``xs`` (``rule_timing``)."""
    rules = {name: make_rule(name, net, seed=0, lr=LR)[0] for name in names}
    out = time_rules(rules, net, LOSS, SGD(lr=LR, batch_size=BATCH), xs, ts, repeats, baseline="bp")
    for row in out.values():
        row["cost_vs_bp"] = row.pop("cost_vs")
    return out


def analysis(net, x, t, repeats: int) -> dict:
    rule, _ = make_rule("dtp", net, seed=0, lr=LR)
    calls = {
        "alignment (angles to BP and GN targets)": lambda: alignment(rule, net, LOSS, x, t),
        "target_metrics (null space, e_rec, e_approx)": lambda: target_metrics(rule, net, LOSS, x, t, null_space=x.shape[0]),
    }
    out = {}
    for label, fn in calls.items():
        start = time.perf_counter()
        jax.block_until_ready(fn())
        first = time.perf_counter() - start
        out[label] = {"first_call_s": first, "best_s": best_time(fn, repeats)}
    out["total_best_s"] = sum(v["best_s"] for v in out.values())
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=40, help="mini-batches per timed scan")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--probes", type=int, default=500)
    p.add_argument("--rules", nargs="+", default=list(RULES))
    p.add_argument("--data-dir")
    p.add_argument("--quick", action="store_true", help="10 batches, 1 repeat, 100 probes")
    p.add_argument("--json")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.probes = 10, 1, 100
    names = ["bp"] + [r for r in args.rules if r != "bp"]

    data = load_data(args.data_dir)
    x, t, source = data.x_train, data.t_train, data.source
    net = init_network(SIZES, NONLINEARITIES, seed=0)
    xs, ts = batches(x, t, start=0, steps=args.steps, batch_size=BATCH, seed=0)
    print(f"data: {source}; device: {jax.devices()[0].platform}; {args.steps} batches of {BATCH}, best of {args.repeats}")

    train = training(names, net, xs, ts, args.repeats)
    print("\n| rule | samples/s | us per sample | cost vs BP | compile s |\n|---|---:|---:|---:|---:|")
    for name, row in train.items():
        print(f"| {name} | {row['samples_per_s']:.0f} | {row['us_per_sample']:.1f} | {row['cost_vs_bp']:.2f}x | {row['compile_s']:.1f} |")

    probe = analysis(net, jnp.asarray(x[: args.probes]), jnp.asarray(t[: args.probes]), args.repeats)
    print(f"\nanalysis on {args.probes} probes (DTP):\n| call | first call s | best s |\n|---|---:|---:|")
    for label, row in probe.items():
        if label != "total_best_s":
            print(f"| {label} | {row['first_call_s']:.2f} | {row['best_s']:.3f} |")
    print(f"total per evaluation: {probe['total_best_s']:.3f} s")

    goals = {name: train[name]["cost_vs_bp"] <= GOAL_COST_VS_BP for name in ("dtp", "ddtp_linear") if name in train}
    goals["analysis"] = probe["total_best_s"] <= GOAL_ANALYSIS_S
    record = {"data": source, "steps": args.steps, "batch": BATCH, "probes": args.probes, "training": train, "analysis": probe}
    report(goals, record, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
