"""Bengio (2020) iterative inverse refinement: decoder-input (eqs. 27-30) and decoder-output
(eqs. 35-37) corrections, run through neurodyn's ``refine_input`` / ``refine_output``.

One layer ``f(u) = W s(u) + b`` (30 units, leaky ReLU, slope 0.3, so ``f`` is invertible and
``tau* = f^{-1}(tau_above)`` has a closed form), a batch of activities ``a ~ N(0, I)`` and targets
``tau_above = f(a) + 5% of ||f(a)||`` in a random direction. Decoders:

- "g∘f − I controlled": ``g = P ∘ f^{-1}``, ``P(x) = x + eps R tanh(x)``, so ``g(f(u)) - u =
  eps R tanh(u)``: the map that eq. 35 contracts;
- "f∘g − I controlled": ``g = f^{-1} ∘ Q``, ``Q(v) = v + eps R tanh(v)``, so ``f(g(v)) - v =
  eps R tanh(v)``: the map that eq. 27 contracts;
- "fitted package form": neurodyn's decoder form ``g(v) = Omega s(v) + c`` fitted by least
  squares to the regular auto-encoder error ``||g(f(a)) - a||^2``.

``R`` is symmetric orthogonal (eigenvalues +-1) and ``eps`` is set so that the estimated
Lipschitz constant alpha_hat (below) of the controlled map equals 0.2, 0.5 or 0.8.

alpha_hat of a map ``h`` (``g∘f - I`` or ``f∘g - I``): the largest spectral norm of its Jacobian
(``jax.jacfwd``) over a reference cloud (the activities and the exact preimages, or their images
under ``f``) and over the iterates the refinement visits. For a piecewise-smooth map this is the
largest local Lipschitz constant seen, a lower estimate of the Lipschitz constant over the region.

Each refinement is run from the package's start ``g(tau_above)`` and from the difference target
``a + g(tau_above) - g(f(a))`` (the same function with the decoder shifted by the constant
``a - g(f(a))``: eq. 35 is unchanged by the shift, and its start becomes the difference target).

Outputs (next to this file): ``iterative_inverse.png`` and ``results.md``.
Run: ``python experiments/bengio_iterative_inverse/run.py`` (about 20 s of CPU time, mostly JIT compilation).
"""

import pathlib
import time
from functools import partial

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from neurodyn.learning.rules.dtp_bengio import refine_input, refine_output  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
N = 30  # units in both layers
SLOPE = 0.3  # leaky ReLU slope
BATCH = 256  # samples (a, tau_above)
N_FIT = 4096  # samples for the least-squares decoder
T = 30  # iterations
MOVE = 0.05  # ||tau_above - f(a)|| / ||f(a)||
ALPHAS = (0.2, 0.5, 0.8)
SEED = 0
FLOOR = 1e-12  # relative errors below this are round-off (float64)
REPORT_T = (0, 1, 5, 20)
FIT_T = (1, 20)  # window of the fit of the contraction rate
VISIT_T = jnp.array([0, 1, 2, 3, 5, 10, 20, T])  # iterates where alpha_hat is also evaluated


def lrelu(x, slope):
    return jnp.where(x >= 0, x, slope * x)


def make_problem(rng):
    U, _ = np.linalg.qr(rng.normal(size=(N, N)))
    V, _ = np.linalg.qr(rng.normal(size=(N, N)))
    W = U @ np.diag(np.geomspace(0.5, 2.0, N)) @ V.T  # singular values 0.5..2 (condition 4)
    b = 0.1 * rng.normal(size=N)
    W_inv = np.linalg.inv(W)
    Q, _ = np.linalg.qr(rng.normal(size=(N, N)))
    R = Q @ np.diag(rng.choice([-1.0, 1.0], N)) @ Q.T  # symmetric, orthogonal: ||R|| = rho(R) = 1

    def f(u):
        return lrelu(u, SLOPE) @ W.T + b

    def f_inv(v):
        return lrelu((v - b) @ W_inv.T, 1.0 / SLOPE)

    a = jnp.asarray(rng.normal(size=(BATCH, N)))
    y = f(a)
    d = rng.normal(size=(BATCH, N))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    tau_above = y + MOVE * jnp.linalg.norm(y, axis=1, keepdims=True) * d
    tau_star = f_inv(tau_above)
    a_fit = jnp.asarray(rng.normal(size=(N_FIT, N)))
    return dict(f=f, f_inv=f_inv, R=jnp.asarray(R), a=a, y=y, tau_above=tau_above, tau_star=tau_star, a_fit=a_fit)


