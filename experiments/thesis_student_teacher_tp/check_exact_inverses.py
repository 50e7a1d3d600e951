"""Direct checks of the rules behind the thesis's section 5.1.3 / 5.2.2 runs, against numpy.

    python experiments/thesis_student_teacher_tp/check_exact_inverses.py

For the 6-6-6 network (one hidden layer, linear output) target propagation with exact
inverses is Gauss-Newton: hhat_1 = W_2^-1 (h_2 - eta_hat e) = h_1 - eta_hat W_2^-1 e, and
J_1 = W_2, so J_1^+ = W_2^-1. The script checks, for seeds 0-2 of the experiment files:

1. the hidden targets of `tp_exact`, `gn` and (with Q_1 set to W_2^-1) `dtp` with the
   thesis's linear inverse against h_1 - eta_hat W_2^-1 e computed in numpy;
2. one trajectory of `tp_exact` and `gn` from the same start on the same samples: the
   largest weight difference (while gn's weights are finite), how many rank-one updates took the robust Sherman-Morrison
   branch (|1 + d| < eps, counted by replaying Algorithm 4.1 in numpy), how far the
   carried inverse is from W_2^-1 at the end, and the smallest singular value of W_2.
"""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)  # as the CLI

from neurodyn.io.experiment import load_experiment  # noqa: E402
from neurodyn.io.training import initial_network, load_data  # noqa: E402
from neurodyn.learning.rules import RULES  # noqa: E402
from neurodyn.learning.train import SGD, batches  # noqa: E402

HERE = Path(__file__).resolve().parent
LOSS = "squared_error"


def build(name, net, lr, **options):
    cls = RULES[name]
    return cls.build(net, cls.Options(rule=name, **options), seed=0, lr=lr)[0]


def targets_check(exp, seed):
    data = load_data(exp, None)
    net = initial_network(exp, data)
    x, t = jnp.asarray(data.x_train[:64]), jnp.asarray(data.y_train[:64])
    fwd = net.forward(x)
    eta = 0.1
    W2 = np.asarray(net.W[1])
    e = np.asarray(fwd.h[2] - t)
    direct = np.asarray(fwd.h[1]) - eta * e @ np.linalg.inv(W2).T
    dtp = build("dtp", net, 1e-3, inverse="linear", reconstruction="white")
    Q = jnp.asarray(np.linalg.inv(W2))
    dtp = eqx.tree_at(lambda r: r.feedback, dtp, ((Q, jnp.zeros(6)),))
    out = {}
    for name, rule in (("tp_exact", build("tp_exact", net, 1e-3)), ("gn", build("gn", net, 1e-3)), ("dtp, Q_1 = W_2^-1", dtp)):
        hhat = rule.targets(net, fwd, rule.output_target(net, fwd, t, LOSS))[0]
        out[name] = float(np.max(np.abs(np.asarray(hhat) - direct)) / np.max(np.abs(direct - np.asarray(fwd.h[1]))))
    return out


def trajectory_check(exp, seed, steps):
    data = load_data(exp, None)
    net0 = initial_network(exp, data)
    t_ = exp.training
    lr = exp.rules["tp_exact"].lr or t_.lr
    opt = SGD(lr=lr, batch_size=t_.batch_size)
    tp, gn = build("tp_exact", net0, lr), build("gn", net0, lr)
    step = jax.jit(lambda r, n, x, t: r.step(n, x, t, LOSS, opt))
    deltas = jax.jit(lambda r, n, x, t: r.deltas(n, x, t, LOSS, opt))
    xs, ts = batches(data.x_train, data.y_train, start=0, steps=steps, batch_size=t_.batch_size, seed=seed)
    n_tp, n_gn, robust, diff, gn_stop = net0, net0, 0, 0.0, None
    smin = {"tp_exact": [], "gn": []}  # sigma_min(W_2) after each mini-batch
    for k in range(steps):
        fwd, d = deltas(tp, n_tp, xs[k], ts[k])
        W_inv = np.asarray(tp.W_inv[0])
        for u, v in zip(lr * np.asarray(d[1]), np.asarray(fwd.h[1])):  # Algorithm 4.1 replayed
            Wu = W_inv @ u
            dd = v @ Wu
            robust += abs(1 + dd) < tp.epsilon
            W_inv = W_inv - np.outer(Wu, v @ W_inv) / ((1 + dd) if abs(1 + dd) >= tp.epsilon else tp.epsilon)
        n_tp, tp = step(tp, n_tp, xs[k], ts[k])
        if gn_stop is None:
            n_gn, gn = step(gn, n_gn, xs[k], ts[k])
            if not all(bool(jnp.all(jnp.isfinite(w))) for w in n_gn.W):
                gn_stop = k + 1  # gn's weights became non-finite: compare no further
            else:
                diff = max(diff, max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(n_tp.W, n_gn.W)))
                smin["gn"].append(np.linalg.svd(np.asarray(n_gn.W[1]), compute_uv=False)[-1])
        smin["tp_exact"].append(np.linalg.svd(np.asarray(n_tp.W[1]), compute_uv=False)[-1])
    inv_err = float(jnp.max(jnp.abs(tp.W_inv[0] @ n_tp.W[1] - jnp.eye(6))))
    finite = all(bool(jnp.all(jnp.isfinite(w))) for w in n_tp.W)
    s0 = np.linalg.svd(np.asarray(net0.W[1]), compute_uv=False)[-1]
    sv = ", ".join(f"{k} min {min(v):.2g} (mini-batch {int(np.argmin(v)) + 1}), end {v[-1]:.2g}" for k, v in smin.items() if v)
    return diff, gn_stop, int(robust), steps * t_.batch_size, inv_err, finite, f"sigma_min(W_2): start {s0:.2g}; {sv}"


def main():
    for file, steps in (("exact_inverses.toml", 4000), ("learned_inverses.toml", 1000)):
        base = load_experiment(HERE / file)
        print(f"{file} (batch {base.training.batch_size}, {steps} mini-batches per trajectory)")
        for seed in (0, 1, 2):
            exp = base.model_copy(update={"seed": seed})
            rel = targets_check(exp, seed)
            diff, gn_stop, robust, n, inv_err, finite, sv = trajectory_check(exp, seed, steps)
            stop = f" (gn non-finite at mini-batch {gn_stop}; tp_exact {'finite' if finite else 'non-finite'})" if gn_stop else ""
            print(f"  seed {seed}: target error / target step: " + ", ".join(f"{k} {v:.1e}" for k, v in rel.items())
                  + f"; tp_exact vs gn: max |dW| {diff:.2g}{stop}, robust Sherman-Morrison branch {robust} of {n} rank-one updates,"
                  f" max |W_2^-1 W_2 - I| {inv_err:.1e}; {sv}")


if __name__ == "__main__":
    main()
