"""Reproduction of supplement Fig. S1 (Podlaski & Machens 2020, section 7.1): accuracy of
sequential dynamic inversion (DI, Algorithm 1 / main-text eq. 16) for one layer,

    d delta_{l-1}/dt = -delta_{l-1} + B u,      du/dt = -alpha u + W g(delta_{l-1}) - delta_l,

for shapes d_{l-1} x d_l = 20x20 (equal), 20x10 (contracting), 10x20 (expanding), transfer
functions g = linear / tanh / relu, and leaks alpha in LEAKS.

Per shape: N_INITS draws of W (d_l x d_{l-1}) and B (d_{l-1} x d_l) ~ U(-1, 1); for every leak
B is SSA-optimised on the S24 block matrix [[-I, B], [W, -alpha I]] (supplement 7.5,
neurodyn.core.stabilize, margin 0.1, relative -min(0.1, alpha/2) for expanding layers); then
DI is run from zero (diffrax, to steady state, Newton-polished: neurodyn.fixed_point
method="ode") for N_DELTAS draws delta_l ~ N(0, 1), batched; tanh uses 0.1 N(0, 1) (with
N(0, 1) the explicit inverse is undefined for most samples); with --tanh-unit an extra tanh
run at N(0, 1) is shown in the top row (dashed). The same W, B-start and delta draws are used
for every leak and every g. Expanding layers skip alpha = 0 (W B is singular: no fixed point).

Measured per sample (angles in degrees):
  top      angle(delta_l, W g(delta_{l-1}))
  bottom   angle(delta_{l-1}, g^{-1}(W^+ delta_l))       W^+: Moore-Penrose pseudo-inverse
  extra    angle(delta_{l-1}, g^{-1}(M_DI^0 delta_l))     M_DI^0: leak-free DI matrix B (W B)^{-1}
                                                          (expanding: (B W)^{-1} B), same B
  extra    angle(delta_{l-1}, g^{-1}(M_NDI delta_l))     M_NDI: Algorithm 5 NDI at the same alpha, B
  floor    angle(delta_l, W W^+ delta_l)                 the best any delta_{l-1} can do (linear)
tanh samples with max|M delta_l| >= 1 have no inverse: they are counted and left out of that
bottom-row angle. Samples whose DI run did not settle, diverged, or settled on a fixed point
with an unstable Jacobian are counted and left out of the angles.

Usage:  python experiments/fig_s1_accuracy/run.py [--seed 0] [--quick] [--tanh-unit] [--replot]
Outputs next to this file (quick/ for --quick): results.json, results.md, fig_s1_accuracy.png,
fig_s1_other_references.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import neurodyn as nd  # noqa: E402
from neurodyn.circuits import DynamicInversion  # noqa: E402
from neurodyn.core.nonlinearities import parse  # noqa: E402
from neurodyn.core.stabilize import stabilize  # noqa: E402
from neurodyn.learning.metrics import angle  # noqa: E402
from neurodyn.learning.rules import ndi_matrix  # noqa: E402

HERE = Path(__file__).resolve().parent

#: (label, d_{l-1}, d_l); W is d_l x d_{l-1}
SHAPES = (("20x20", 20, 20, "equal"), ("20x10", 20, 10, "contracting"), ("10x20", 10, 20, "expanding"))
LEAKS = (0.0, 0.001, 0.01, 0.05, 0.1)
#: (key, g name, scale of delta_l, in bottom row)
NONLINS = (("linear", "linear", 1.0, True), ("tanh", "tanh", 0.1, True), ("relu", "relu", 1.0, False))
TANH_UNIT = ("tanh_unit", "tanh", 1.0, False)
N_INITS, N_DELTAS = 10, 10
SSA = dict(margin=0.1, eps=1e-3, lr=1.0, max_iter=500)
T1_MIN, T1_PER_LEAK = 2000.0, 40.0  # t1 = max(T1_MIN, T1_PER_LEAK / alpha) for expanding layers
MAX_STEPS = 20_000
#: the dynamics' own accuracy (simulate's defaults): the end-of-run state is compared too,
#: so the ODE route must not stop at fixed_point's looser hand-off to Newton
TOLERANCES = dict(rtol=1e-6, atol=1e-9)
STATUSES = ("ok", "unstable_fixed_point", "not_settled", "diverged")


_angle_rows = jax.jit(jax.vmap(angle))


def angle_deg(a, b):
    """Row-wise ``neurodyn.learning.metrics.angle`` (degrees); NaN where either row is zero or
    not finite (the package's angle says 90 there), so such samples drop out of the summaries."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    with np.errstate(invalid="ignore", over="ignore"):
        na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
        defined = (na > 0) & (nb > 0) & np.isfinite(na * nb)
    return np.where(defined, np.asarray(_angle_rows(jnp.asarray(a), jnp.asarray(b))), np.nan)


def ginv(g, y):
    """``g.inverse(y)`` row-wise, and which rows have no inverse (tanh: some |y| >= 1, where the
    package's inverse is not finite)."""
    x = np.asarray(g.inverse(jnp.asarray(y)))
    return x, np.any(~np.isfinite(x) & np.isfinite(y), axis=-1)


#: bottom-row references (see the module docstring)
REFS = ("pinv", "di0", "ndi")


def run_di(circuit, deltas, t1):
    """DI from zero for a batch of delta_l: one batched fixed_point call (one step sequence for
    the whole batch). Two batch effects are undone by re-running samples alone:
    - the divergence guard stops every sample of the batch: all samples are re-run alone;
    - a batch stopped by max_steps (a sample that never settles, e.g. a limit cycle, keeps the
      step size small for all) leaves slow samples short of t1: the unsettled ones are re-run alone.

    Returns per sample: polished state delta_{l-1}, end-of-run delta_{l-1}, status (STATUSES),
    t_final; and the number of samples re-run alone and the solver's reason(s)."""
    eq = nd.fixed_point(circuit, {"delta_out": jnp.asarray(deltas)}, method="ode", t1=t1, max_steps=MAX_STEPS, **TOLERANCES)
    tr = eq.trajectory
    n = len(deltas)
    if tr.reason in ("diverged", "nonfinite"):
        alone = list(range(n))
        res = dict(delta0=np.zeros((n, circuit.sizes[0])), delta0_end=np.zeros((n, circuit.sizes[0])),
                   status=np.full(n, "diverged", "<U24"), t_final=np.zeros(n))
    else:
        status = np.where(eq.converged & eq.stable, "ok", np.where(eq.converged, "unstable_fixed_point", "not_settled"))
        end = np.asarray(tr.final["delta_0"])
        status = np.where(np.all(np.isfinite(end), axis=1), status, "diverged")
        res = dict(delta0=np.array(eq.state["delta_0"]), delta0_end=np.array(end), status=status.astype("<U24"), t_final=np.full(n, tr.t_final))
        alone = list(np.flatnonzero(status == "not_settled")) if tr.reason == "max_steps" else []
    reasons = []
    for i in alone:
        one = run_di_single(circuit, deltas[i], t1)
        for k in res:
            res[k][i] = one[k]
        reasons.append(one["reason"])
    res["batch_reruns"] = len(alone)
    res["reason"] = tr.reason + (f"; alone: {','.join(reasons)}" if alone else "")
    return res


def run_di_single(circuit, delta, t1):
    eq = nd.fixed_point(circuit, {"delta_out": jnp.asarray(delta)}, method="ode", t1=t1, max_steps=MAX_STEPS, **TOLERANCES)
    tr = eq.trajectory
    end = np.asarray(tr.final["delta_0"])
    if tr.reason in ("diverged", "nonfinite") or not np.all(np.isfinite(end)):
        status = "diverged"
    elif bool(eq.converged):
        status = "ok" if bool(eq.stable) else "unstable_fixed_point"
    else:
        status = "not_settled"
    return dict(delta0=np.asarray(eq.state["delta_0"]), delta0_end=end, status=status, t_final=tr.t_final, reason=tr.reason)


def summarise(x):
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return dict(n=0, median=None, q25=None, q75=None, mean=None, sd=None, max=None)
    q25, med, q75 = np.percentile(x, [25, 50, 75])
    return dict(n=int(x.size), median=float(med), q25=float(q25), q75=float(q75), mean=float(x.mean()), sd=float(x.std()), max=float(x.max()))


def experiment(args):
    nonlins = NONLINS + ((TANH_UNIT,) if args.tanh_unit else ())
    leaks = args.leaks
    root = np.random.SeedSequence(args.seed)
    shape_seeds = root.spawn(len(SHAPES))
    records = []  # one per (shape, init, leak, g): per-sample arrays
    stab = []  # one per (shape, init, leak)
    for (label, d0, d1, kind), ss in zip(SHAPES, shape_seeds):
        for init, iseed in enumerate(ss.spawn(args.n_inits)):
            rng = np.random.default_rng(iseed)
            W = rng.uniform(-1, 1, (d1, d0))
            B0 = rng.uniform(-1, 1, (d0, d1))
            deltas = rng.standard_normal((args.n_deltas, d1))
            for alpha in leaks:
                if d1 > d0 and alpha == 0.0:
                    continue  # expanding: W B is singular, no fixed point at alpha = 0
                t0 = time.perf_counter()
                a = jnp.asarray(alpha)  # an array leaf: one compilation for every leak
                c = DynamicInversion(W=(jnp.asarray(W),), B=(jnp.asarray(B0),), alpha=a, g=(parse("linear"),))
                r = stabilize(c, lambda c: c.B, **SSA)
                B = np.asarray(r.circuit.B[0])
                stab.append(dict(shape=label, init=init, leak=alpha, success=bool(r.success), iterations=int(r.iterations),
                                 abscissa_before=float(r.abscissa_before), abscissa_after=float(r.abscissa_after),
                                 target=float(r.target), seconds=float(r.seconds), message=r.message))
                t1 = max(T1_MIN, T1_PER_LEAK / alpha) if (d1 > d0 and alpha > 0) else T1_MIN
                Wp = np.linalg.pinv(W)
                Wj, Bj = jnp.asarray(W), jnp.asarray(B)
                mats = dict(pinv=Wp, di0=np.asarray(ndi_matrix(Wj, Bj, 0.0)), ndi=np.asarray(ndi_matrix(Wj, Bj, alpha)))
                for key, gname, scale, _ in nonlins:
                    dl = scale * deltas
                    g = parse(gname)
                    cc = DynamicInversion(W=(jnp.asarray(W),), B=(jnp.asarray(B),), alpha=a, g=(g,))
                    out = run_di(cc, dl, t1)
                    ok = out["status"] == "ok"
                    x = out["delta0"]
                    top = angle_deg(dl, np.asarray(g(x)) @ W.T)
                    end_finite = np.all(np.isfinite(out["delta0_end"]), axis=1) & (out["status"] != "diverged")
                    top_end = angle_deg(dl, np.asarray(g(out["delta0_end"])) @ W.T)
                    rec = dict(shape=label, init=init, leak=alpha, g=key, status=out["status"].tolist(),
                               batch_reruns=int(out["batch_reruns"]),
                               top=np.where(ok, top, np.nan), top_end=np.where(end_finite, top_end, np.nan),
                               floor=angle_deg(dl, dl @ (W @ Wp).T))
                    if gname != "relu":
                        for ref in REFS:
                            xr, bad = ginv(g, dl @ mats[ref].T)
                            rec[ref] = np.where(ok & ~bad, angle_deg(x, xr), np.nan)
                            rec[f"no_inverse_{ref}"] = int(bad.sum())
                            rec[f"no_inverse_{ref}_ok"] = int((bad & ok).sum())
                        if gname == "tanh":  # how often g^{-1}(W^+ delta_l) exists at the paper's N(0, 1) scale
                            rec["no_inverse_pinv_unit_scale"] = int(ginv(g, deltas @ Wp.T)[1].sum())
                    rec["solver_reason"] = out["reason"]
                    records.append(rec)
                if args.verbose:
                    sts = {rec["g"]: "/".join(str(sum(s == k for s in rec["status"])) for k in STATUSES) for rec in records[-len(nonlins):]}
                    print(f"{label} init {init} leak {alpha:g}: SSA {r.success} ({r.iterations} it, {r.abscissa_after:.3g}) "
                          f"ok/unst/unsettled/div {sts}  {time.perf_counter() - t0:.1f}s", flush=True)
    return records, stab, nonlins


def aggregate(records, stab, nonlins, leaks):
    summary = []
    for label, d0, d1, kind in SHAPES:
        for key, gname, scale, bottom in nonlins:
            for alpha in leaks:
                rs = [r for r in records if r["shape"] == label and r["g"] == key and r["leak"] == alpha]
                if not rs:
                    continue
                st = [s for s in stab if s["shape"] == label and s["leak"] == alpha]
                status = np.concatenate([r["status"] for r in rs])
                row = dict(shape=label, kind=kind, g=key, delta_scale=scale, leak=alpha, n_samples=int(status.size),
                           inits_stabilised=int(sum(s["success"] for s in st)), n_inits=len(st),
                           counts={k: int(np.sum(status == k)) for k in STATUSES},
                           batch_reruns=int(sum(r["batch_reruns"] for r in rs)),
                           top=summarise(np.concatenate([r["top"] for r in rs])),
                           top_end_of_run=summarise(np.concatenate([r["top_end"] for r in rs])),
                           floor=summarise(np.concatenate([r["floor"] for r in rs])))
                row["solver_reasons"] = sorted({r["solver_reason"] for r in rs})
                if "pinv" in rs[0]:
                    for ref in REFS:
                        row[ref] = summarise(np.concatenate([r[ref] for r in rs]))
                        row[f"no_inverse_{ref}"] = int(sum(r[f"no_inverse_{ref}"] for r in rs))
                        row[f"no_inverse_{ref}_among_ok"] = int(sum(r[f"no_inverse_{ref}_ok"] for r in rs))
                if "no_inverse_pinv_unit_scale" in rs[0]:
                    row["no_inverse_pinv_unit_scale"] = int(sum(r["no_inverse_pinv_unit_scale"] for r in rs))
                summary.append(row)
    return summary


# ----------------------------------------------------------------------------- outputs
COLORS = {"linear": "tab:blue", "tanh": "tab:orange", "relu": "tab:green", "tanh_unit": "tab:red"}
LABELS = {"linear": "linear", "tanh": r"tanh ($\delta_l\sim0.1\,\mathcal{N}(0,1)$)", "relu": "ReLU",
          "tanh_unit": r"tanh ($\delta_l\sim\mathcal{N}(0,1)$)"}


def _series(summary, label, key, metric, leaks, with_n=False):
    xs, med, lo, hi, ns, empty = [], [], [], [], [], []
    for alpha in leaks:
        row = next((r for r in summary if r["shape"] == label and r["g"] == key and r["leak"] == alpha), None)
        if row is None or metric not in row:
            continue
        if row[metric]["n"] == 0:
            empty.append(alpha)
            continue
        xs.append(alpha)
        med.append(row[metric]["median"])
        lo.append(row[metric]["q25"])
        hi.append(row[metric]["q75"])
        ns.append(row[metric]["n"])
    out = np.array(xs), np.array(med), np.array(lo), np.array(hi)
    return out + (ns, empty) if with_n else out


ROW_LABELS = {
    "top": r"angle($\delta_l$, $W g(\delta_{l-1})$) [deg]",
    "pinv": r"angle($\delta_{l-1}$, $g^{-1}(W^+\delta_l)$) [deg]",
    "di0": r"angle($\delta_{l-1}$, $g^{-1}(M_{DI}^{\alpha=0}\delta_l)$) [deg]",
    "ndi": r"angle($\delta_{l-1}$, $g^{-1}(M_{NDI}^{\alpha}\delta_l)$) [deg]",
}


def plot(summary, nonlins, leaks, path, rows=("top", "pinv"), title=None, n=(N_INITS, N_DELTAS)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 3, figsize=(13, 3.6 * len(rows)), sharex=True, sharey="row", squeeze=False)
    for j, (label, d0, d1, kind) in enumerate(SHAPES):
        for i, metric in enumerate(rows):
            ax = axes[i, j]
            notes = []
            for key, gname, scale, bottom in nonlins:
                if metric != "top" and not bottom:
                    continue
                xs, med, lo, hi, ns, empty = _series(summary, label, key, metric, leaks, with_n=True)
                if empty:
                    notes.append((key, "no converged sample\nat " + r"$\alpha$=" + ", ".join(f"{a:g}" for a in empty)))
                if xs.size == 0:
                    continue
                ls = "--" if key == "tanh_unit" else "-"
                ax.plot(xs, med, ls, marker="o", ms=4, color=COLORS[key], label=LABELS[key])
                ax.fill_between(xs, lo, hi, color=COLORS[key], alpha=0.15 if key != "tanh_unit" else 0.07)
                for x, y, k in zip(xs, med, ns):  # few samples behind a point: say how many
                    if k < 60:
                        ax.annotate(f"n={k}", (x, y), textcoords="offset points", xytext=(3, 4), fontsize=7, color=COLORS[key])
            if metric == "top" and d1 > d0:
                xs, med, lo, hi = _series(summary, label, "linear", "floor", leaks)
                ax.plot(xs, med, ":", color="k", label=r"floor: median $\angle(\delta_l, WW^+\delta_l)$")
            if metric != "top":
                notes.append(("relu", "ReLU: no explicit inverse"))
            for k, (key, text) in enumerate(notes):
                ax.text(0.97, 0.95 - 0.11 * k, f"{LABELS[key].split(' (')[0]}: {text}" if key != "relu" or metric == "top" else text,
                        transform=ax.transAxes, ha="right", va="top", fontsize=7.5, color=COLORS[key])
            ax.set_xscale("symlog", linthresh=1e-3, linscale=0.5)
            ax.set_xticks([0, 1e-3, 1e-2, 1e-1])
            ax.set_xlim(-2e-4, 0.13)
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(f"{label} ({kind})" + (r", $\alpha>0$ only" if d1 > d0 else ""))
            if i == len(rows) - 1:
                ax.set_xlabel(r"leak $\alpha$")
            if j == 0:
                ax.set_ylabel(ROW_LABELS[metric], fontsize=9)
            if j == 2 or i == 0:
                ax.legend(fontsize=7, loc="lower right" if d1 > d0 else "upper left")
    for row in axes:
        row[0].set_ylim(bottom=0)
    fig.suptitle((title or "Fig. S1 reproduction: DI accuracy") + f"; median and IQR over converged samples of {n[0]} inits x {n[1]} deltas", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def draw(summary, nonlins, leaks, out, n):
    plot(summary, nonlins, leaks, out / "fig_s1_accuracy.png", n=n)
    plot(summary, nonlins, leaks, out / "fig_s1_other_references.png", rows=("di0", "ndi"),
         title=r"Explicit inversion with the DI matrix instead of $W^+$: leak-free $M_{DI}^{\alpha=0}$ (top), same-leak $M_{NDI}^{\alpha}$ (bottom)", n=n)


def fmt(s, key="median"):
    return "n/a" if s is None or s.get(key) is None else f"{s[key]:.2f}"


def iqr(s):
    return "n/a" if s["n"] == 0 else f"{s['median']:.2f} [{s['q25']:.2f}, {s['q75']:.2f}]"


def write_md(summary, stab, meta, path):
    lines = ["# Fig. S1 reproduction: results", "",
             f"Generated by `{meta['command']}` in {meta['runtime_s']:.0f} s ({meta['machine']}).", "",
             "Angles in degrees: median [25th, 75th percentile] over the samples that converged to a stable fixed point",
             "(`ok`). Counts: ok / unstable fixed point / not settled / diverged (of n_samples).", "",
             "## SSA stabilisation (B only)", "",
             "| shape | leak | stabilised | iterations (median, max) | abscissa after (max) | target |", "|---|---|---|---|---|---|"]
    for label, *_ in SHAPES:
        for alpha in meta["leaks"]:
            st = [s for s in stab if s["shape"] == label and s["leak"] == alpha]
            if not st:
                continue
            its = [s["iterations"] for s in st]
            lines.append(f"| {label} | {alpha:g} | {sum(s['success'] for s in st)}/{len(st)} | {int(np.median(its))}, {max(its)} | "
                         f"{max(s['abscissa_after'] for s in st):.4g} | {st[0]['target']:.4g} |")
    lines += ["", "## Top row: angle(delta_l, W g(delta_{l-1}))", "",
              "| shape | g | leak | ok/unst/unsettled/div | re-run alone | angle (ok) | mean ± sd | end-of-run angle, ok + not settled | floor angle(delta_l, W W^+ delta_l) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in summary:
        c = row["counts"]
        t = row["top"]
        ms = "n/a" if t["n"] == 0 else f"{t['mean']:.2f} ± {t['sd']:.2f}"
        lines.append(f"| {row['shape']} | {row['g']} | {row['leak']:g} | {c['ok']}/{c['unstable_fixed_point']}/{c['not_settled']}/{c['diverged']} "
                     f"| {row['batch_reruns']} | {iqr(t)} | {ms} | {iqr(row['top_end_of_run'])} (n={row['top_end_of_run']['n']}) | {fmt(row['floor'])} |")
    lines += ["", "## Bottom row: angle(delta_{l-1}, g^{-1}(M delta_l)) for three explicit references M", "",
              "M = W^+ (Moore-Penrose; main figure), M_DI^0 = the leak-free DI matrix B (W B)^{-1} (expanding: (B W)^{-1} B), "
              "M_NDI^alpha = Algorithm 5 NDI at the run's leak (linear: equal to the DI fixed point by construction). "
              "`no inv` (tanh): samples with max|M delta_l| >= 1, all / among ok; excluded. "
              "`no inv N(0,1)`: the same count for W^+ if delta_l were N(0, 1) (the paper's scale).", "",
              "| shape | g | leak | ok | W^+: angle | n | no inv | M_DI^0: angle | n | no inv | M_NDI^a: angle | n | no inv | no inv N(0,1) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in summary:
        if "pinv" not in row:
            continue
        cells = " | ".join(f"{iqr(row[r])} | {row[r]['n']} | {row[f'no_inverse_{r}']}/{row[f'no_inverse_{r}_among_ok']}" for r in REFS)
        unit = row.get("no_inverse_pinv_unit_scale", "-")
        lines.append(f"| {row['shape']} | {row['g']} | {row['leak']:g} | {row['counts']['ok']} | {cells} | {unit} |")
    path.write_text("\n".join(lines) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smoke run: 2 inits x 4 deltas, leaks 0, 0.01, 0.1; outputs to quick/")
    p.add_argument("--tanh-unit", action="store_true", help="also run tanh at delta_l ~ N(0, 1) (top row, dashed; slow)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: this folder, or quick/)")
    p.add_argument("--quiet", dest="verbose", action="store_false")
    p.add_argument("--replot", action="store_true", help="only redraw the figures from the folder's results.json")
    args = p.parse_args()
    args.n_inits, args.n_deltas, args.leaks = (2, 4, (0.0, 0.01, 0.1)) if args.quick else (N_INITS, N_DELTAS, LEAKS)
    out = args.out or (HERE / "quick" if args.quick else HERE)
    out.mkdir(parents=True, exist_ok=True)

    if args.replot:
        saved = json.loads((out / "results.json").read_text())
        meta = saved["meta"]
        nonlins = tuple((d["key"], d["g"], d["delta_scale"], d["bottom_row"]) for d in meta["nonlinearities"])
        draw(saved["summary"], nonlins, tuple(meta["leaks"]), out, (meta["n_inits"], meta["n_deltas"]))
        return
    start = time.perf_counter()
    records, stab, nonlins = experiment(args)
    summary = aggregate(records, stab, nonlins, args.leaks)
    runtime = time.perf_counter() - start
    cmd = "python experiments/fig_s1_accuracy/run.py" + (f" --seed {args.seed}" if args.seed else "") + (" --quick" if args.quick else "") + \
        (" --tanh-unit" if args.tanh_unit else "")
    meta = dict(command=cmd, seed=args.seed, runtime_s=runtime, leaks=list(args.leaks), n_inits=args.n_inits, n_deltas=args.n_deltas,
                shapes=[dict(label=s[0], d_lm1=s[1], d_l=s[2], kind=s[3]) for s in SHAPES],
                nonlinearities=[dict(key=k, g=g, delta_scale=s, bottom_row=b) for k, g, s, b in nonlins],
                ssa=SSA, t1=dict(min=T1_MIN, per_leak_expanding=T1_PER_LEAK), max_steps=MAX_STEPS,
                machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__}, numpy {np.__version__}")
    per_sample = [dict(shape=r["shape"], init=r["init"], leak=r["leak"], g=r["g"], status=r["status"], solver_reason=r["solver_reason"],
                       **{k: [None if not np.isfinite(v) else round(float(v), 5) for v in r[k]] for k in ("top", "top_end", "pinv", "ndi", "floor") if k in r})
                  for r in records]
    (out / "results.json").write_text(json.dumps(dict(meta=meta, stabilize=stab, summary=summary, per_sample=per_sample), indent=1))
    write_md(summary, stab, meta, out / "results.md")
    draw(summary, nonlins, args.leaks, out, (args.n_inits, args.n_deltas))
    print(f"done in {runtime:.0f} s; outputs in {out}")


if __name__ == "__main__":
    main()
