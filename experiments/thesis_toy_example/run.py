"""Toy example of Meulemans' 2019 MSc thesis on target propagation, section 5.1.1
(figures 5.2 and 5.3): a 1-2-2 network without biases whose output weights W_2 are fixed
learns the two hidden weights W_1 from a teacher with the same W_2, by BP, by target
propagation with exact inverses (TP) and by Gauss-Newton optimisation of W_1 (GN), in a
linear and a leaky-ReLU (slope 0.1) version.

BP and TP are the package's rules (`bp`, `tp_exact`) applied through their `step` with W_2
frozen, as `neurodyn train` applies them. The GN of the thesis (5.10, 5.18) is a
Gauss-Newton step in the parameters W_1, which no package rule implements (the `gn` rule
puts Gauss-Newton *targets* on h_1 and then takes a local gradient step); it is computed
here from the package network's output Jacobian in W_1. The `gn` rule is run as well and
compared with TP. Every update is also checked against the thesis' closed forms
(5.7, 5.9, 5.11, 5.16, 5.17, 5.19).

    python experiments/thesis_toy_example/run.py      # writes toy_*.png, results.md, trajectories.npz

See README.md for the choices made where the thesis is silent.
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import equinox as eqx  # noqa: E402
import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from neurodyn.learning.losses import loss_value  # noqa: E402
from neurodyn.learning.network import init_network  # noqa: E402
from neurodyn.learning.optimizer import SGD  # noqa: E402
from neurodyn.learning.rules import RULES  # noqa: E402

HERE = Path(__file__).resolve().parent
LOSS = "squared_error"  # 0.5 ||h_2 - t||^2 per sample (thesis 5.4)
SEED = 47  # the seed of the author's toy-example scripts (PyProp, experiments/optimization_*toy_example.py)

# Step sizes from the thesis captions (Fig. 5.2, 5.3); start points, batch sizes and the number of
# iterations from the author's scripts (the thesis does not give them).
CASES = {
    "linear": dict(
        title="linear", nonlinearity="linear", start=(-1.8, -1.3), steps=100, batch=64, fresh_batches=True,
        eta_bp=0.3, eta_hat_tp=0.8, figure="5.2",
    ),
    "leaky_relu": dict(
        title="leaky ReLU (slope 0.1)", nonlinearity="leaky_relu:0.1", start=(-1.8, -0.7), steps=500, batch=1,
        fresh_batches=False, eta_bp=0.5, eta_hat_tp=1.0, figure="5.3",
    ),
}
THRESHOLDS = (1e-3, 1e-6)


def draws(case):
    """W_1* (teacher hidden weights), W_2 and the input mini-batches, in the order of the
    author's scripts: ``RandomState(47)``: ``W_1* = randn(2)``, ``W_2 = randn(2, 2)``, then
    either a fresh ``randn(batch)`` per iteration (linear) or one ``randn(batch)`` used at
    every iteration (leaky ReLU)."""
    rng = np.random.RandomState(SEED)
    w1_star = rng.randn(2)
    W2 = rng.randn(2, 2)
    if case["fresh_batches"]:
        xs = np.stack([rng.randn(case["batch"]) for _ in range(case["steps"])])
    else:
        xs = np.broadcast_to(rng.randn(case["batch"]), (case["steps"], case["batch"])).copy()
    return w1_star, W2, xs[..., None]  # xs: (steps, batch, 1)


def with_w1(net, w1):
    return eqx.tree_at(lambda n: n.W[0], net, jnp.reshape(w1, (2, 1)))


def build_rule(name, net, lr, **options):
    cls = RULES[name]
    opts = cls.Options(rule=name, frozen_layers=[2], **options)
    rule, _ = cls.build(net, opts, seed=0, lr=lr)
    return rule


def package_trajectory(rule, net, teacher, xs, lr):
    """W_1 after each of the package rule's steps (W_2 frozen; the rule sums over the
    mini-batch, so its rate is the thesis' rate over the batch size)."""
    opt = SGD(lr=lr / xs.shape[1], frozen=(2,))

    @eqx.filter_jit
    def one(rule, net, x):
        return rule.step(net, x, teacher(x), LOSS, opt)

    out = [np.asarray(net.W[0]).ravel()]
    for x in xs:
        net, rule = one(rule, net, jnp.asarray(x))
        out.append(np.asarray(net.W[0]).ravel())
    return np.stack(out), net, rule


