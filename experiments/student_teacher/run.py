"""Student-teacher regression (Meulemans 2019 thesis, section 5.1.3) learned online by the
continuous-time target-propagation circuits, their weights evolving as ODEs.

Network 6-6-6, no biases, leaky ReLU (slope 0.35) hidden layer, linear output, squared
loss 0.5 ||h_2 - t||^2. Teacher weights ~ N(0, 1); each student matrix starts at Frobenius
distance 8.0 from the teacher's; W_2 (teacher and student) redrawn until
sigma_min(W_2) sigma_max(W_2) > 0.4 (the thesis's condition). Inputs x ~ N(0, I_6) (the
thesis says "random inputs"), 2000 training samples (one thesis epoch), 1000 test samples.
Online, one sample per step, samples in epoch-wise random order.

Learners (neurodyn.learning.ode_training):
  bp, bp_frozen                 online SGD by BP; bp_frozen trains W_2 only (the control)
  mixture_single_exact          dendritic_mixture, exact inverses, single phase (6.17)
  mixture_single_learned        dendritic_mixture, learned Q_1 (6.17 + 6.26), single phase
  mixture_two_learned           dendritic_mixture, learned Q_1, free + learning phase (6.35, 6.37)
  burst                         burst_multiplexing, free + learning phase (6.58), plastic Q_1
  cdtp                          continuous_dtp, feedforward + feedback phase (50), (51)

Usage:  python experiments/student_teacher/run.py [--samples 10000] [--seeds 5] [--quick]
Outputs next to this file (or in --out): results.json, results.md, learning_curves.png,
angles.png.
"""

from __future__ import annotations

import argparse
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

import neurodyn  # noqa: F401
from neurodyn.circuits.burst_multiplexing import BurstMultiplexing, two_phases
from neurodyn.circuits.continuous_dtp import ContinuousDTP
from neurodyn.circuits.dendritic_mixture import DendriticMixture, phase_schedule
from neurodyn.core import schedules
from neurodyn.core.nonlinearities import parse
from neurodyn.core.plasticity import Plastic
from neurodyn.learning import ode_training as ot

HERE = Path(__file__).resolve().parent
SIZE = 6
SLOPE = 0.35
DISTANCE = 8.0
N_TRAIN, N_TEST, N_PROBE = 2000, 1000, 32
S = (parse(f"leaky_relu:{SLOPE}"), parse("linear"))

# circuit constants (time in units of the neural time constant)
MU, ETA_HAT = 0.2, 0.1  # mixture model: mixing coefficient, output step (thesis: eta_hat = 0.1)
R = MU / (1 - MU)
T_SINGLE = 10.0  # mixture single phase: one cycle
T_FREE, T_LEARN = 10.0, 10.0  # two-phase mixture: free then learning phase
B_FREE, B_LEARN = 5.0, 10.0  # burst multiplexing (starts at its free-phase rest)
C_FF, C_FB = 1.0, 20.0  # CDTP: feedforward (gamma = 1) then feedback (gamma = 0) phase
BETA = 0.1  # CDTP output step
Q_LR = 0.05  # per-sample LMS rate of the inverse weights Q_1 (see `learner`)
OMEGA_LR = 0.002  # the same for CDTP's Omega_2 (0.05 made the feedback loop unstable, Prop. 3)

#: learning rates (the output layer's effective SGD rate, see `learner`); chosen by tune.py
LR = {
    "bp": 0.003,
    "bp_frozen": 0.001,
    "mixture_single_exact": 0.01,
    "mixture_single_learned": 0.01,
    "mixture_two_learned": 0.01,
    "burst": 0.003,
    "cdtp": 0.02,
}
METHODS = tuple(LR)


