"""Cost of DI's learning signal on the Fig. 4b autoencoder, and its agreement with NDI.

Times `DI.signals` (linearized controller, engine Newton on the 1,814 reduced controller
unknowns, `method="equilibrium"`) for a few images at the initial weights, R-Init B ~ U(-0.01,
0.01), leak 1e-2, and compares the signals with NDI's closed form for the same B; reports
the S24 abscissa of each loop and whether the fixed points found are stable.

Usage: python di_cost.py [N_IMAGES]   (prints a small markdown report)
"""

import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)
from neurodyn.learning.data import mnist  # noqa: E402
from neurodyn.learning.feedback import make_rule  # noqa: E402
from neurodyn.learning.losses import output_error  # noqa: E402
from neurodyn.learning.network import init_network  # noqa: E402
from neurodyn.learning.rules import DI  # noqa: E402
from neurodyn.learning.train import feedback_abscissa  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
n = int(sys.argv[1]) if len(sys.argv) > 1 else 4
data = mnist(os.environ.get("NEURODYN_DATA", ROOT.parent / "shared" / "data" / "mnist"), task="autoencoder")
net = init_network([784, 500, 250, 30, 250, 500, 784], ["tanh", "tanh", "linear", "tanh", "tanh", "linear"], seed=0)
ndi, _ = make_rule("ndi", net, feedback="random", scale=0.01, leak=1e-2, seed=0)
di = DI(B=ndi.B, alpha=1e-2, controller="linearized", method="equilibrium")
x = jnp.asarray(data.x_train[:n])
fwd = net.forward(x)
dL = output_error("squared_error", net, fwd, x)
f = jax.jit(lambda net, fwd, dL: di.signals(net, fwd, dL))
t0 = time.perf_counter()
a = jax.block_until_ready(f(net, fwd, dL))
t_first = time.perf_counter() - t0
t0 = time.perf_counter()
a = jax.block_until_ready(f(net, fwd, dL))
t_run = time.perf_counter() - t0
b = ndi.signals(net, fwd, dL)
rel = [float(jnp.max(jnp.abs(u - v)) / jnp.max(jnp.abs(v))) for u, v in zip(a, b)]
state, residual, converged = di.solve(net, fwd, dL)
stable = float(di.stable_fraction(net, fwd, dL, state))
print("| images | compile + first call (s) | per image (s) | max rel. diff DI vs NDI per layer | converged | stable fixed points | S24 abscissa, layers 2-6 |")
print("|---:|---:|---:|---|---:|---:|---|")
print(
    f"| {n} | {t_first:.1f} | {t_run / n:.2f} | {', '.join(f'{r:.1e}' for r in rel[:-1])} | "
    f"{float(jnp.mean(converged)):.2f} | {stable:.2f} | {', '.join(f'{s:+.4f}' for s in feedback_abscissa(ndi, net))} |"
)
