"""Timing of learning rules through the package's ``run_steps``, shared by the rule
benchmarks (``target_rules.py``, ``rule_costs.py``): each rule's scan is compiled ahead of
time (compile seconds apart), then timed in repeats interleaved across rules, so that a
slow spell of the shared machine hits every rule alike."""

from __future__ import annotations

import json
import os
import platform
import time

import jax

from neurodyn.learning.train import run_steps


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def time_rules(rules: dict, net, loss: str, opt, xs, ts, repeats: int, baseline: str) -> dict:
    """``rules``: label -> built rule. Per label: ``compile_s`` (lowering and compiling the
    scan over ``xs``), ``best_s``, ``samples_per_s``, ``us_per_sample`` and ``cost_vs``
    (best seconds over the ``baseline`` label's)."""
    compiled, out = {}, {}
    for label, rule in rules.items():
        start = time.perf_counter()
        fn = run_steps.lower(rule, net, loss, opt, xs, ts).compile()
        compiled[label] = (fn, rule)
        out[label] = {"compile_s": time.perf_counter() - start, "times": []}
    for _ in range(repeats):
        for label, (fn, rule) in compiled.items():
            out[label]["times"].append(best_time(lambda fn=fn, rule=rule: fn(rule, net, loss, opt, xs, ts), 1))
    samples = xs.shape[0] * xs.shape[1]
    for row in out.values():
        row["best_s"] = min(row.pop("times"))
        row["samples_per_s"] = samples / row["best_s"]
        row["us_per_sample"] = 1e6 * row["best_s"] / samples
    for row in out.values():
        row["cost_vs"] = row["best_s"] / out[baseline]["best_s"]
    return out


def report(goals: dict, record: dict, path: str | None) -> None:
    """Print whether each goal was met in this run; with ``path``, write ``record`` with the
    goals and the machine as JSON."""
    print("\ngoals: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in goals.items()))
    if path:
        machine = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "jax": jax.__version__, "device": jax.devices()[0].platform}
        with open(path, "w") as f:
            json.dump({**record, "goals": goals, "machine": machine}, f, indent=2)