# ----------------------------------------------------------------------------- data
def well_conditioned(rng, base=None):
    """A 6x6 Gaussian matrix (or ``base`` + a step of Frobenius norm 8) with
    sigma_min * sigma_max > 0.4 (thesis 5.1.3, for W_2)."""
    while True:
        D = rng.normal(size=(SIZE, SIZE))
        W = D if base is None else base + DISTANCE * D / np.linalg.norm(D)
        sv = np.linalg.svd(W, compute_uv=False)
        if sv[0] * sv[-1] > 0.4:
            return W


def teacher_forward(W1, W2, x):
    a = x @ W1.T
    return np.where(a > 0, a, SLOPE * a) @ W2.T


def make_seed(seed: int, n_samples: int) -> dict:
    """Teacher, student and data of one seed (numpy)."""
    rng = np.random.default_rng(seed)
    T1, T2 = rng.normal(size=(SIZE, SIZE)), well_conditioned(rng)
    D1 = rng.normal(size=(SIZE, SIZE))
    W1, W2 = T1 + DISTANCE * D1 / np.linalg.norm(D1), well_conditioned(rng, T2)
    x_train, x_test = rng.normal(size=(N_TRAIN, SIZE)), rng.normal(size=(N_TEST, SIZE))
    t_train, t_test = teacher_forward(T1, T2, x_train), teacher_forward(T1, T2, x_test)
    epochs = -(-n_samples // N_TRAIN)
    order = np.concatenate([rng.permutation(N_TRAIN) for _ in range(epochs)])[:n_samples]
    return dict(
        W1=W1, W2=W2, xs=x_train[order], ts=t_train[order],
        data=dict(train_x=x_train, train_t=t_train, test_x=x_test, test_t=t_test, probe_x=x_test[:N_PROBE], probe_t=t_test[:N_PROBE]),
    )


def stack_seeds(seeds, n_samples):
    per = [make_seed(s, n_samples) for s in seeds]
    stack = lambda f: jnp.asarray(np.stack([f(p) for p in per]))
    weights = {"W1": stack(lambda p: p["W1"]), "W2": stack(lambda p: p["W2"])}
    data = {k: stack(lambda p, k=k: p["data"][k]) for k in per[0]["data"]}
    return weights, stack(lambda p: p["xs"]), stack(lambda p: p["ts"]), data


# ----------------------------------------------------------------------------- learners
def learner(method: str, lr: float, W1, W2):
    """The learner of ``method`` with output-layer rate ``lr`` and the extra plastic arrays'
    initial values (a function of the student's initial weights). ``W1``, ``W2``: template
    arrays (shapes only matter; every per-seed array is plastic).

    Rates. BP: ``W -= lr dL/dW``. Mixture: the output layer's rule integrates to
    ``Delta W_2 = -(eta_2 T / tau_w) r eta_hat e h_1^T`` over a learning time ``T``, so
    ``tau_w = eta_2 T r eta_hat / lr``; the hidden rate ``eta_1 = eta_2 / r`` undoes the
    ``r^{L+1-i}`` decay of (6.15), giving the hidden layer the TP step
    ``lr D (-J^{-1} e) x^T``. Burst: ``Delta W_2 = -(T / tau_w) eta_hat e h_1^T``, so
    ``tau_w = T eta_hat / lr``. CDTP: (50) with the frozen normalisation gives
    ``Delta W_2 = -(lr_w / tau_w) beta e h_1^T / ||h_1||^2``, a normalised (NLMS) step; ``lr``
    is that step's fraction ``lr_w beta / tau_w``. Inverse weights (Q, Omega) learn by their
    rule for the time ``T_Q`` of their phase (the whole cycle for the single-phase mixture,
    the free phase for the two-phase kinds, the feedforward phase for CDTP) with
    ``tau_w = T_Q / Q_LR``: per sample about one LMS step ``-Q_LR (g(h_2) - h_1) h_2^T``. Returns ``(learner, extra(W1, W2) -> dict)``.
    """
    W = (jnp.asarray(W1), jnp.asarray(W2))
    inverse = lambda W1, W2: {"Q1": jnp.linalg.pinv(W2)}
    if method in ("bp", "bp_frozen"):
        return ot.GradientDescent(S, lr, train=(2,) if method == "bp_frozen" else None), lambda W1, W2: {}
    if method.startswith("mixture"):
        learned = method.endswith("learned")
        two = method.startswith("mixture_two")
        T = T_LEARN if two else T_SINGLE
        tau_w = R * ETA_HAT * T / lr
        c = DendriticMixture(
            W=W, Q=(jnp.linalg.pinv(W[1]),) if learned else (), s=S, t=(parse("linear"),) if learned else (),
            mu=MU, eta_hat=ETA_HAT, inverses="learned" if learned else "exact",
            schedule=phase_schedule(T_FREE, T_LEARN, 1) if two else None, eta=(1.0 / R, 1.0), eta_inv=(1.0,),
        )
        arrays = ["W1", "W2"] + (["Q1"] if learned else [])
        p = Plastic(c, arrays, tau_w={**{n: tau_w for n in ("W1", "W2")}, **({"Q1": (T_FREE if two else T_SINGLE) / Q_LR} if learned else {})})
        oc = ot.OnlineCircuit(p, S, t1=T_FREE + T_LEARN if two else T_SINGLE)
        return oc, (inverse if learned else (lambda W1, W2: {}))
    if method == "burst":
        tau_w = B_LEARN * ETA_HAT / lr
        c = BurstMultiplexing(
            W=W, Q=(jnp.linalg.pinv(W[1]),), s=S, apical=(parse("linear"),), phase=two_phases(B_FREE, B_LEARN, 1),
            eta_hat=ETA_HAT, eta=1.0, eta_inv=1.0,
        )
        p = Plastic(c, ["W1", "W2", "Q1"], tau_w={"W1": tau_w, "W2": tau_w, "Q1": B_FREE / Q_LR})
        return ot.OnlineCircuit(p, S, t1=B_FREE + B_LEARN, start="closed_form"), inverse
    if method == "cdtp":
        tau_w = BETA / lr  # lr_w = 1
        gamma = schedules.phases([C_FF, C_FB], [1.0, 0.0])
        c = ContinuousDTP.build(list(W), [jnp.linalg.pinv(W[1])], nonlinearity=f"leaky_relu:{SLOPE}", gamma=gamma, beta=BETA, feedback_rule="51", tau_a=0.1)
        p = Plastic(c, ["W1", "W2", "Omega2"], tau_w={"W1": tau_w, "W2": tau_w, "Omega2": C_FF / OMEGA_LR})
        # CDTP's f_1 = W_1 sigma(x): feeding sigma^{-1}(x) makes its network h_1 = s(W_1 x), h_2 = W_2 h_1
        return ot.OnlineCircuit(p, S, t1=C_FF + C_FB, encode=S[0].inverse, max_steps=2000), lambda W1, W2: {"Omega2": jnp.linalg.pinv(W2)}
    raise ValueError(f"unknown method '{method}' (choose from {', '.join(METHODS)})")


def run_method(method, lr, weights, xs, ts, data, evals):
    lrn, extra = learner(method, lr, weights["W1"][0], weights["W2"][0])
    w0 = dict(weights)
    w0.update(jax.vmap(extra)(weights["W1"], weights["W2"]))
    t0 = time.perf_counter()
    w, metrics = ot.train_seeds(lrn, w0, xs, ts, data, evals=evals)
    metrics = jax.tree_util.tree_map(np.asarray, metrics)
    return {k: np.asarray(v) for k, v in metrics.items()}, time.perf_counter() - t0


# ----------------------------------------------------------------------------- report
LABEL = {
    "bp": "BP", "bp_frozen": "BP, frozen hidden layer", "mixture_single_exact": "mixture, 1 phase, exact inv.",
    "mixture_single_learned": "mixture, 1 phase, learned Q", "mixture_two_learned": "mixture, 2 phases, learned Q",
    "burst": "burst multiplexing", "cdtp": "continuous DTP",
}


def plot(results, samples_axis, out: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for m, r in results.items():
        for ax, key in zip(axes, ("train_loss", "test_loss")):
            v = r["metrics"][key]  # (seeds, evals+1)
            med = np.median(v, axis=0)
            ax.plot(samples_axis, med, label=LABEL[m], ls="--" if m.startswith("bp") else "-")
            ax.fill_between(samples_axis, np.min(v, axis=0), np.max(v, axis=0), alpha=0.12)
    for ax, key in zip(axes, ("train loss", "test loss")):
        ax.set_yscale("log")
        ax.set_xlabel("training samples (online, one per step)")
        ax.set_ylabel(f"{key}, 0.5 ||h_2 - t||^2 (median, min-max over seeds)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Student-teacher 6-6-6 (thesis 5.1.3), weights learning as ODEs")
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=120)
    plt.close(fig)

    circ = [m for m in results if not m.startswith("bp")] + [m for m in ("bp",) if m in results]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for m in circ:
        r = results[m]["metrics"]
        for ax, key in zip(axes, ("angle_gn", "angle_gn_weight", "angle_bp")):
            v = r[key][:, :, 0]
            ax.plot(samples_axis, np.mean(v, axis=0), label=LABEL[m], ls="--" if m == "bp" else "-")
    titles = ("to the Gauss-Newton-target update D(-J^+ e)x^T", "to the Gauss-Newton step of W_1", "to BP's update")
    for ax, t in zip(axes, titles):
        ax.set_title(f"hidden-layer update angle {t}", fontsize=9)
        ax.set_xlabel("training samples")
        ax.set_ylabel("degrees (mean over 32 probes and seeds)")
        ax.set_ylim(0, 95)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "angles.png", dpi=120)
    plt.close(fig)


