"""Random screen of the block-tridiagonal Jacobian of the segregated-dendrite mixture model.

Thesis (Meulemans 2019), section 6.7, eqs. (6.38)-(6.42): the linearisation of

    tau dh_i/dt = -h_i + (1 - mu) f_i(h_{i-1}) + mu g_i(h_{i+1}),   i = 1..L,

with exact inverses g_i = f_{i+1}^{-1} (h_0 and g_L = h_L^trgt held fixed) has the Jacobian

    block (i, i)   = -I
    block (i, i-1) = (1 - mu) J_i          i = 2..L   (d f_i / d h_{i-1})
    block (i-1, i) = mu J_i^{-1}           i = 2..L   (d g_{i-1} / d h_i = J_{f_i}^{-1})

i.e. the lower block in block-row i and the upper block in block-column i carry the same
J_i.  The thesis says it "checked experimentally" on 100,000 random cases that every
eigenvalue has a negative real part.  This script repeats that screen (vectorised, float64),
compares every computed spectral abscissa with the closed form

    alpha(mu, L) = -1 + 2 sqrt(mu (1 - mu)) cos(pi / (L + 1)),

repeats it with approximate inverses J_i^{-1} (I + Delta_i), ||Delta_i||_2 = eps, and runs a
small control with the blocks paired by row instead of by column.

Every matrix is the circuit's own analytic Jacobian, ``DendriticMixture.block_matrix``
(neurodyn.circuits.dendritic_mixture, eq. 6.40) with linear s_i (J_{f_i} = W_i = J_i) and
the inverses J_i^{-1} (I + Delta_i) (numpy) as learned inverses Q_{i-1} (see ``_block_matrix``).

Usage:  python experiments/block_tridiagonal_screen/run.py [--seed 0] [--n 100000] [--quick]
Outputs next to this file: results.json, results.md, spectral_abscissa.png.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from neurodyn.circuits import DendriticMixture  # noqa: E402
from neurodyn.core.nonlinearities import parse  # noqa: E402

HERE = Path(__file__).resolve().parent
LINEAR = parse("linear")

N_SIZES = tuple(range(1, 11))  # block size n
DEPTHS = tuple(range(2, 7))  # number of layers L (blocks per side)
EPS_LEVELS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)  # spectral norm of Delta_i
SIGMA_RANGE = (0.1, 10.0)  # sigma ~ log-uniform on this interval, one per matrix
MU_RANGE = (0.0, 0.5)  # mu ~ U(0, 0.5), one per matrix
COND_MAX = 1e12  # draws with any cond_2(J_i) above this are skipped and counted
CHUNK = 4000  # matrices per batched eigvals call
JAC_CHUNK = 1024  # matrices per compiled block_matrix call
MU_BINS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
SIGMA_BINS = (0.1, 0.3, 1.0, 3.0, 10.0)
QUANTILES = (0.0, 0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999, 1.0)


# ----------------------------------------------------------------------------- matrices
def analytic_abscissa(mu, L):
    """Largest eigenvalue of the exact-inverse Jacobian (all its eigenvalues are real)."""
    return -1.0 + 2.0 * np.sqrt(mu * (1.0 - mu)) * np.cos(np.pi / (np.asarray(L) + 1.0))


def analytic_spectrum(mu, L):
    """The L distinct eigenvalues (each has multiplicity n) of the exact-inverse Jacobian."""
    k = np.arange(1, L + 1)
    return -1.0 + 2.0 * math.sqrt(mu * (1.0 - mu)) * np.cos(k * np.pi / (L + 1))


def _block_matrix(mu, J, Q):
    """One Jacobian (6.40) from ``DendriticMixture.block_matrix``: linear s (so J_{f_i} = W_i),
    learned inverses g_i = Q_i h_{i+1} (so J_{g_i} = Q_i), tau = 1, no teaching signal, at
    h = 0; W_2..W_L = J (J_2..J_L), Q_1..Q_{L-1} = Q. The circuit has one more layer, L+1,
    whose rows and columns are dropped: the principal submatrix of h_1..h_L is the Jacobian
    with g_L held fixed (the thesis's g_L = h_L^trgt; the circuit's own top layer would put
    -(1-mu) I in the last diagonal block)."""
    L, n = J.shape[0] + 1, J.shape[-1]
    eye = jnp.eye(n, dtype=J.dtype)
    c = DendriticMixture(W=(eye, *J, eye), Q=(*Q, eye), s=(LINEAR,) * (L + 1), t=(LINEAR,) * L, mu=mu, tau=1.0, eta_hat=0.0, inverses="learned")
    zero = jnp.zeros(n, J.dtype)
    return c.block_matrix({f"h_{i}": zero for i in range(1, L + 2)}, {"x": zero, "target": zero})[: n * L, : n * L]


_block_matrices = jax.jit(jax.vmap(_block_matrix))


def mixture_jacobians(mu, J, Q):
    """Batched :func:`_block_matrix`: mu (B,), J and Q (B, L-1, n, n). Runs in chunks of
    JAC_CHUNK (the last padded with copies of the first matrix), so that each (n, L) compiles once."""
    B, Lm1, n, _ = J.shape
    out = np.empty((B, n * (Lm1 + 1), n * (Lm1 + 1)))
    for s in range(0, B, JAC_CHUNK):
        args = [x[s : s + JAC_CHUNK] for x in (mu, J, Q)]
        k = len(args[0])
        args = [np.concatenate([x, np.repeat(x[:1], JAC_CHUNK - k, axis=0)]) for x in args]
        out[s : s + k] = np.asarray(_block_matrices(*args))[:k]
    return out


def thesis_matrix(mu, J, delta=None):
    """Thesis reading: block (i, i-1) = (1-mu) J_i, block (i-1, i) = mu J_i^{-1} (I + Delta_i).

    J: (B, L-1, n, n) holds J_2..J_L.  delta (same shape) or None for exact inverses.
    The inverses (numpy) are the circuit's learned Q_{i-1} (see ``_block_matrix``).
    """
    Jinv = np.linalg.inv(J)
    return mixture_jacobians(mu, J, Jinv if delta is None else Jinv + Jinv @ delta)


def rowwise_matrix(mu, J_all):
    """Control reading: block (i, i-1) = (1-mu) J_i, block (i, i+1) = mu J_i^{-1}.

    J_all: (B, L, n, n) holds J_1..J_L; the lower diagonal uses J_2..J_L, the upper
    diagonal J_1..J_{L-1} (each block row pairs J_i with its own inverse).
    """
    return mixture_jacobians(mu, J_all[:, 1:], np.linalg.inv(J_all[:, :-1]))


def spectral_abscissa(A):
    out = np.empty(A.shape[0])
    for s in range(0, A.shape[0], CHUNK):
        out[s : s + CHUNK] = np.linalg.eigvals(A[s : s + CHUNK]).real.max(axis=-1)
    return out


def draw(rng, B, n, L, n_mats):
    """mu ~ U(0, 0.5); sigma ~ logU(0.1, 10); J = sigma * N(0, 1) / sqrt(n) (n_mats per matrix)."""
    mu = rng.uniform(*MU_RANGE, size=B)
    mu = np.where(mu > 0.0, mu, 0.25)  # U[0, 0.5) can return exactly 0 (prob 2^-53)
    sigma = np.exp(rng.uniform(math.log(SIGMA_RANGE[0]), math.log(SIGMA_RANGE[1]), size=B))
    J = sigma[:, None, None, None] * rng.standard_normal((B, n_mats, n, n)) / math.sqrt(n)
    cond = np.linalg.cond(J).max(axis=1)  # worst block of each matrix
    return mu, sigma, J, cond


def perturbation_amplification(J, G):
    """max_i ||P_i^{-1} G_i P_i||_2 with P_i = J_i J_{i-1} ... J_2 (see README, bound)."""
    B, Lm1, n, _ = J.shape
    P = np.broadcast_to(np.eye(n), (B, n, n))
    worst = np.zeros(B)
    for k in range(Lm1):
        P = J[:, k] @ P
        Gt = np.linalg.solve(P, G[:, k] @ P)
        worst = np.maximum(worst, np.linalg.norm(Gt, ord=2, axis=(-2, -1)))
    return worst


# ----------------------------------------------------------------------------- sanity
def sanity_checks():
    """Hand-computable cases (README, "Worked example"), asserted before the screen."""
    # L = 2, scalar J = j:  A = [[-1, mu/j], [(1-mu) j, -1]], eigenvalues -1 +- sqrt(mu(1-mu)).
    for mu, j in [(0.2, 3.0), (0.2, -0.05), (0.45, 1e3)]:
        A = thesis_matrix(np.array([mu]), np.array([[[[j]]]]))[0]
        assert np.allclose(A, [[-1.0, mu / j], [(1 - mu) * j, -1.0]])
        ev = np.sort(np.linalg.eigvals(A).real)
        r = math.sqrt(mu * (1 - mu))
        assert np.allclose(ev, [-1 - r, -1 + r], atol=1e-12), (mu, j, ev)
    # mu = 0.2, j = 3: eigenvalues -0.6 and -1.4 exactly.
    ev = np.sort(np.linalg.eigvals(thesis_matrix(np.array([0.2]), np.array([[[[3.0]]]]))[0]).real)
    assert np.allclose(ev, [-1.4, -0.6], atol=1e-12)
    # Approximate scalar inverse (1 + delta)/j: eigenvalues -1 +- sqrt(mu (1 - mu) (1 + delta)),
    # unstable iff delta > 1/(mu(1-mu)) - 1 (>= 3).  mu = 0.5: delta = 3 is marginal, 3.5 unstable.
    for delta, expect in [(3.0, 0.0), (3.5, -1 + math.sqrt(0.25 * 4.5)), (-2.0, -1.0)]:
        A = thesis_matrix(np.array([0.5]), np.array([[[[2.0]]]]), np.array([[[[delta]]]]))[0]
        assert abs(np.linalg.eigvals(A).real.max() - expect) < 1e-12, (delta, expect)
    # L = 3, scalar: eigenvalues -1, -1 +- sqrt(2 mu (1 - mu)).
    mu = 0.3
    A = thesis_matrix(np.array([mu]), np.array([[[[2.0]], [[-0.7]]]]))[0]
    r = math.sqrt(2 * mu * (1 - mu))
    assert np.allclose(np.sort(np.linalg.eigvals(A).real), [-1 - r, -1, -1 + r], atol=1e-12)
    # General closed form on a random n = 3, L = 4 case: each -1 + 2 sqrt(mu(1-mu)) cos(k pi/5)
    # appears 3 times.
    rng = np.random.default_rng(12345)
    mu = 0.37
    J = rng.standard_normal((1, 3, 3, 3))
    ev = np.linalg.eigvals(thesis_matrix(np.array([mu]), J)[0])
    assert np.abs(ev.imag).max() < 1e-6
    want = np.sort(np.repeat(analytic_spectrum(mu, 4), 3))
    assert np.allclose(np.sort(ev.real), want, atol=1e-6), (np.sort(ev.real), want)
    return {
        "L2_scalar_mu0.2_j3": [-1.4, -0.6],
        "L3_scalar_mu0.3": [-1 - r, -1.0, -1 + r],
        "n3_L4_mu0.37_closed_form_max_abs_err": float(np.abs(np.sort(ev.real) - want).max()),
    }


# ----------------------------------------------------------------------------- helpers
def groups_and_counts(rng, total):
    grid = [(n, L) for n in N_SIZES for L in DEPTHS]
    which = rng.integers(0, len(grid), size=total)
    counts = np.bincount(which, minlength=len(grid))
    return grid, counts


def qdict(x):
    if x.size == 0:
        return {}
    return {f"q{q:g}": float(np.quantile(x, q)) for q in QUANTILES}


def frac_by(values_stable, key, edges=None, cats=None):
    out = []
    if cats is not None:
        for c in cats:
            m = key == c
            out.append({"key": int(c), "count": int(m.sum()), "frac_stable": float(values_stable[m].mean()) if m.any() else None})
    else:
        for a, b in zip(edges[:-1], edges[1:]):
            m = (key >= a) & (key < b) if b != edges[-1] else (key >= a) & (key <= b)
            out.append({"key": f"[{a:g}, {b:g}{']' if b == edges[-1] else ')'}", "count": int(m.sum()),
                        "frac_stable": float(values_stable[m].mean()) if m.any() else None})
    return out


def bench_backends(rng):
    f = jax.jit(jnp.linalg.eigvals)
    rows = []
    for n, L, B in [(2, 3, 2000), (6, 4, 2000), (10, 6, 2000)]:
        mu, _, J, _ = draw(rng, B, n, L, L - 1)
        A = thesis_matrix(mu, J)
        t = time.perf_counter(); np.linalg.eigvals(A); tn = time.perf_counter() - t
        f(A).block_until_ready()
        t = time.perf_counter(); f(A).block_until_ready(); tj = time.perf_counter() - t
        rows.append({"n": n, "L": L, "N": n * L, "batch": B, "numpy_s": tn, "jax_jit_s_after_compile": tj})
    return rows


# ----------------------------------------------------------------------------- screens
def exact_screen(seed, total):
    ss = np.random.SeedSequence([seed, 1])
    grid, counts = groups_and_counts(np.random.default_rng(ss.spawn(1)[0]), total)
    child = ss.spawn(len(grid) + 1)[1:]
    recs = {k: [] for k in ("n", "L", "mu", "sigma", "cond", "alpha", "alpha_exact", "max_imag", "sym_max")}
    groups = []
    skipped = 0
    for g, ((n, L), B) in enumerate(zip(grid, counts)):
        rng = np.random.default_rng(child[g])
        mu, sigma, J, cond = draw(rng, int(B), n, L, L - 1)
        ok = cond <= COND_MAX
        skipped += int((~ok).sum())
        mu, sigma, J, cond = mu[ok], sigma[ok], J[ok], cond[ok]
        A = thesis_matrix(mu, J)
        ev_max_imag = np.empty(len(mu))
        sym_max = np.empty(len(mu))
        alpha = np.empty(len(mu))
        for s in range(0, len(mu), CHUNK):
            ev = np.linalg.eigvals(A[s : s + CHUNK])
            alpha[s : s + CHUNK] = ev.real.max(axis=-1)
            ev_max_imag[s : s + CHUNK] = np.abs(ev.imag).max(axis=-1)
            blk = A[s : s + CHUNK]
            # largest eigenvalue of the symmetric part: < 0 iff x^T A x < 0 for all x != 0
            sym_max[s : s + CHUNK] = np.linalg.eigvalsh(0.5 * (blk + blk.transpose(0, 2, 1)))[:, -1]
        a0 = analytic_abscissa(mu, L)
        for k, v in (("n", np.full(len(mu), n)), ("L", np.full(len(mu), L)), ("mu", mu), ("sigma", sigma),
                     ("cond", cond), ("alpha", alpha), ("alpha_exact", a0), ("max_imag", ev_max_imag), ("sym_max", sym_max)):
            recs[k].append(v)
        groups.append({
            "n": n, "L": L, "N": n * L, "drawn": int(B), "skipped_cond": int((~ok).sum()),
            "count": int(ok.sum()), "stable": int((alpha < 0).sum()), "sym_part_neg_def": int((sym_max < 0).sum()),
            "alpha_max": float(alpha.max()) if len(alpha) else None,
            "max_abs_err_vs_closed_form": float(np.abs(alpha - a0).max()) if len(alpha) else None,
        })
    R = {k: np.concatenate(v) for k, v in recs.items()}
    return R, groups, skipped


def approx_screen(seed, per_level):
    """Same base draws (J, mu, sigma, unit-norm direction G) for every eps level."""
    ss = np.random.SeedSequence([seed, 2])
    grid, counts = groups_and_counts(np.random.default_rng(ss.spawn(1)[0]), per_level)
    child = ss.spawn(len(grid) + 1)[1:]
    base = {k: [] for k in ("n", "L", "mu", "sigma", "amp")}
    alpha = {e: [] for e in EPS_LEVELS}
    groups = []
    skipped = 0
    for g, ((n, L), B) in enumerate(zip(grid, counts)):
        rng = np.random.default_rng(child[g])
        mu, sigma, J, cond = draw(rng, int(B), n, L, L - 1)
        G = rng.standard_normal(J.shape)
        G /= np.linalg.norm(G, ord=2, axis=(-2, -1))[..., None, None]  # ||G_i||_2 = 1
        ok = cond <= COND_MAX
        skipped += int((~ok).sum())
        mu, sigma, J, G = mu[ok], sigma[ok], J[ok], G[ok]
        amp = perturbation_amplification(J, G)
        for k, v in (("n", np.full(len(mu), n)), ("L", np.full(len(mu), L)), ("mu", mu), ("sigma", sigma), ("amp", amp)):
            base[k].append(v)
        row = {"n": n, "L": L, "count": int(ok.sum()), "skipped_cond": int((~ok).sum())}
        for e in EPS_LEVELS:
            a = spectral_abscissa(thesis_matrix(mu, J, e * G))
            alpha[e].append(a)
            row[f"frac_stable_eps{e:g}"] = float((a < 0).mean()) if len(a) else None
        groups.append(row)
    R = {k: np.concatenate(v) for k, v in base.items()}
    A = {e: np.concatenate(v) for e, v in alpha.items()}
    return R, A, groups, skipped


def rowwise_control(seed, total):
    ss = np.random.SeedSequence([seed, 3])
    grid, counts = groups_and_counts(np.random.default_rng(ss.spawn(1)[0]), total)
    child = ss.spawn(len(grid) + 1)[1:]
    al, Ls, ns, mus = [], [], [], []
    for g, ((n, L), B) in enumerate(zip(grid, counts)):
        rng = np.random.default_rng(child[g])
        mu, _, J, cond = draw(rng, int(B), n, L, L)
        ok = cond <= COND_MAX
        al.append(spectral_abscissa(rowwise_matrix(mu[ok], J[ok])))
        Ls.append(np.full(ok.sum(), L)); ns.append(np.full(ok.sum(), n)); mus.append(mu[ok])
    return np.concatenate(al), np.concatenate(ns), np.concatenate(Ls), np.concatenate(mus)


# ----------------------------------------------------------------------------- output
def make_figure(E, A, R, C, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 4, figsize=(21, 9.5))
    a = ax[0, 0]
    bins = np.linspace(min(-1.0, E["alpha"].min()), 0.05, 106)
    for L in DEPTHS:
        m = E["L"] == L
        a.hist(E["alpha"][m], bins=bins, histtype="step", lw=1.4, label=f"L={L}  (bound {analytic_abscissa(0.5, L):.3f})")
    a.axvline(0, color="k", ls="--", lw=1)
    a.set_yscale("log")
    a.set_xlabel("spectral abscissa max Re(lambda) (numerical)")
    a.set_ylabel("matrices per bin")
    a.set_title(f"(a) exact inverses: {int((E['alpha'] < 0).sum())}/{len(E['alpha'])} stable")
    a.legend(fontsize=8, title="depth (sup over mu<0.5)", title_fontsize=8, loc="upper left")

    a = ax[0, 1]
    err = np.abs(E["alpha"] - E["alpha_exact"])
    lb = np.logspace(-17, max(-1, math.ceil(math.log10(max(err.max(), 1e-16)))), 70)
    a.hist(np.maximum(err, 1e-17), bins=lb, color="C0")
    a.set_xscale("log"); a.set_yscale("log")
    a.set_xlabel("|numerical - closed-form| spectral abscissa")
    a.set_ylabel("matrices per bin")
    a.set_title(f"(b) exact inverses vs closed form: max err {err.max():.1e}")

    a = ax[0, 2]
    for i, e in enumerate(EPS_LEVELS):
        x = np.sort(A[e])
        a.plot(x, np.arange(1, len(x) + 1) / len(x), lw=1.4, color=plt.cm.viridis(i / (len(EPS_LEVELS) - 1)),
               label=f"eps={e:g}: {100 * (A[e] < 0).mean():.2f}% stable")
    a.axvline(0, color="k", ls="--", lw=1)
    a.set_xscale("symlog", linthresh=0.5)
    a.set_xticks([-1, -0.5, 0, 0.5, 1, 3, 10])
    a.set_xticklabels(["-1", "-0.5", "0", "0.5", "1", "3", "10"])
    a.set_xlabel("spectral abscissa (symlog)")
    a.set_ylabel("ECDF")
    a.set_title("(c) approximate inverses J^-1 (I + Delta), ||Delta||_2 = eps")
    a.legend(fontsize=8, loc="lower right")

    xe = np.array([e if e > 0 else 3e-3 for e in EPS_LEVELS])

    def curve(a, key, cats, labels, title):
        for c, lab in zip(cats, labels):
            m = c(R)
            a.plot(xe, [100 * (A[e][m] < 0).mean() for e in EPS_LEVELS], "o-", ms=4, label=lab)
        a.plot(xe, [100 * (A[e] < 0).mean() for e in EPS_LEVELS], "k--", lw=2, label="all")
        a.set_xscale("log")
        a.set_xticks(xe)
        a.set_xticklabels(["0"] + [f"{e:g}" for e in EPS_LEVELS[1:]])
        a.set_xlabel("eps = ||Delta_i||_2")
        a.set_ylabel("% stable")
        a.set_ylim(-3, 103)
        a.grid(alpha=0.3)
        a.set_title(title)
        a.legend(fontsize=8, loc="lower left")

    curve(ax[1, 0], "L", [lambda R, L=L: R["L"] == L for L in DEPTHS], [f"L={L}" for L in DEPTHS], "(d) % stable vs eps, by depth L")
    nb = [(1, 1), (2, 4), (5, 7), (8, 10)]
    curve(ax[1, 1], "n", [lambda R, lo=lo, hi=hi: (R["n"] >= lo) & (R["n"] <= hi) for lo, hi in nb],
          [f"n={lo}" if lo == hi else f"n={lo}..{hi}" for lo, hi in nb], "(e) % stable vs eps, by block size n")
    mb = list(zip(MU_BINS[:-1], MU_BINS[1:]))
    curve(ax[1, 2], "mu", [lambda R, lo=lo, hi=hi: (R["mu"] >= lo) & (R["mu"] < hi) for lo, hi in mb],
          [f"mu in [{lo:g},{hi:g})" for lo, hi in mb], "(f) % stable vs eps, by mu")
    a = ax[0, 3]
    s_mu = np.sqrt(R["mu"] * (1 - R["mu"]))
    a0 = analytic_abscissa(R["mu"], R["L"])
    rho = np.concatenate([e * R["amp"] * s_mu / -a0 for e in EPS_LEVELS if e > 0])
    st = np.concatenate([A[e] < 0 for e in EPS_LEVELS if e > 0])
    edges = np.logspace(-4, 6, 41)
    k = np.digitize(rho, edges)
    xs, ys, ns = [], [], []
    for b in range(1, len(edges)):
        m = k == b
        if m.sum() >= 20:
            xs.append(math.sqrt(edges[b - 1] * edges[b])); ys.append(100 * st[m].mean()); ns.append(m.sum())
    a.plot(xs, ys, "o-", ms=4, color="C3")
    a.axvline(1, color="k", ls="--", lw=1)
    a.text(1.3, 50, "rho < 1: stable\nguaranteed (bound)", fontsize=8)
    a.set_xscale("log")
    a.set_ylim(-3, 103)
    a.grid(alpha=0.3)
    a.set_xlabel("rho = eps * max_i||P_i^-1 G_i P_i|| * sqrt(mu(1-mu)) / |alpha_exact|")
    a.set_ylabel("% stable (all eps > 0 pooled, bins >= 20)")
    a.set_title("(g) stability vs normalised effective perturbation")

    a = ax[1, 3]
    cb = np.linspace(-1.05, 3, 90)
    a.hist(np.clip(E["alpha"], cb[0], cb[-1]), bins=cb, density=True, histtype="step", lw=1.5, label="thesis pairing (exact inverses)")
    a.hist(np.clip(C, cb[0], cb[-1]), bins=cb, density=True, histtype="step", lw=1.5,
           label=f"row pairing control: {100 * (C < 0).mean():.1f}% stable")
    a.axvline(0, color="k", ls="--", lw=1)
    a.set_yscale("log")
    a.set_xlabel("spectral abscissa (clipped to [-1.05, 3])")
    a.set_ylabel("density")
    a.set_title("(h) control: (i,i-1)=(1-mu)J_i, (i,i+1)=mu J_i^-1")
    a.legend(fontsize=8, loc="upper right")

    fig.suptitle("Block-tridiagonal Jacobian of the mixture model (thesis 6.7): -I diagonal, (1-mu) J_i at (i,i-1), mu J_i^-1 (I+Delta_i) at (i-1,i)",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fmt(x, p=4):
    if x is None:
        return "-"
    return f"{x:.{p}f}" if isinstance(x, float) else str(x)


def write_md(res, path):
    ex = res["exact"]
    L = []
    L.append("# Block-tridiagonal screen: results\n")
    L.append(f"seed {res['config']['seed']}, {res['runtime_s']['total']:.1f} s total on {res['machine']}.\n")
    L.append("## Exact inverses\n")
    L.append(f"- matrices screened: **{ex['count']}** (drawn {ex['drawn']}, skipped for cond(J_i) > 1e12: {ex['skipped_cond']})")
    L.append(f"- stable (max Re lambda < 0): **{ex['stable']} / {ex['count']}** (fraction {ex['frac_stable']:.6f})")
    L.append(f"- symmetric part (A + A^T)/2 negative definite (x^T A x < 0 for all x): {ex['sym_part_neg_def']} / {ex['count']} "
             f"(by sigma bin: " + ", ".join(f"{r['key']} {r['frac_stable']:.3f}" for r in ex["sym_part_neg_def_by_sigma"]) + ")")
    L.append(f"- largest spectral abscissa seen: {ex['alpha_max']:.6f}; closed-form supremum over mu < 0.5, L <= 6: {ex['closed_form_sup']:.6f}")
    L.append(f"- max |numerical - closed-form abscissa|: {ex['max_abs_err_vs_closed_form']:.2e}; 99.9% quantile {ex['err_q0.999']:.2e}; max |Im lambda| {ex['max_abs_imag']:.2e}\n")
    L.append("Spectral abscissa quantiles (numerical):\n")
    L.append("| " + " | ".join(ex["alpha_quantiles"].keys()) + " |")
    L.append("|" + "---|" * len(ex["alpha_quantiles"]))
    L.append("| " + " | ".join(f"{v:.4f}" for v in ex["alpha_quantiles"].values()) + " |\n")
    L.append("Per depth (numerical abscissa range, closed-form supremum -1 + cos(pi/(L+1))):\n")
    L.append("| L | count | stable | abscissa min | abscissa max | sup -1+cos(pi/(L+1)) |")
    L.append("|---|---|---|---|---|---|")
    for r in ex["by_L"]:
        L.append(f"| {r['L']} | {r['count']} | {r['stable']} | {r['alpha_min']:.4f} | {r['alpha_max']:.4f} | {r['sup']:.4f} |")
    L.append("")
    L.append("Groups (block size n, depth L): counts drawn at random (multinomial over the 50 cells).\n")
    L.append("| n | L | N=nL | drawn | skipped | stable/count | max abscissa | max err vs closed form |")
    L.append("|---|---|---|---|---|---|---|---|")
    for g in res["exact_groups"]:
        L.append(f"| {g['n']} | {g['L']} | {g['N']} | {g['drawn']} | {g['skipped_cond']} | {g['stable']}/{g['count']} | "
                 f"{fmt(g['alpha_max'])} | {g['max_abs_err_vs_closed_form']:.1e} |")
    L.append("")
    ap = res["approx"]
    L.append("## Approximate inverses J_i^{-1}(I + Delta_i), ||Delta_i||_2 = eps\n")
    L.append(f"{ap['count_per_level']} base matrices (same J_i, mu, sigma and direction of Delta_i at every level), "
             f"{ap['count_per_level'] * len(EPS_LEVELS)} eigenvalue problems in all; skipped for cond: {ap['skipped_cond']}.\n")
    L.append("| eps | stable | fraction stable | certified by bound | abs. abscissa < 1e-6 | abscissa median | q0.99 | max |")
    L.append("|---|---|---|---|---|---|---|---|")
    for r in ap["levels"]:
        q = r["alpha_quantiles"]
        L.append(f"| {r['eps']:g} | {r['stable']}/{r['count']} | {r['frac_stable']:.4f} | {r['frac_certified']:.4f} | "
                 f"{r['near_zero_abs_lt_1e-6']} | {q['q0.5']:.4f} | {q['q0.99']:.4f} | {q['q1']:.4g} |")
    L.append("")
    for key, title in (("by_L", "depth L"), ("by_n", "block size n"), ("by_mu", "mu bin"), ("by_sigma", "sigma bin")):
        L.append(f"Fraction stable by {title}:\n")
        keys = [str(x["key"]) for x in ap["levels"][0][key]]
        L.append("| eps | " + " | ".join(keys) + " |")
        L.append("|---|" + "---|" * len(keys))
        for r in ap["levels"]:
            L.append(f"| {r['eps']:g} | " + " | ".join(fmt(x["frac_stable"], 3) for x in r[key]) + " |")
        L.append("")
    c = res["rowwise_control"]
    L.append("## Control: blocks paired by row, (i, i-1) = (1-mu) J_i and (i, i+1) = mu J_i^{-1}\n")
    L.append(f"stable {c['stable']}/{c['count']} (fraction {c['frac_stable']:.4f}); abscissa quantiles "
             + ", ".join(f"{k} {v:.3g}" for k, v in c["alpha_quantiles"].items() if k in ("q0.01", "q0.5", "q0.99", "q1")) + "\n")
    L.append("| L | " + " | ".join(str(x["key"]) for x in c["by_L"]) + " |")
    L.append("|---|" + "---|" * len(c["by_L"]))
    L.append("| fraction stable | " + " | ".join(fmt(x["frac_stable"], 3) for x in c["by_L"]) + " |\n")
    path.write_text("\n".join(L))


# ----------------------------------------------------------------------------- main
def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=100_000, help="exact-inverse matrices (default 100000)")
    p.add_argument("--n-approx", type=int, default=50_000, help="base matrices per eps level (default 50000)")
    p.add_argument("--n-control", type=int, default=20_000, help="row-paired control matrices (default 20000)")
    p.add_argument("--quick", action="store_true", help="smoke run: 5000 / 2000 / 1000, outputs to quick/")
    p.add_argument("--bench-backends", action="store_true", help="also time numpy vs jax eigvals")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: this folder)")
    args = p.parse_args()
    if args.quick:
        args.n, args.n_approx, args.n_control = 5000, 2000, 1000
    out = args.out or (HERE / "quick" if args.quick else HERE)
    out.mkdir(parents=True, exist_ok=True)

    t_all = time.perf_counter()
    worked = sanity_checks()
    print("sanity checks (worked examples, closed form) passed")

    t = time.perf_counter()
    E, groups, skipped = exact_screen(args.seed, args.n)
    t_exact = time.perf_counter() - t
    stable = E["alpha"] < 0
    err = np.abs(E["alpha"] - E["alpha_exact"])
    print(f"exact inverses: {stable.sum()}/{len(stable)} stable, max abscissa {E['alpha'].max():.6f}, "
          f"max err vs closed form {err.max():.2e}, skipped {skipped} ({t_exact:.1f} s)")
    unstable_examples = []
    for i in np.flatnonzero(~stable)[:10]:
        unstable_examples.append({k: float(E[k][i]) for k in E})
    by_L = []
    for L in DEPTHS:
        m = E["L"] == L
        by_L.append({"L": L, "count": int(m.sum()), "stable": int(stable[m].sum()), "alpha_min": float(E["alpha"][m].min()),
                     "alpha_max": float(E["alpha"][m].max()), "sup": float(analytic_abscissa(0.5, L))})
    worst = int(np.argmax(err))

    t = time.perf_counter()
    R, A, agroups, askipped = approx_screen(args.seed, args.n_approx)
    t_approx = time.perf_counter() - t
    levels = []
    s_mu = np.sqrt(R["mu"] * (1 - R["mu"]))
    a0 = analytic_abscissa(R["mu"], R["L"])
    inconsistent = 0
    for e in EPS_LEVELS:
        st = A[e] < 0
        certified = a0 + s_mu * e * R["amp"] < 0  # sufficient condition (README)
        inconsistent += int((certified & ~st).sum())
        first_bad = np.flatnonzero(~st)
        ex = None
        if first_bad.size:
            i = first_bad[np.argmin(R["amp"][first_bad] * e)]
            ex = {"n": int(R["n"][i]), "L": int(R["L"][i]), "mu": float(R["mu"][i]), "sigma": float(R["sigma"][i]),
                  "amplification": float(R["amp"][i]), "abscissa": float(A[e][i])}
        levels.append({
            "eps": e, "count": int(len(st)), "stable": int(st.sum()), "frac_stable": float(st.mean()),
            "frac_certified": float(certified.mean()),
            "near_zero_abs_lt_1e-6": int((np.abs(A[e]) < 1e-6).sum()), "alpha_quantiles": qdict(A[e]),
            "by_L": frac_by(st, R["L"], cats=DEPTHS), "by_n": frac_by(st, R["n"], cats=N_SIZES),
            "by_mu": frac_by(st, R["mu"], edges=MU_BINS), "by_sigma": frac_by(st, R["sigma"], edges=SIGMA_BINS),
            "unstable_example_smallest_amplification": ex,
        })
        print(f"  eps={e:<5g} stable {st.mean():.4f}  certified {certified.mean():.4f}")
    print(f"approximate inverses: {len(R['mu'])} per level x {len(EPS_LEVELS)} ({t_approx:.1f} s); "
          f"certified-but-numerically-unstable: {inconsistent}")

    t = time.perf_counter()
    ca, cn, cL, cmu = rowwise_control(args.seed, args.n_control)
    t_ctrl = time.perf_counter() - t
    print(f"row-paired control: {(ca < 0).sum()}/{len(ca)} stable ({t_ctrl:.1f} s)")

    bench = bench_backends(np.random.default_rng(99)) if args.bench_backends else None

    t = time.perf_counter()
    make_figure(E, A, R, ca, out / "spectral_abscissa.png")
    t_fig = time.perf_counter() - t
    total = time.perf_counter() - t_all

    res = {
        "config": {
            "seed": args.seed, "n_exact": args.n, "n_approx_per_level": args.n_approx, "n_control": args.n_control,
            "quick": args.quick, "block_sizes": list(N_SIZES), "depths": list(DEPTHS), "eps_levels": list(EPS_LEVELS),
            "sigma": "per matrix, log-uniform on [0.1, 10]; J_i = sigma * N(0,1)/sqrt(n) entrywise, i = 2..L",
            "mu": "per matrix, U(0, 0.5)", "delta": "Delta_i = eps * G_i / ||G_i||_2, G_i iid N(0,1) entries (spectral norm)",
            "cond_max": COND_MAX, "stable_if": "max Re(eigvals) < 0 (numpy.linalg.eigvals, LAPACK geev, float64)",
        },
        "sanity_checks": worked,
        "exact": {
            "drawn": int(args.n), "count": int(len(stable)), "skipped_cond": int(skipped), "stable": int(stable.sum()),
            "frac_stable": float(stable.mean()),
            "sym_part_neg_def": int((E["sym_max"] < 0).sum()),
            "sym_part_neg_def_by_L": {int(L): float((E["sym_max"][E["L"] == L] < 0).mean()) for L in DEPTHS},
            "sym_part_neg_def_by_sigma": frac_by(E["sym_max"] < 0, E["sigma"], edges=SIGMA_BINS),
            "alpha_max": float(E["alpha"].max()), "alpha_min": float(E["alpha"].min()),
            "closed_form_sup": float(analytic_abscissa(0.5, max(DEPTHS))),
            "alpha_quantiles": qdict(E["alpha"]), "max_abs_err_vs_closed_form": float(err.max()),
            "err_q0.999": float(np.quantile(err, 0.999)), "max_abs_imag": float(E["max_imag"].max()),
            "worst_err_case": {k: float(E[k][worst]) for k in E},
            "max_cond_J": float(E["cond"].max()), "by_L": by_L, "unstable_examples": unstable_examples,
        },
        "exact_groups": groups,
        "approx": {"count_per_level": int(len(R["mu"])), "skipped_cond": int(askipped), "levels": levels,
                   "certified_but_numerically_unstable": inconsistent,
                   "amplification_quantiles": qdict(R["amp"]), "groups": agroups},
        "rowwise_control": {"count": int(len(ca)), "stable": int((ca < 0).sum()), "frac_stable": float((ca < 0).mean()),
                            "alpha_quantiles": qdict(ca), "by_L": frac_by(ca < 0, cL, cats=DEPTHS),
                            "by_n": frac_by(ca < 0, cn, cats=N_SIZES), "by_mu": frac_by(ca < 0, cmu, edges=MU_BINS)},
        "backend_benchmark": bench,
        "runtime_s": {"exact": t_exact, "approx": t_approx, "control": t_ctrl, "figure": t_fig, "total": total},
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} CPUs, numpy {np.__version__}",
    }
    (out / "results.json").write_text(json.dumps(res, indent=1))
    write_md(res, out / "results.md")
    print(f"total {total:.1f} s; wrote {out / 'results.json'}, results.md, spectral_abscissa.png")


if __name__ == "__main__":
    main()