def gn_update(net, x, t):
    """Thesis 5.10 / 5.18: ``-(E[J^T J])^{-1} E[J^T e]``, ``J = dh_2 / dW_1`` of the package
    network (automatic differentiation), ``e = h_2 - t``."""
    w1 = net.W[0].ravel()

    def out(w):
        return with_w1(net, w).forward(x).h[-1]  # (batch, 2)

    J = jax.jacfwd(out)(w1)  # (batch, 2, 2)
    e = out(w1) - t
    G = jnp.einsum("boi,boj->ij", J, J) / x.shape[0]
    g = jnp.einsum("boi,bo->i", J, e) / x.shape[0]
    return -jnp.linalg.solve(G, g)


gn_update_jit = jax.jit(gn_update)


def gn_trajectory(net, teacher, xs):
    out = [np.asarray(net.W[0]).ravel()]
    for x in xs:
        x = jnp.asarray(x)
        net = with_w1(net, net.W[0].ravel() + gn_update_jit(net, x, teacher(x)))
        out.append(np.asarray(net.W[0]).ravel())
    return np.stack(out)


# --- the thesis' closed forms, in plain numpy, to check the updates against -------------------


def act(a, slope):
    return a if slope is None else np.where(a > 0, a, slope * a)


def dact(a, slope):
    return np.ones_like(a) if slope is None else np.where(a > 0, 1.0, slope)


def closed_forms(w1, w1_star, W2, x, slope, eta_bp, eta_hat):
    """(BP 5.7/5.16, TP 5.9/5.17, GN 5.11/5.19) updates of W_1 on the batch ``x`` (batch,)."""
    a, a_star = np.outer(x, w1), np.outer(x, w1_star)  # (batch, 2)
    err = act(a, slope) - act(a_star, slope)  # s(W_1 h_0) - s(W_1* h_0)
    D = dact(a, slope)
    M = W2.T @ W2
    bp = -eta_bp * np.mean(x[:, None] * D * (err @ M.T), axis=0)
    tp = -eta_hat * np.mean(x[:, None] * D * err, axis=0)
    G = np.mean([xi**2 * np.diag(d) @ M @ np.diag(d) for xi, d in zip(x, D)], axis=0)
    gn = -np.linalg.solve(G, np.mean(x[:, None] * D * (err @ M.T), axis=0))
    return bp, tp, gn


def angle(u, v):
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        return float("nan")
    return float(np.degrees(np.arccos(np.clip(u @ v / (nu * nv), -1.0, 1.0))))


def first_below(losses, threshold):
    idx = np.flatnonzero(losses <= threshold)
    return int(idx[0]) if idx.size else None


# --- one case -----------------------------------------------------------------------------------