def summarise(results, samples_axis):
    rows = {}
    for m, r in results.items():
        M = r["metrics"]
        fin = lambda k: M[k][:, -1]
        rows[m] = dict(
            lr=r["lr"],
            runtime_s=round(r["runtime_s"], 1),
            test_loss_initial=float(np.median(M["test_loss"][:, 0])),
            test_loss_final_median=float(np.median(fin("test_loss"))),
            test_loss_final_min=float(np.min(fin("test_loss"))),
            test_loss_final_max=float(np.max(fin("test_loss"))),
            train_loss_final_median=float(np.median(fin("train_loss"))),
            diverged_seeds=int(np.sum(~np.isfinite(fin("test_loss")) | (fin("test_loss") > M["test_loss"][:, 0]))),
            angle_gn_mean=float(np.nanmean(M["angle_gn"][:, :, 0])),
            angle_gn_initial=float(np.nanmean(M["angle_gn"][:, 0, 0])),
            angle_gn_final=float(np.nanmean(M["angle_gn"][:, -1, 0])),
            angle_gn_weight_mean=float(np.nanmean(M["angle_gn_weight"][:, :, 0])),
            angle_bp_mean=float(np.nanmean(M["angle_bp"][:, :, 0])),
            angle_bp_initial=float(np.nanmean(M["angle_bp"][:, 0, 0])),
            angle_bp_final=float(np.nanmean(M["angle_bp"][:, -1, 0])),
            obtuse_bp_fraction=float(np.nanmean(M["obtuse_bp"][:, :, 0])),
            solver_ok_fraction=float(np.nanmean(M["solver_ok"])),
        )
    return rows