def decoder(p, kind, theta):
    """The decoder g of one family, parameters ``theta`` (traced, so one compilation per family):

    - ``"out"`` (g∘f − I controlled): g = P o f^{-1}, P(x) = x + eps R tanh(x), so g(f(u)) - u = eps R tanh(u);
    - ``"in"`` (f∘g − I controlled): g = f^{-1} o Q, Q(v) = v + eps R tanh(v), so f(g(v)) - v = eps R tanh(v);
    - ``"fit"``: neurodyn's decoder form Omega s(v) + c, ``theta = (Omega, c)``.
    """
    if kind == "out":
        return lambda v: p["f_inv"](v) + theta * jnp.tanh(p["f_inv"](v)) @ p["R"].T
    if kind == "in":
        return lambda v: p["f_inv"](v + theta * jnp.tanh(v) @ p["R"].T)
    Omega, c = theta
    return lambda v: lrelu(v, SLOPE) @ Omega.T + c


def fit_decoder(p):
    """(Omega, c) of the package-form decoder by least squares on the regular auto-encoder error ||g(f(a)) - a||^2."""
    a = np.asarray(p["a_fit"])
    X = np.c_[np.asarray(lrelu(p["f"](a), SLOPE)), np.ones(len(a))]
    sol, *_ = np.linalg.lstsq(X, a, rcond=None)
    return jnp.asarray(sol[:N].T), jnp.asarray(sol[N])


def compiled(p):
    """Jitted refinements and Jacobians, shared by all decoders of a family.

    ``shift`` (per sample) is added to the decoder's output: zero for the package's start
    ``tau_0 = g(tau_above)``, ``a - g(f(a))`` to start from the difference target."""
    f = p["f"]

    @partial(jax.jit, static_argnums=(0, 1))
    def refine(kind, which, theta, shift):
        g = decoder(p, kind, theta)
        run = refine_output if which == "output" else refine_input
        return run(f, lambda v: g(v) + shift, p["tau_above"], T)

    @partial(jax.jit, static_argnums=(0, 1))
    def jac(kind, which, theta, points, shifts):
        """Jacobian minus I of the map the refinement contracts: g∘f (eq. 35) or f∘g (eq. 27)."""
        g = decoder(p, kind, theta)
        h = (lambda u, s: g(f(u)) + s) if which == "output" else (lambda v, s: f(g(v) + s))
        return jax.vmap(jax.jacfwd(h))(points, shifts) - jnp.eye(N)

    return refine, jac


def lipschitz(J):
    """alpha_hat: the largest spectral norm of the Jacobians (P, N, N) (sqrt of the top eigenvalue of J^T J)."""
    J = np.asarray(J)
    return float(np.sqrt(np.linalg.eigvalsh(np.einsum("pji,pjk->pik", J, J))[:, -1].max()))


def spectral_radius(J):
    """Median over the points of the spectral radius of the Jacobians (P, N, N)."""
    return float(np.median(np.abs(np.linalg.eigvals(np.asarray(J))).max(-1)))