def run_case(key, case):
    w1_star, W2, xs = draws(case)
    slope = None if case["nonlinearity"] == "linear" else float(case["nonlinearity"].split(":")[1])
    net0 = init_network([1, 2, 2], [case["nonlinearity"], "linear"], seed=0, biases=False)
    net0 = eqx.tree_at(lambda n: n.W, net0, (jnp.asarray(np.reshape(case["start"], (2, 1))), jnp.asarray(W2)))
    teacher_net = with_w1(net0, jnp.asarray(w1_star))

    def teacher(x):
        return teacher_net(x)

    # the loss drawn and reported: linear: the expected loss (5.6) with E[h_0^2] = 1, which is the
    # loss of the single input h_0 = 1; leaky ReLU: the loss of the one training sample (5.15, batch 1)
    x_loss = jnp.ones((1, 1)) if case["fresh_batches"] else jnp.asarray(xs[0])

    @jax.jit
    def loss_of(w1s):
        def one(w1):
            net = with_w1(net0, w1)
            return jnp.mean(loss_value(LOSS, net.forward(x_loss), teacher(x_loss)))

        return jax.vmap(one)(w1s)

    traj = {}
    t0 = time.perf_counter()
    traj["BP"], _, _ = package_trajectory(build_rule("bp", net0, case["eta_bp"]), net0, teacher, xs, case["eta_bp"])
    eta_hat = case["eta_hat_tp"]
    # tp_exact: lr = eta_1 * eta_hat with eta_1 = 1 (thesis 5.8: Delta W_1 = E[D (hhat_1 - h_1) h_0])
    tp_rule = build_rule("tp_exact", net0, eta_hat, target_stepsize=eta_hat)
    traj["TP"], tp_net, tp_rule = package_trajectory(tp_rule, net0, teacher, xs, eta_hat)
    traj["GN"] = gn_trajectory(net0, teacher, xs)
    gn_rule_traj, _, _ = package_trajectory(build_rule("gn", net0, eta_hat, target_stepsize=eta_hat), net0, teacher, xs, eta_hat)
    wall = time.perf_counter() - t0

    losses = {k: np.asarray(loss_of(jnp.asarray(v))) for k, v in traj.items()}

    # checks against the closed forms, at every iterate of each trajectory
    dev = {"BP": 0.0, "TP": 0.0, "GN": 0.0}
    for k, v in traj.items():
        for i, x in enumerate(xs):
            bp, tp, gn = closed_forms(v[i], w1_star, W2, x[:, 0], slope, case["eta_bp"], eta_hat)
            ref = {"BP": bp, "TP": tp, "GN": gn}[k]
            dev[k] = max(dev[k], float(np.max(np.abs((v[i + 1] - v[i]) - ref))))
    # TP against GN at the same point (thesis: same direction; 5.21-5.22 for the ratio)
    tp_vs_gn = []
    for i, x in enumerate(xs[: min(len(xs), 12)]):  # (the ratio is 0/0 once a component has converged)
        _, tp, gn_at = closed_forms(traj["TP"][i], w1_star, W2, x[:, 0], slope, case["eta_bp"], eta_hat)
        with np.errstate(invalid="ignore", divide="ignore"):
            tp_vs_gn.append((i + 1, angle(tp, gn_at), tp / gn_at, traj["TP"][i] * float(x[0, 0])))
    bp_first = traj["BP"][1] - traj["BP"][0]
    gn_first = traj["GN"][1] - traj["GN"][0]
    tp_first = traj["TP"][1] - traj["TP"][0]
    w2_inv_err = float(np.max(np.abs(np.asarray(tp_rule.W_inv[0]) @ W2 - np.eye(2))))

    dist = {k: np.linalg.norm(v - w1_star, axis=1) for k, v in traj.items()}
    gn_exact_steps = first_below(dist["GN"], 1e-10)
    return dict(
        key=key, case=case, w1_star=w1_star, W2=W2, xs=xs, traj=traj, losses=losses, dist=dist, loss_of=loss_of,
        dev=dev, gn_rule_vs_tp=float(np.max(np.abs(gn_rule_traj - traj["TP"]))), tp_vs_gn=tp_vs_gn,
        first_angles={"TP": angle(tp_first, gn_first), "BP": angle(bp_first, gn_first)}, w2_inv_err=w2_inv_err,
        gn_exact_steps=gn_exact_steps, wall=wall, slope=slope,
    )


# --- figure -------------------------------------------------------------------------------------

STYLE = {
    "GN": dict(color="tab:green", marker="o", ms=8, lw=2.2, label="GN: Gauss-Newton on $W_1$ (5.10)"),
    "TP": dict(color="tab:red", marker="*", ms=10, lw=1.6, label="TP, exact inverses (rule tp_exact)"),
    "BP": dict(color="tab:blue", marker=".", ms=9, lw=1.4, label="BP (rule bp)"),
}


