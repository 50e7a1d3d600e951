"""Cost of DI's learning signal on the Fig. 4b autoencoder: layer by layer against jointly.

At the initial weights, with R-Init B ~ U(-0.01, 0.01) and leak 1e-2 (linearized controller,
``method="equilibrium"``), times ``DI.signals`` two ways in the same run:

- layer by layer (the engine's default for DI): the reduced equation is block-triangular,
  so the five loops are solved from the top down, each with one LU factorisation of
  ``W_l B_l - alpha I`` shared by the batch;
- jointly (the engine's route before): Newton per image on all 1,814 controller unknowns
  with a dense 1,814 x 1,814 Jacobian (the same circuit with ``reduced_blocks`` switched off).

It checks that both give the same signals, that they equal NDI's closed form for the same B,
and reports the S24 abscissa of each loop and whether the fixed points are stable.

Usage: python di_cost.py [N_BATCH [N_JOINT]]   (default 100 and 4; prints a markdown report)
"""

import os
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)
from neurodyn.circuits.dynamic_inversion import DynamicInversion  # noqa: E402
from neurodyn.learning.data import mnist  # noqa: E402
from neurodyn.learning.losses import output_error  # noqa: E402
from neurodyn.learning.network import init_network  # noqa: E402
from neurodyn.learning.rules import DI, make_rule  # noqa: E402
from neurodyn.learning.metrics import feedback_abscissa  # noqa: E402


class JointDynamicInversion(DynamicInversion):
    def reduced_blocks(self):
        return None


class JointDI(DI):
    def circuit(self, network):
        c = super().circuit(network)
        return JointDynamicInversion(W=c.W, B=c.B, alpha=c.alpha, g=c.g, controller=c.controller)


def timed(rule, net, fwd, dL, repeats):
    """``(signals, compile + first call s, s per call)``."""
    f = eqx.filter_jit(lambda rule, net, fwd, dL: rule.signals(net, fwd, dL))
    t0 = time.perf_counter()
    out = jax.block_until_ready(f(rule, net, fwd, dL))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(repeats):
        out = jax.block_until_ready(f(rule, net, fwd, dL))
    return out, first, (time.perf_counter() - t0) / repeats


def max_rel(a, b):
    return max(float(jnp.max(jnp.abs(u - v)) / jnp.max(jnp.abs(v))) for u, v in zip(a[:-1], b[:-1]))


ROOT = Path(__file__).resolve().parents[2]
n_batch = int(sys.argv[1]) if len(sys.argv) > 1 else 100
n_joint = int(sys.argv[2]) if len(sys.argv) > 2 else 4
data = mnist(os.environ.get("NEURODYN_DATA", ROOT.parent / "shared" / "data" / "mnist"), task="autoencoder")
net = init_network([784, 500, 250, 30, 250, 500, 784], ["tanh", "tanh", "linear", "tanh", "tanh", "linear"], seed=0)
ndi, _ = make_rule("ndi", net, feedback="random", feedback_scale=0.01, leak=1e-2, seed=0)
di = DI(B=ndi.B, alpha=1e-2, controller="linearized", method="equilibrium")
joint = JointDI(B=ndi.B, alpha=1e-2, controller="linearized", method="equilibrium")

x = jnp.asarray(data.x_train[:n_batch])
fwd = net.forward(x)
dL = output_error("squared_error", net, fwd, x)
blocks, block_first, block_call = timed(di, net, fwd, dL, repeats=3)
small = jax.tree_util.tree_map(lambda v: v[:n_joint], (fwd, dL))
joint_signals, joint_first, joint_call = timed(joint, net, *small, repeats=1)

state, residual, converged = di.solve(net, fwd, dL)
stable = float(di.stable_fraction(net, fwd, dL, state))
per_block, per_joint = block_call / n_batch, joint_call / n_joint
print("| path | images | compile + first call (s) | per call (s) | per image (s) |")
print("|---|---:|---:|---:|---:|")
print(f"| layer by layer, one LU per loop and batch | {n_batch} | {block_first:.1f} | {block_call:.3f} | {per_block:.2e} |")
print(f"| jointly, dense Newton per image | {n_joint} | {joint_first:.1f} | {joint_call:.2f} | {per_joint:.2e} |")
print()
print(f"- speed-up per image: {per_joint / per_block:,.0f}x")
first_images = jax.tree_util.tree_map(lambda v: v[:n_joint], blocks)
print(f"- layer by layer vs jointly, max relative difference over the hidden layers: {max_rel(first_images, joint_signals):.1e}")
print(f"- layer by layer vs NDI's closed form (same B): {max_rel(blocks, ndi.signals(net, fwd, dL)):.1e}")
print(f"- converged: {float(jnp.mean(converged)):.2f}, stable fixed points: {stable:.2f}")
print(f"- S24 abscissa, loops of layers 2-6: {', '.join(f'{s:+.4f}' for s in feedback_abscissa(ndi, net))}")