def input_states(f, tau_above, path):
    """The decoder inputs u_t of eq. 27 behind the returned iterates tau_t = g(u_t):
    u_0 = tau_above, u_{t+1} - u_t = tau_above - f(tau_t) (also the residual of eq. 30)."""
    steps = tau_above - f(path[:-1])
    return jnp.concatenate([tau_above[None], tau_above + jnp.cumsum(steps, axis=0)])


def analyse(p, fns, kind, theta, which):
    """Both starts of one refinement with one decoder: errors, rates, alpha_hat, bound checks."""
    refine, jac = fns
    f, a, y, tau_above, tau_star = p["f"], p["a"], p["y"], p["tau_above"], p["tau_star"]
    move = jnp.linalg.norm(tau_star - a, axis=-1)
    res = {}
    for start, shift in {"g": jnp.zeros_like(a), "dt": a - decoder(p, kind, theta)(y)}.items():
        path = refine(kind, which, theta, shift)
        if which == "output":
            last = path[-1]
            visited = jnp.concatenate([a[None], tau_star[None], path[VISIT_T]])
        else:
            u = input_states(f, tau_above, path)
            last = u[-1]
            visited = jnp.concatenate([y[None], tau_above[None], u[VISIT_T]])
        shifts = jnp.broadcast_to(shift, visited.shape).reshape(-1, N)
        err = np.asarray(jnp.linalg.norm(path - tau_star, axis=-1) / move)  # (T+1, BATCH)
        resid = np.asarray(jnp.linalg.norm(f(path) - tau_above, axis=-1))
        alpha_hat = lipschitz(jac(kind, which, theta, visited.reshape(-1, N), shifts))
        # the quantity the paper's argument bounds: the error itself for eq. 35 (e_{t+1} = -(h(tau_t) - h(tau*))),
        # the increments u_{t+1} - u_t = tau_above - f(tau_t) for eq. 27 (eq. 30)
        bounded = err if which == "output" else resid / resid[0]
        t = np.arange(T + 1)[:, None]
        bound = (alpha_hat**t) * bounded[0]
        viol = (bounded > bound * (1 + 1e-9) + FLOOR)[1:].mean() if alpha_hat < 1 else float("nan")
        med = np.median(err, axis=1)
        window = np.arange(FIT_T[0], FIT_T[1] + 1)
        window = window[med[window] > 100 * FLOOR]
        rate = float(np.exp(np.polyfit(window, np.log(med[window]), 1)[0])) if len(window) >= 3 else float("nan")
        rho = spectral_radius(jac(kind, which, theta, last, shift))
        res[start] = dict(err=err, med=med, rate=rate, alpha_hat=alpha_hat, viol=viol, rho=rho, max20=float(err[20].max()))
    return res


def fmt(x):
    if x != x:
        return "–"
    return f"{x:.2g}" if abs(x) >= 1e-3 else f"{x:.1e}"