def plot_case(r, path):
    """One row: the loss landscape with GN, TP and BP each on its own panel (as the thesis'
    figures), the other two methods faint for reference, then the loss against the step."""
    case, traj, w1_star = r["case"], r["traj"], r["w1_star"]
    # leaky ReLU: show the lines w_1i = 0 where the landscape's pieces meet
    pts = np.concatenate(list(traj.values()) + [w1_star[None]] + ([np.zeros((1, 2))] if r["slope"] is not None else []))
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = 0.15 * (hi - lo).max()
    g0 = np.linspace(lo[0] - pad, hi[0] + pad, 241)
    g1 = np.linspace(lo[1] - pad, hi[1] + pad, 241)
    G0, G1 = np.meshgrid(g0, g1)
    Z = np.asarray(r["loss_of"](jnp.asarray(np.stack([G0.ravel(), G1.ravel()], axis=1)))).reshape(G0.shape)
    levels = np.geomspace(max(Z.min(), 1e-3), Z.max(), 12)

    fig, axes = plt.subplots(1, 4, figsize=(20, 6.4), gridspec_kw=dict(width_ratios=[1, 1, 1, 1.25]))
    n_steps = len(traj["BP"]) - 1
    # every step for the first 20, then every 25th (the slow tails would otherwise pile up markers)
    mark = sorted(set(range(min(21, n_steps + 1))) | set(range(0, n_steps + 1, 25)))
    for ax, k in zip(axes[:3], ("GN", "TP", "BP")):
        ax.contourf(G0, G1, Z, levels=levels, cmap="Greys", alpha=0.35, extend="both")
        cs = ax.contour(G0, G1, Z, levels=levels, colors="0.45", linewidths=0.7)
        ax.clabel(cs, cs.levels[::2], fmt="%.2g", fontsize=8)
        if r["slope"] is not None:
            ax.axvline(0.0, color="k", ls=":", lw=1.2)
            ax.axhline(0.0, color="k", ls=":", lw=1.2)
        for other in ("GN", "TP", "BP"):
            if other != k:
                v = traj[other]
                ax.plot(v[:, 0], v[:, 1], color=STYLE[other]["color"], lw=1.0, alpha=0.3)
        st = STYLE[k]
        v = traj[k]
        ax.plot(v[:, 0], v[:, 1], color=st["color"], lw=st["lw"], marker=st["marker"], ms=st["ms"], markevery=mark, zorder=4)
        ax.plot(*v[0], "ks", ms=9, zorder=6)
        ax.plot(*w1_star, "kX", ms=11, zorder=6)
        ax.set_xlabel("$w_{11}$ (weight $h_0 \\to h_{1,1}$)", fontsize=12)
        ax.set_ylabel("$w_{12}$ (weight $h_0 \\to h_{1,2}$)", fontsize=12)
        rate = {"GN": "full steps", "TP": f"$\\hat\\eta$ = {case['eta_hat_tp']}", "BP": f"$\\eta$ = {case['eta_bp']}"}[k]
        ax.set_title(f"{k} ({rate})", fontsize=12)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlim(g0[0], g0[-1])
        ax.set_ylim(g1[0], g1[-1])

    ax = axes[3]
    for k in ("GN", "TP", "BP"):
        L = np.maximum(r["losses"][k], 1e-32)
        ax.semilogy(np.arange(len(L)), L, color=STYLE[k]["color"], lw=2, label=k)
    for th in THRESHOLDS:
        ax.axhline(th, color="0.6", ls="--", lw=0.8)
    ax.set_ylim(1e-16, 3 * max(L.max() for L in r["losses"].values()))
    ax.set_xlabel("update step", fontsize=12)
    what = "expected loss (5.6), $E[h_0^2] = 1$" if case["fresh_batches"] else "loss of the training sample (5.15)"
    ax.set_ylabel(what, fontsize=12)
    ax.set_title("loss (dashed: thresholds $10^{-3}$, $10^{-6}$)", fontsize=12)
    ax.legend(fontsize=10)
    ax.grid(alpha=0.3, which="both")
    data = (
        f"batch {case['batch']} of fresh $h_0 \\sim N(0, 1)$ each step"
        if case["fresh_batches"]
        else f"batch 1, the same sample $h_0$ = {r['xs'][0, 0, 0]:.3f} at every step"
    )
    fig.suptitle(
        f"Thesis section 5.1.1, Fig. {case['figure']}: {case['title']} toy example 1-2-2, only $W_1$ trained, {n_steps} updates, {data}",
        fontsize=13,
    )
    handles = [
        plt.Line2D([], [], color=STYLE[k]["color"], lw=STYLE[k]["lw"], marker=STYLE[k]["marker"], ms=STYLE[k]["ms"], label=STYLE[k]["label"])
        for k in ("GN", "TP", "BP")
    ]
    handles += [
        plt.Line2D([], [], color="k", marker="s", ls="", ms=9, label="start $W_1$"),
        plt.Line2D([], [], color="k", marker="X", ls="", ms=11, label="teacher $W_1^*$ (optimum)"),
        plt.Line2D([], [], color="0.45", lw=0.8, label="loss contours (labelled)"),
    ]
    if r["slope"] is not None:
        handles.append(plt.Line2D([], [], color="k", ls=":", lw=1.2, label="$w_{1i} = 0$: unit $i$ of $h_1$ changes slope"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=10.5, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- results.md ---------------------------------------------------------------------------------


def fmt(v):
    if v is None:
        return "not reached"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def results_md(runs, total_wall):
    r0 = runs[0]
    lines = [
        "# Thesis 5.1.1 toy example: results",
        "",
        "Generated by `run.py`; do not edit. See README.md for the set-up and the comparison with the thesis.",
        "",
        f"Teacher and fixed weights (numpy `RandomState({SEED})`, as the author's scripts): "
        f"`W_1* = [{r0['w1_star'][0]:.4f}, {r0['w1_star'][1]:.4f}]`, "
        f"`W_2 = [[{r0['W2'][0, 0]:.4f}, {r0['W2'][0, 1]:.4f}], [{r0['W2'][1, 0]:.4f}, {r0['W2'][1, 1]:.4f}]]` "
        f"(singular values {', '.join(f'{s:.3f}' for s in np.linalg.svd(r0['W2'])[1])}).",
        "",
        f"Wall time of the training loops (compilation included): "
        + ", ".join(f"{r['key']} {r['wall']:.1f} s" for r in runs)
        + f"; whole script {total_wall:.1f} s.",
        "",
    ]
    for r in runs:
        c = r["case"]
        what = "expected loss 5.6 (E[h_0^2] = 1)" if c["fresh_batches"] else f"loss 5.15 of the one training sample h_0 = {r['xs'][0, 0, 0]:.4f}"
        lines += [
            f"## {c['title']} (thesis Fig. {c['figure']})",
            "",
            f"Start `W_1 = {list(c['start'])}`, {c['steps']} updates, batch {c['batch']}"
            + (" (fresh N(0, 1) inputs each step)" if c["fresh_batches"] else " (the same sample at every step)")
            + f"; BP eta = {c['eta_bp']}, TP eta_hat = {c['eta_hat_tp']} (eta_1 = 1), GN full steps. Loss: {what}; "
            f"initial loss {r['losses']['BP'][0]:.4g}.",
            "",
            "| method | final loss | final distance to W_1* | steps to loss <= 1e-3 | steps to loss <= 1e-6 | loss after 1 / 2 / 10 steps |",
            "|---|---|---|---|---|---|",
        ]
        for k in ("GN", "TP", "BP"):
            L = r["losses"][k]
            lines.append(
                f"| {k} | {L[-1]:.3g} | {r['dist'][k][-1]:.3g} | {fmt(first_below(L, THRESHOLDS[0]))} | {fmt(first_below(L, THRESHOLDS[1]))} "
                f"| {L[1]:.3g} / {L[2]:.3g} / {L[10]:.3g} |"
            )
        lines += [
            "",
            f"- GN reaches W_1* (distance < 1e-10) after {fmt(r['gn_exact_steps'])} step(s).",
            f"- Angle of the first update to the first GN update: TP {r['first_angles']['TP']:.3g} deg, BP {r['first_angles']['BP']:.3g} deg.",
            "- TP update against the GN update taken at the same point (TP's own iterates): angle and component ratio "
            "dW_TP / dW_GN"
            + ("" if r["slope"] is None else ", and the hidden pre-activations W_1 h_0 there (their signs set each unit's slope)")
            + ":",
            "",
            "| step | angle (deg) | ratio unit 1 | ratio unit 2 |" + ("" if r["slope"] is None else " W_1 h_0 |"),
            "|---|---|---|---|" + ("" if r["slope"] is None else "---|"),
        ]
        for step, ang, ratio, pre in r["tp_vs_gn"][:6]:
            extra = "" if r["slope"] is None else f" [{pre[0]:.3f}, {pre[1]:.3f}] |"
            lines.append(f"| {step} | {ang:.3g} | {ratio[0]:.4g} | {ratio[1]:.4g} |" + extra)
        lines += [
            "",
            "Package checks (max abs deviation over all steps):",
            "",
            f"- `bp` step vs thesis {'5.7' if r['slope'] is None else '5.16'}: {r['dev']['BP']:.2e}; "
            f"`tp_exact` step vs {'5.9' if r['slope'] is None else '5.17'}: {r['dev']['TP']:.2e}; "
            f"GN (autodiff Jacobian of the package network) vs {'5.11' if r['slope'] is None else '5.19'}: {r['dev']['GN']:.2e}.",
            f"- `gn` rule (Gauss-Newton targets + local step, same lr and eta_hat as TP) vs `tp_exact` trajectory: {r['gn_rule_vs_tp']:.2e} "
            "(identical here: with a square invertible W_2, J_1^+ = W_2^{-1}); it is not the thesis' GN.",
            f"- `tp_exact` inverse after training: max |W_2^-1 W_2 - I| = {r['w2_inv_err']:.2e} (W_2 frozen).",
            "",
        ]
    return "\n".join(lines)


def main():
    t0 = time.perf_counter()
    runs = [run_case(k, c) for k, c in CASES.items()]
    for r in runs:
        plot_case(r, HERE / f"toy_{r['key']}.png")
    np.savez(
        HERE / "trajectories.npz",
        **{f"{r['key']}_{k}": v for r in runs for k, v in r["traj"].items()},
        **{f"{r['key']}_loss_{k}": v for r in runs for k, v in r["losses"].items()},
        w1_star=runs[0]["w1_star"], W2=runs[0]["W2"], leaky_relu_h0=runs[1]["xs"][0, :, 0],
    )
    total = time.perf_counter() - t0
    (HERE / "results.md").write_text(results_md(runs, total))
    print((HERE / "results.md").read_text())
    print(f"total {total:.1f} s")


if __name__ == "__main__":
    main()