def write_md(rows, cfg, out: Path):
    lines = [
        "# Student-teacher results",
        "",
        f"{cfg['samples']} online samples, seeds {cfg['seeds']}, evaluation every {cfg['samples'] // cfg['evals']} samples. "
        "Loss 0.5 ||h_2 - t||^2, mean over the set; median (min-max) over seeds. Angles: hidden layer W_1, "
        "mean over 32 probe samples, seeds and all evaluation points (initial -> final in brackets).",
        "",
        "| learner | lr | test loss start | test loss end, median (min-max) | train loss end | angle to GN target [start -> end] | angle to GN step of W_1 | angle to BP [start -> end] | probes > 90 deg from BP | runtime (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m, r in rows.items():
        ang = lambda k: f"{r[k + '_mean']:.1f} [{r[k + '_initial']:.1f} -> {r[k + '_final']:.1f}]"
        lines.append(
            f"| {LABEL[m]} | {r['lr']:g} | {r['test_loss_initial']:.1f} | {r['test_loss_final_median']:.3g} "
            f"({r['test_loss_final_min']:.3g}-{r['test_loss_final_max']:.3g}) | {r['train_loss_final_median']:.3g} | "
            f"{ang('angle_gn')} | {r['angle_gn_weight_mean']:.1f} | {ang('angle_bp')} | {100 * r['obtuse_bp_fraction']:.1f}% | {r['runtime_s']} |"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=4000, help="online training samples (thesis: 120000)")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--evals", type=int, default=20, help="evaluation points (must divide --samples)")
    ap.add_argument("--methods", nargs="*", default=list(METHODS))
    ap.add_argument("--quick", action="store_true", help="400 samples, 2 seeds (a smoke run)")
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--merge", action="store_true", help="keep the other learners' results from --out/results.json (same samples, seeds, evals)")
    args = ap.parse_args(argv)
    if args.quick:
        args.samples, args.seeds, args.evals = 400, 2, 4
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))
    weights, xs, ts, data = stack_seeds(seeds, args.samples)
    results = {}
    previous = args.out / "results.json"
    if args.merge and previous.exists():  # keep the other learners of an earlier run with the same setup
        old = json.loads(previous.read_text())
        same = all(old["config"].get(k) == v for k, v in dict(samples=args.samples, seeds=seeds, evals=args.evals).items())
        if same:
            for m, curves in old["curves"].items():
                if m not in args.methods:
                    results[m] = {"lr": old["summary"][m]["lr"], "runtime_s": old["summary"][m]["runtime_s"],
                                  "metrics": {k: np.asarray(v, float) for k, v in curves.items()}}
    for m in args.methods:
        metrics, rt = run_method(m, LR[m], weights, xs, ts, data, args.evals)
        results[m] = {"lr": LR[m], "runtime_s": rt, "metrics": metrics}
        print(f"{m:24s} {rt:7.1f} s  test loss {np.median(metrics['test_loss'][:, 0]):.2f} -> {np.median(metrics['test_loss'][:, -1]):.4g}"
              f"  angle GN {np.nanmean(metrics['angle_gn']):.1f}  BP {np.nanmean(metrics['angle_bp']):.1f}", flush=True)
    results = {m: results[m] for m in METHODS if m in results}
    samples_axis = np.arange(args.evals + 1) * (args.samples // args.evals)
    rows = summarise(results, samples_axis)
    cfg = dict(
        samples=args.samples, seeds=seeds, evals=args.evals, n_train=N_TRAIN, n_test=N_TEST, n_probe=N_PROBE,
        mu=MU, eta_hat=ETA_HAT, beta=BETA, q_lr=Q_LR, omega_lr=OMEGA_LR, cycles=dict(mixture_single=T_SINGLE, mixture_two=[T_FREE, T_LEARN], burst=[B_FREE, B_LEARN], cdtp=[C_FF, C_FB]),
        total_runtime_s=round(sum(r["runtime_s"] for r in results.values()), 1), machine=platform.platform(), jax=jax.__version__,
    )
    curves = {m: {k: np.round(v, 6).tolist() for k, v in r["metrics"].items()} for m, r in results.items()}
    (args.out / "results.json").write_text(json.dumps({"config": cfg, "summary": rows, "samples": samples_axis.tolist(), "curves": curves}, indent=1))
    write_md(rows, cfg, args.out)
    plot(results, samples_axis, args.out)
    print(f"total {cfg['total_runtime_s']} s; wrote {args.out}/results.json, results.md, learning_curves.png, angles.png")


if __name__ == "__main__":
    main()