def main():
    t0, c0 = time.perf_counter(), time.process_time()
    p = make_problem(np.random.default_rng(SEED))
    fns = compiled(p)
    jac = fns[1]
    resid = float(jnp.abs(p["f"](p["tau_star"]) - p["tau_above"]).max())

    # reference clouds: activities and exact preimages (input space of g∘f), their images (input space of f∘g)
    zero = jnp.zeros((2 * BATCH, N))
    cloud = {"output": jnp.concatenate([p["a"], p["tau_star"]]), "input": jnp.concatenate([p["y"], p["tau_above"]])}
    # both controlled maps are eps R tanh(.), so alpha_hat is linear in eps: calibrate at eps = 1
    unit_out = lipschitz(jac("out", "output", jnp.asarray(1.0), cloud["output"], zero))
    unit_in = lipschitz(jac("in", "input", jnp.asarray(1.0), cloud["input"], zero))

    decoders = []  # (family label, target alpha, eps, kind, theta)
    for alpha in ALPHAS:
        decoders.append(("g∘f − I controlled", alpha, alpha / unit_out, "out", jnp.asarray(alpha / unit_out)))
    for alpha in ALPHAS:
        decoders.append(("f∘g − I controlled", alpha, alpha / unit_in, "in", jnp.asarray(alpha / unit_in)))
    decoders.append(("fitted package form", float("nan"), float("nan"), "fit", fit_decoder(p)))

    rows = []
    for family, alpha, eps, kind, theta in decoders:
        cal_out = lipschitz(jac(kind, "output", theta, cloud["output"], zero))
        cal_in = lipschitz(jac(kind, "input", theta, cloud["input"], zero))
        g_y = decoder(p, kind, theta)(p["y"])
        recon = float(np.median(np.linalg.norm(np.asarray(g_y - p["a"]), axis=-1) / np.linalg.norm(np.asarray(p["tau_star"] - p["a"]), axis=-1)))
        rows.append(dict(family=family, alpha=alpha, eps=eps, cal_out=cal_out, cal_in=cal_in, recon=recon, output=analyse(p, fns, kind, theta, "output"), input=analyse(p, fns, kind, theta, "input")))
    runtime = (time.perf_counter() - t0, time.process_time() - c0)

    plot(rows)
    write_results(rows, resid, runtime)
    print(f"done in {runtime[0]:.1f} s wall ({runtime[1]:.1f} s CPU); wrote {HERE / 'iterative_inverse.png'} and {HERE / 'results.md'}")


COLORS = {0.2: "tab:blue", 0.5: "tab:orange", 0.8: "tab:red"}


