"""Per-sample null-space fractions of Delta W_2 at the end of a `neurodyn train` run, from
its checkpoint, computed twice:

- ``package``: ``neurodyn.learning.metrics.null_space_fraction`` on one sample at a time
  (the quantity behind the ``null_space_W2`` column of metrics.csv, which averages it);
- ``direct``: an independent computation in the way of the paper's figure: the Jacobian
  ``A = d o / d vec(W_2)`` (2 x 36) of the sample by automatic differentiation, an orthonormal
  basis ``V_null`` of its null space from a full SVD, and ``||V_null^T vec(Delta W_2)|| /
  ||vec(Delta W_2)||``.

Also checks that the forward weights in the checkpoint are still the initial ones (every
rule freezes all layers). Writes ``per_sample.csv`` (rule, sample, package, direct) into the
given output folder.

    python per_sample.py EXPERIMENT.toml RUN_DIR OUT_DIR --seed S
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)  # as neurodyn's CLI

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from neurodyn.io.experiment import load_experiment  # noqa: E402
from neurodyn.io.training import initial_network, load_data  # noqa: E402
from neurodyn.learning.metrics import null_space_fraction  # noqa: E402
from neurodyn.learning.rules import RULES  # noqa: E402

LAYER = 2  # W_2: input of the second hidden layer, as in the paper's Fig. 2


def restore(rule, z, label):
    """The rule with the arrays (feedback, optimiser state, key, count) saved for ``label``."""
    params, static = eqx.partition(rule, eqx.is_array)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    saved = [jnp.asarray(z[f"{label}/feedback{i}"], dtype=leaf.dtype) for i, leaf in enumerate(leaves)]
    assert all(s.shape == leaf.shape for s, leaf in zip(saved, leaves)), label
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, saved), static)


def direct_fraction(rule, net, x, t, loss, tol=1e-10):
    """Null-space fraction of one sample's Delta W_LAYER via the full Jacobian and its SVD."""
    dW = rule.updates(net, x[None], t[None], loss)[0][LAYER - 1]

    def output(W):
        return eqx.tree_at(lambda n: n.W[LAYER - 1], net, W).forward(x).h[-1]

    A = jax.jacfwd(output)(net.W[LAYER - 1]).reshape(net.sizes[-1], -1)
    _, S, Vt = jnp.linalg.svd(A, full_matrices=True)
    rank = jnp.sum(S > tol * S[0])
    keep = (jnp.arange(Vt.shape[0]) >= rank)[:, None]  # rows of Vt that span the null space
    v = dW.reshape(-1)
    return jnp.linalg.norm(jnp.where(keep, Vt, 0.0) @ v) / jnp.linalg.norm(v)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("experiment")
    p.add_argument("run_dir", help="the --out folder of neurodyn train (holds checkpoint.npz)")
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, required=True)
    a = p.parse_args()
    exp = load_experiment(a.experiment).model_copy(update={"seed": a.seed})
    data = load_data(exp, None)
    net0 = initial_network(exp, data)
    loss = exp.network.loss
    x, t = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    rows = []
    with np.load(Path(a.run_dir) / "checkpoint.npz", allow_pickle=False) as z:
        assert int(z["seed"]) == a.seed, "checkpoint of another seed"
        for label, options in exp.rules.items():
            for l in range(1, net0.L + 1):  # frozen forward weights: still the initial ones
                assert np.array_equal(z[f"{label}/W{l}"], np.asarray(net0.W[l - 1])), f"{label}: W{l} changed"
            rule, _ = RULES[options.rule].build(net0, options, seed=a.seed, lr=options.lr or exp.training.lr)
            rule = restore(rule, z, label)
            package = jax.jit(jax.vmap(lambda xb, tb: null_space_fraction(rule, net0, xb[None], tb[None], loss)[LAYER - 1]))(x, t)
            direct = jax.jit(jax.vmap(lambda xb, tb: direct_fraction(rule, net0, xb, tb, loss)))(x, t)
            package, direct = np.asarray(package), np.asarray(direct)
            print(
                f"seed {a.seed} {label:<15} mean {package.mean():.4g} (direct {direct.mean():.4g}), "
                f"std over samples {package.std():.3g}, max |package - direct| {np.max(np.abs(package - direct)):.2e}"
            )
            rows += [{"rule": label, "sample": i, "package": f"{u:.17g}", "direct": f"{v:.17g}"} for i, (u, v) in enumerate(zip(package, direct))]
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "per_sample.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["rule", "sample", "package", "direct"])
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()
