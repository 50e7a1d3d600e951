"""Cost of the dynamic-inversion rules against the rules they approximate, on Fig. 4a.

What is measured
----------------
Online training (batch 1) of the supplement's Fig. 4a network: 784-1000-10, tanh hidden
layer, softmax output, cross-entropy, float64, weights U(-0.01, 0.01) from
``init_network(seed=0)``, lr 1e-3, weight decay 1e-6 (``experiments/fig4a_mnist``). Every
rule trains the same network on the same samples through the package's ``run_steps`` (one
``lax.scan`` over ``--steps`` samples, compiled ahead of time) with the experiment's
options:

- ``bp``; ``fa`` (B ~ U(-0.5, 0.5));
- ``ndi`` (B ~ U(-0.01, 0.01), leak 0.01): the closed form ``(W B - alpha I)^{-1}``, a
  10 x 10 solve per sample;
- ``di`` (the same B, SSA-stabilised, linearized controller, leak 0.01): the steady state
  of the DI circuit by the engine's Newton in every step (``method = "equilibrium"``);
- ``di_nonlinear``: the same with the nonlinear controller (Algorithm 1), whose Newton
  forms ``W diag(g') B`` for every sample.

Reported per rule: ``build_s`` (drawing and stabilising the feedback), ``compile_s``
(lowering and compiling the scan), ``eval_compile_s`` (compiling what the training
harness measures at every evaluation, on 500 probe samples), microseconds per sample (best
of ``--repeats`` interleaved repeats) and the cost against BP and FA in the same run.

Goals (issue "honest speed", on the 2-core CPU): DI compiles (steps and evaluation
together) in under 5 s; NDI costs at
most 2x FA per sample; DI at most 1.5x BP per sample after compilation. The script prints
whether they were met in this run.

Data: MNIST t10k from ``--data-dir`` or ``$NEURODYN_DATA`` (split ``test-8k-2k``), else
random inputs with MNIST's shapes (the cost does not depend on the values).

Run::

    python benchmarks/rule_costs.py                # 2,000 samples, 3 repeats (~2 min on 2 cores)
    python benchmarks/rule_costs.py --quick        # 200 samples, 1 repeat
    python benchmarks/rule_costs.py --json rules.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import equinox as eqx
import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

from neurodyn.learning.metrics import probe_metrics  # noqa: E402
from neurodyn.learning.network import init_network  # noqa: E402
from neurodyn.learning.optimizer import SGD  # noqa: E402
from neurodyn.learning.rules import make_rule  # noqa: E402
from neurodyn.learning.train import batches  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mnist_data import load_data  # noqa: E402
from rule_timing import report, time_rules  # noqa: E402

SIZES = [784, 1000, 10]
NONLINEARITIES = ["tanh", "softmax"]
LOSS = "cross_entropy"
LR, WEIGHT_DECAY = 1e-3, 1e-6
#: label -> (registered rule, options), as in experiments/fig4a_mnist/experiment.toml
RULES = {
    "bp": ("bp", {}),
    "fa": ("fa", dict(feedback="random", feedback_scale=0.5)),
    "ndi": ("ndi", dict(feedback="random", feedback_scale=0.01, leak=0.01)),
    "di": ("di", dict(feedback="ssa", feedback_scale=0.01, leak=0.01, controller="linearized")),
    "di_nonlinear": ("di", dict(feedback="ssa", feedback_scale=0.01, leak=0.01, controller="nonlinear")),
}
#: the harness's evaluation samples (``eval_samples`` of experiments/fig4a_mnist)
PROBES = 500
GOAL_DI_COMPILE_S = 5.0
GOAL_NDI_VS_FA = 2.0
GOAL_DI_VS_BP = 1.5


def build(labels, net) -> tuple[dict, dict]:
    rules, build_s = {}, {}
    for label in labels:
        name, options = RULES[label]
        start = time.perf_counter()
        rules[label], _ = make_rule(name, net, seed=0, lr=LR, **options)
        build_s[label] = time.perf_counter() - start
    return rules, build_s


def evaluation_compile_s(rules: dict, net, x, t) -> dict:
    """Per rule, seconds to compile what the harness measures at every evaluation on its
    probe samples (``probe_metrics``: angles to BP and Gauss-Newton, null-space fraction
    on 100 samples, a circuit's steady state, the abscissae), for ``x``, ``t``."""
    measure = eqx.filter_jit(probe_metrics)
    out = {}
    for label, rule in rules.items():
        start = time.perf_counter()
        measure.lower(rule, net, LOSS, x, t, gauss_newton=True, null_space=100).compile()
        out[label] = time.perf_counter() - start
    return out


def goals(rows: dict) -> dict:
    out = {}
    if "di" in rows:
        out["di compile < 5 s"] = rows["di"]["compile_s"] + rows["di"]["eval_compile_s"] < GOAL_DI_COMPILE_S
        out["di <= 1.5x bp"] = rows["di"]["cost_vs_bp"] <= GOAL_DI_VS_BP
    if "ndi" in rows and "fa" in rows:
        out["ndi <= 2x fa"] = rows["ndi"]["best_s"] <= GOAL_NDI_VS_FA * rows["fa"]["best_s"]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=2000, help="samples per timed scan (batch 1)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    p.add_argument("--data-dir")
    p.add_argument("--quick", action="store_true", help="200 samples, 1 repeat")
    p.add_argument("--json")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 200, 1
    labels = ["bp"] + [r for r in args.rules if r != "bp"]

    data = load_data(args.data_dir)
    net = init_network(SIZES, NONLINEARITIES, seed=0, scale=0.01)
    xs, ts = batches(data.x_train, data.t_train, start=0, steps=args.steps, batch_size=1, seed=0)
    print(f"data: {data.source}; device: {jax.devices()[0].platform}; {args.steps} samples online, best of {args.repeats}")

    rules, build_s = build(labels, net)
    opt = SGD(lr=LR, weight_decay=WEIGHT_DECAY, batch_size=1)
    rows = time_rules(rules, net, LOSS, opt, xs, ts, args.repeats, baseline="bp")
    evaluation = evaluation_compile_s(rules, net, jnp.asarray(data.x_train[:PROBES]), jnp.asarray(data.t_train[:PROBES]))
    fa = rows.get("fa")
    print("\n| rule | build s | compile s (steps) | compile s (evaluation) | us per sample | cost vs BP | cost vs FA |\n|---|---:|---:|---:|---:|---:|---:|")
    for label, row in rows.items():
        row["build_s"], row["eval_compile_s"] = build_s[label], evaluation[label]
        row["cost_vs_bp"] = row.pop("cost_vs")
        row["cost_vs_fa"] = row["best_s"] / fa["best_s"] if fa else None
        vs_fa = f"{row['cost_vs_fa']:.2f}x" if fa else "-"
        print(f"| {label} | {row['build_s']:.2f} | {row['compile_s']:.2f} | {row['eval_compile_s']:.2f} | {row['us_per_sample']:.0f} | {row['cost_vs_bp']:.2f}x | {vs_fa} |")
    report(goals(rows), {"data": data.source, "steps": args.steps, "repeats": args.repeats, "rules": rows}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