def plot(rows):
    fig, axes = plt.subplots(2, 2, figsize=(12, 9), sharex=True, sharey=True)
    t = np.arange(T + 1)
    families = ["g∘f − I controlled", "f∘g − I controlled"]
    for i, family in enumerate(families):
        for j, which in enumerate(["output", "input"]):
            ax = axes[i, j]
            for row in rows:
                if row["family"] != family and not (row["family"] == "fitted package form" and i == 0):
                    continue
                r = row[which]
                color = COLORS.get(row["alpha"], "black")
                ax.semilogy(t, np.maximum(r["g"]["med"], 1e-16), "-", color=color, lw=1.8)
                ax.semilogy(t, np.maximum(r["dt"]["med"], 1e-16), "--", color=color, lw=1.5)
                ax.semilogy([0], [r["dt"]["med"][0]], "D", color=color, ms=6, mec="black", mew=0.6)
                ah = r["g"]["alpha_hat"]
                if ah < 1:
                    ax.semilogy(t, r["g"]["med"][0] * ah**t, ":", color=color, lw=1.8)
            title = "decoder-output correction, eq. 35 (needs g∘f ≈ I)" if which == "output" else "decoder-input correction, eq. 27 (needs f∘g ≈ I)"
            ax.set_title(f"{title}\ndecoder: {family}", fontsize=10)
            ax.set_ylim(1e-15, 1e2)
            ax.grid(True, which="major", alpha=0.3)
            if i == 1:
                ax.set_xlabel("iteration t")
            if j == 0:
                ax.set_ylabel(f"relative error ‖τ_t − τ*‖ / ‖τ* − a‖\n(median over {BATCH} samples)")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, lw=2, label=f"α = {a} (target α̂ of the controlled map)") for a, c in COLORS.items()]
    handles += [Line2D([], [], color="black", lw=2, label="fitted package-form decoder (top row; α̂ > 1)")]
    handles += [
        Line2D([], [], color="gray", ls="-", lw=2, label="start τ_0 = g(τ_above) (package)"),
        Line2D([], [], color="gray", ls="--", lw=2, label="start τ_0 = difference target (DTP)"),
        Line2D([], [], color="gray", ls=":", lw=2, label="bound α̂^t × (solid line at t = 0), where α̂ < 1"),
        Line2D([], [], color="gray", ls="", marker="D", mec="black", mew=0.6, label="plain difference target (no iteration)"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=9, frameon=False)
    fig.suptitle(f"Bengio (2020) iterative inverse refinement: error vs iteration (leaky-ReLU layer, {N} units, target move {MOVE:.0%} of ‖f(a)‖)", fontsize=12)
    fig.tight_layout(rect=(0, 0.08, 1, 0.96))
    fig.savefig(HERE / "iterative_inverse.png", dpi=120)
    plt.close(fig)


def write_results(rows, resid, runtime):
    lines = [
        "# Bengio (2020) iterative inverse refinement: measured numbers",
        "",
        "Generated by `python experiments/bengio_iterative_inverse/run.py` (seed 0). "
        f"Layer `f(u) = W lrelu_{SLOPE}(u) + b`, {N} units, `W` with singular values 0.5..2; {BATCH} samples "
        f"`a ~ N(0, I)`, targets `tau_above = f(a) + {MOVE:g} ||f(a)|| d` (`d` random unit vector); exact preimage "
        f"`tau* = f^-1(tau_above)` in closed form (max |f(tau*) - tau_above| = {resid:.1e}). "
        f"Runtime {runtime[0]:.1f} s wall, {runtime[1]:.1f} s CPU (including JIT compilation; wall time depends on the load). "
        "Values at the round-off floor (~1e-14) vary slightly from run to run.",
        "",
        "Errors are `||tau_t - tau*|| / ||tau* - a||` (the error of the layer-below target relative to the move it asks "
        "for), medians over the samples. `α̂`: largest spectral norm of the Jacobian of the map minus I over the "
        "reference cloud and the visited iterates (`g∘f − I` for eq. 35, `f∘g − I` for eq. 27). `ρ`: median spectral radius "
        "of that Jacobian at the last iterate (the asymptotic rate where the iteration has converged). `rate`: "
        f"exp(slope) of a least-squares fit of log(median error) over t = {FIT_T[0]}..{FIT_T[1]} (points above "
        f"{100 * FLOOR:.0e} only). `bound violations`: fraction of (sample, t ≥ 1) with "
        "`e_t > α̂^t e_0` (eq. 35: the error itself; eq. 27: the increment `||u_{t+1} - u_t|| = ||f(tau_t) - tau_above||`, eq. 30); "
        "'–' where α̂ ≥ 1 (no bound). Start `g`: `tau_0 = g(tau_above)` as in neurodyn; start `DT`: the difference target.",
        "",
        "## Decoders",
        "",
        "| decoder | target α | eps | α̂ of g∘f − I (cloud) | α̂ of f∘g − I (cloud) | median reconstruction error ‖g(f(a)) − a‖ / ‖τ* − a‖ |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['family']} | {fmt(r['alpha'])} | {fmt(r['eps'])} | {fmt(r['cal_out'])} | {fmt(r['cal_in'])} | {fmt(r['recon'])} |")
    for which, title in [("output", "Decoder-output correction (eq. 35), contracts g∘f − I"), ("input", "Decoder-input correction (eq. 27), contracts f∘g − I")]:
        lines += [
            "",
            f"## {title}",
            "",
            "| decoder | target α | α̂ | ρ | rate (start g) | rate (start DT) | e_0 | e_1 | e_5 | e_20 | DT e_0 | DT e_1 | DT e_5 | DT e_20 | max e_20 (g / DT) | bound violations (g / DT) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            g, dt = r[which]["g"], r[which]["dt"]
            cells = [r["family"], fmt(r["alpha"]), fmt(g["alpha_hat"]), fmt(g["rho"]), fmt(g["rate"]), fmt(dt["rate"])]
            cells += [fmt(g["med"][k]) for k in REPORT_T] + [fmt(dt["med"][k]) for k in REPORT_T]
            cells += [f"{fmt(g['max20'])} / {fmt(dt['max20'])}", f"{fmt(g['viol'])} / {fmt(dt['viol'])}"]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    (HERE / "results.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
