"""What do the DI dynamics themselves do? Integrates the DI circuit of some rules of
experiment.toml from zero (Tsit5 to steady state, neurodyn.fixed_point(method="ode"), which
reports unsettled samples as not converged) at the initial weights and at the trained
weights of the checkpoint, for 20 training samples.

Why: inside `neurodyn train` both methods return the (possibly unstable) fixed point -- the
"ode" route polishes with Newton whatever the integration reached (see README), so the
training curves of DI at leak 0 with R-Init are those of the unstable fixed point.

Usage: python dynamics_check.py CHECKPOINT_DIR   (the --out folder of the training run)
Writes dynamics_check.md next to this script.
"""

import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import neurodyn as nd
from neurodyn.io.experiment import load_experiment
from neurodyn.io.training import load_data
from neurodyn.learning.rules import RULES as REGISTRY
from neurodyn.learning.losses import output_error
from neurodyn.learning.network import init_network

jax.config.update("jax_enable_x64", True)
HERE = Path(__file__).parent
RULES = ["di_r_a0", "di_ssa_a0", "di_nt_a0", "di_r_a1e-3", "di_r_a1e-2", "di_nt_a1e-2"]
T1 = 5000.0
N = 20


def main(ckpt_dir):
    exp = load_experiment(HERE / "experiment.toml")
    data = load_data(exp, None)
    net0 = init_network(exp.network.sizes, exp.network.nonlinearities, seed=exp.seed, scale=exp.network.init_scale)
    z = np.load(Path(ckpt_dir) / "checkpoint.npz")
    x, t = jnp.asarray(data.x_train[:N]), jnp.asarray(data.y_train[:N])
    lines = [
        f"DI circuit integrated from zero to t1 = {T1:g} (Tsit5, stop at steady state) for the first {N} training",
        "samples; `reason` is the integrator's; `converged` = fraction that settled at a fixed point",
        "(Newton-polished); `max|state|` = largest state reached. Abscissa: S24 of the loop.",
        "",
        "| rule | weights | S24 abscissa | reason | converged | stable | max abs state |",
        "|---|---|---|---|---|---|---|",
    ]
    for label in RULES:
        spec = exp.rules[label]
        rule, _ = REGISTRY[spec.rule].build(net0, spec, seed=exp.seed, lr=exp.training.lr)
        W_end = tuple(jnp.asarray(z[f"{label}/W{l}"]) for l in (1, 2))
        b_end = tuple(jnp.asarray(z[f"{label}/b{l}"]) for l in (1, 2))
        net_end = eqx.tree_at(lambda n: (n.W, n.b), net0, (W_end, b_end))
        for stage, net in (("initial", net0), (f"trained ({int(z[f'{label}/step'])} it.)", net_end)):
            fwd = net.forward(x)
            dL = output_error(exp.network.loss, net, fwd, t)
            circuit = rule.circuit(net)
            eq = nd.fixed_point(circuit, {"delta_out": dL}, method="ode", t1=T1, rtol=1e-6, atol=1e-9)  # the trajectory at its own accuracy, as recorded
            big = max(float(np.max(np.abs(v))) for v in eq.trajectory.final.values())
            sa = float(np.max(np.asarray(eq.spectral_abscissa)))
            lines.append(f"| {label} | {stage} | {sa:+.2e} | {eq.trajectory.reason} | {np.mean(eq.converged):.2f} | {np.mean(eq.stable):.2f} | {big:.3g} |")
            print(lines[-1], flush=True)
    (HERE / "dynamics_check.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(HERE.parents[1] / "out" / "scratch" / "fig3_linear_regression" / "main"))
