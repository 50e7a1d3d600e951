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
N(0, 1) the explicit inverse is undefined for most samples); an extra tanh run at N(0, 1)
is shown in the top row only. The same W, B-start and delta draws are used for every leak
and every g.

Measured per sample (angles in degrees):
  top      angle(delta_l, W g(delta_{l-1}))
  bottom   angle(delta_{l-1}, g^{-1}(W^+ delta_l))       W^+: Moore-Penrose pseudo-inverse
  extra    angle(delta_{l-1}, g^{-1}(M_NDI delta_l))     M_NDI: Algorithm 5, at the same alpha, B
  floor    angle(delta_l, W W^+ delta_l)                 the best any delta_{l-1} can do (linear)
tanh samples with max|W^+ delta_l| >= 1 (resp. |M_NDI delta_l|) have no inverse: they are
counted and left out of the bottom-row angle. Samples whose DI run did not settle, diverged,
or settled on a fixed point with an unstable Jacobian are counted and left out of the angles.

Usage:  python experiments/fig_s1_accuracy/run.py [--seed 0] [--quick] [--no-tanh-unit]
Outputs next to this file (quick/ for --quick): results.json, results.md, fig_s1_accuracy.png,
fig_s1_ndi_reference.png.
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

HERE = Path(__file__).resolve().parent

#: (label, d_{l-1}, d_l); W is d_l x d_{l-1}
SHAPES = (("20x20", 20, 20, "equal"), ("20x10", 20, 10, "contracting"), ("10x20", 10, 20, "expanding"))
LEAKS = (0.0, 0.001, 0.01, 0.025, 0.05, 0.1)
#: (key, g name, scale of delta_l, in bottom row)
NONLINS = (("linear", "linear", 1.0, True), ("tanh", "tanh", 0.1, True), ("relu", "relu", 1.0, False))
TANH_UNIT = ("tanh_unit", "tanh", 1.0, False)
N_INITS, N_DELTAS = 10, 10
SSA = dict(margin=0.1, eps=1e-3, lr=1.0, max_iter=500)
T1_MIN, T1_PER_LEAK = 2000.0, 40.0  # t1 = max(T1_MIN, T1_PER_LEAK / alpha) for expanding layers
MAX_STEPS = 20_000
STATUSES = ("ok", "unstable_fixed_point", "not_settled", "diverged")


def angle_deg(a, b):
    """Angle between the rows of a and b in degrees (NaN where either row is zero or NaN)."""
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.sum(a * b, axis=-1) / (na * nb)
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))


def ginv(name, y):
    """g^{-1}(y) row-wise; tanh: NaN rows where any |y| >= 1 (no inverse)."""
    if name == "linear":
        return y, np.zeros(len(y), bool)
    bad = np.any(np.abs(y) >= 1.0, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.arctanh(np.where(np.abs(y) < 1.0, y, np.nan))
    return x, bad


def g_np(name, x):
    return {"linear": lambda v: v, "tanh": np.tanh, "relu": lambda v: np.maximum(v, 0.0)}[name](x)


def ndi_matrix(W, B, alpha):
    """Algorithm 5, NDI: (B W - alpha I)^{-1} B if d_l > d_{l-1}, else B (W B - alpha I)^{-1}."""
    d1, d0 = W.shape
    if d1 > d0:
        return np.linalg.solve(B @ W - alpha * np.eye(d0), B)
    return B @ np.linalg.inv(W @ B - alpha * np.eye(d1))


def run_di(circuit, deltas, t1):
    """DI from zero for a batch of delta_l. One batched fixed_point call; if the batch hit the
    divergence guard (which stops every sample of the batch), each sample is re-run alone.

    Returns per sample: polished state delta_{l-1} (converged samples), end-of-run delta_{l-1},
    status (STATUSES), t_final."""
    eq = nd.fixed_point(circuit, {"delta_out": jnp.asarray(deltas)}, method="ode", t1=t1, max_steps=MAX_STEPS)
    tr = eq.trajectory
    if tr.reason in ("diverged", "nonfinite"):
        parts = [run_di_single(circuit, d, t1) for d in deltas]
        return {k: np.stack([p[k] for p in parts]) for k in parts[0]} | {"batch_reruns": len(deltas)}
    n = len(deltas)
    status = np.where(eq.converged & eq.stable, "ok", np.where(eq.converged, "unstable_fixed_point", "not_settled"))
    end = np.asarray(tr.final["delta_0"])
    finite = np.all(np.isfinite(end), axis=1)
    status = np.where(finite, status, "diverged")
    return dict(
        delta0=np.asarray(eq.state["delta_0"]),
        delta0_end=end,
        status=status.astype("<U24"),
        t_final=np.full(n, tr.t_final),
        batch_reruns=0,
    )


def run_di_single(circuit, delta, t1):
    eq = nd.fixed_point(circuit, {"delta_out": jnp.asarray(delta)}, method="ode", t1=t1, max_steps=MAX_STEPS)
    tr = eq.trajectory
    end = np.asarray(tr.final["delta_0"])
    if tr.reason in ("diverged", "nonfinite") or not np.all(np.isfinite(end)):
        status = "diverged"
    elif bool(eq.converged):
        status = "ok" if bool(eq.stable) else "unstable_fixed_point"
    else:
        status = "not_settled"
    return dict(delta0=np.asarray(eq.state["delta_0"]), delta0_end=end, status=np.asarray(status, "<U24"), t_final=np.asarray(tr.t_final))


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
                M = ndi_matrix(W, B, alpha)
                for key, gname, scale, _ in nonlins:
                    dl = scale * deltas
                    cc = DynamicInversion(W=(jnp.asarray(W),), B=(jnp.asarray(B),), alpha=a, g=(parse(gname),))
                    out = run_di(cc, dl, t1)
                    ok = out["status"] == "ok"
                    x = out["delta0"]
                    top = angle_deg(dl, g_np(gname, x) @ W.T)
                    end_finite = np.all(np.isfinite(out["delta0_end"]), axis=1)
                    top_end = angle_deg(dl, g_np(gname, out["delta0_end"]) @ W.T)
                    rec = dict(shape=label, init=init, leak=alpha, g=key, status=out["status"].tolist(),
                               batch_reruns=int(out["batch_reruns"]),
                               top=np.where(ok, top, np.nan), top_end=np.where(end_finite, top_end, np.nan),
                               floor=angle_deg(dl, dl @ (W @ Wp).T))
                    if gname != "relu":
                        xp, bad_p = ginv(gname, dl @ Wp.T)
                        xn, bad_n = ginv(gname, dl @ M.T)
                        rec["pinv"] = np.where(ok & ~bad_p, angle_deg(x, xp), np.nan)
                        rec["ndi"] = np.where(ok & ~bad_n, angle_deg(x, xn), np.nan)
                        rec["no_inverse_pinv"] = int(bad_p.sum())
                        rec["no_inverse_ndi"] = int(bad_n.sum())
                        rec["no_inverse_pinv_ok"] = int((bad_p & ok).sum())
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
                if "pinv" in rs[0]:
                    row["pinv"] = summarise(np.concatenate([r["pinv"] for r in rs]))
                    row["ndi"] = summarise(np.concatenate([r["ndi"] for r in rs]))
                    row["no_inverse_pinv"] = int(sum(r["no_inverse_pinv"] for r in rs))
                    row["no_inverse_pinv_among_ok"] = int(sum(r["no_inverse_pinv_ok"] for r in rs))
                    row["no_inverse_ndi"] = int(sum(r["no_inverse_ndi"] for r in rs))
                summary.append(row)
    return summary


# ----------------------------------------------------------------------------- outputs
COLORS = {"linear": "tab:blue", "tanh": "tab:orange", "relu": "tab:green", "tanh_unit": "tab:red"}
LABELS = {"linear": "linear", "tanh": r"tanh ($\delta_l\sim0.1\,\mathcal{N}(0,1)$)", "relu": "ReLU",
          "tanh_unit": r"tanh ($\delta_l\sim\mathcal{N}(0,1)$)"}


def _series(summary, label, key, metric, leaks):
    xs, med, lo, hi = [], [], [], []
    for alpha in leaks:
        row = next((r for r in summary if r["shape"] == label and r["g"] == key and r["leak"] == alpha), None)
        if row is None or metric not in row or row[metric]["n"] == 0:
            continue
        xs.append(alpha)
        med.append(row[metric]["median"])
        lo.append(row[metric]["q25"])
        hi.append(row[metric]["q75"])
    return np.array(xs), np.array(med), np.array(lo), np.array(hi)


def plot(summary, nonlins, leaks, path, bottom_metric="pinv", bottom_label=None, title=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7.2), sharex=True)
    for j, (label, d0, d1, kind) in enumerate(SHAPES):
        for i, metric in enumerate(("top", bottom_metric)):
            ax = axes[i, j]
            for key, gname, scale, bottom in nonlins:
                if i == 1 and not bottom:
                    continue
                xs, med, lo, hi = _series(summary, label, key, metric, leaks)
                if xs.size == 0:
                    continue
                ls = "--" if key == "tanh_unit" else "-"
                ax.plot(xs, med, ls, marker="o", ms=4, color=COLORS[key], label=LABELS[key])
                ax.fill_between(xs, lo, hi, color=COLORS[key], alpha=0.15 if key != "tanh_unit" else 0.07)
            if i == 0 and d1 > d0:
                xs, med, lo, hi = _series(summary, label, "linear", "floor", leaks)
                ax.plot(xs, med, ":", color="k", label=r"floor: $\angle(\delta_l, WW^+\delta_l)$")
            if i == 1:
                ax.text(0.03, 0.95, "ReLU: no explicit inverse", transform=ax.transAxes, va="top", fontsize=8, color="tab:green")
            ax.set_xscale("symlog", linthresh=1e-3, linscale=0.5)
            ax.set_xticks([0, 1e-3, 1e-2, 1e-1])
            ax.set_xlim(-2e-4, 0.13)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(f"{label} ({kind})" + (r", $\alpha>0$ only" if d1 > d0 else ""))
            else:
                ax.set_xlabel(r"leak $\alpha$")
        axes[0, j].legend(fontsize=7, loc="upper left")
    axes[0, 0].set_ylabel(r"angle($\delta_l$, $W g(\delta_{l-1})$) [deg]")
    axes[1, 0].set_ylabel(bottom_label or r"angle($\delta_{l-1}$, $g^{-1}(W^+\delta_l)$) [deg]")
    fig.suptitle(title or "Fig. S1 reproduction: DI accuracy, median and IQR over converged samples (10 inits x 10 deltas)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


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
              "| shape | g | leak | ok/unst/unsettled/div | angle (ok) | mean ± sd | end-of-run angle, all finite | floor angle(delta_l, W W^+ delta_l) |",
              "|---|---|---|---|---|---|---|---|"]
    for row in summary:
        c = row["counts"]
        t = row["top"]
        ms = "n/a" if t["n"] == 0 else f"{t['mean']:.2f} ± {t['sd']:.2f}"
        lines.append(f"| {row['shape']} | {row['g']} | {row['leak']:g} | {c['ok']}/{c['unstable_fixed_point']}/{c['not_settled']}/{c['diverged']} "
                     f"| {iqr(t)} | {ms} | {iqr(row['top_end_of_run'])} (n={row['top_end_of_run']['n']}) | {fmt(row['floor'])} |")
    lines += ["", "## Bottom row: angle(delta_{l-1}, g^{-1}(W^+ delta_l)) and angle(delta_{l-1}, g^{-1}(M_NDI delta_l))", "",
              "`no inv`: samples where max|W^+ delta_l| >= 1 (tanh: no inverse; of all samples / of the ok samples); they are excluded.", "",
              "| shape | g | leak | ok | no inv (pinv, all/ok) | angle vs g^-1(W^+ delta_l) | n | angle vs g^-1(M_NDI delta_l) | n (no inv NDI) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in summary:
        if "pinv" not in row:
            continue
        lines.append(f"| {row['shape']} | {row['g']} | {row['leak']:g} | {row['counts']['ok']} | {row['no_inverse_pinv']}/{row['no_inverse_pinv_among_ok']} "
                     f"| {iqr(row['pinv'])} | {row['pinv']['n']} | {iqr(row['ndi'])} | {row['ndi']['n']} ({row['no_inverse_ndi']}) |")
    path.write_text("\n".join(lines) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smoke run: 2 inits x 4 deltas, leaks 0, 0.01, 0.1; outputs to quick/")
    p.add_argument("--no-tanh-unit", dest="tanh_unit", action="store_false", help="skip the extra tanh run at delta_l ~ N(0, 1)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: this folder, or quick/)")
    p.add_argument("--quiet", dest="verbose", action="store_false")
    args = p.parse_args()
    args.n_inits, args.n_deltas, args.leaks = (2, 4, (0.0, 0.01, 0.1)) if args.quick else (N_INITS, N_DELTAS, LEAKS)
    out = args.out or (HERE / "quick" if args.quick else HERE)
    out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    records, stab, nonlins = experiment(args)
    summary = aggregate(records, stab, nonlins, args.leaks)
    runtime = time.perf_counter() - start
    cmd = "python experiments/fig_s1_accuracy/run.py" + (f" --seed {args.seed}" if args.seed else "") + (" --quick" if args.quick else "") + \
        ("" if args.tanh_unit else " --no-tanh-unit")
    meta = dict(command=cmd, seed=args.seed, runtime_s=runtime, leaks=list(args.leaks), n_inits=args.n_inits, n_deltas=args.n_deltas,
                shapes=[dict(label=s[0], d_lm1=s[1], d_l=s[2], kind=s[3]) for s in SHAPES],
                nonlinearities=[dict(key=k, g=g, delta_scale=s, bottom_row=b) for k, g, s, b in nonlins],
                ssa=SSA, t1=dict(min=T1_MIN, per_leak_expanding=T1_PER_LEAK), max_steps=MAX_STEPS,
                machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__}, numpy {np.__version__}")
    per_sample = [dict(shape=r["shape"], init=r["init"], leak=r["leak"], g=r["g"], status=r["status"],
                       **{k: [None if not np.isfinite(v) else round(float(v), 5) for v in r[k]] for k in ("top", "top_end", "pinv", "ndi", "floor") if k in r})
                  for r in records]
    (out / "results.json").write_text(json.dumps(dict(meta=meta, stabilize=stab, summary=summary, per_sample=per_sample), indent=1))
    write_md(summary, stab, meta, out / "results.md")
    plot(summary, nonlins, args.leaks, out / "fig_s1_accuracy.png")
    plot(summary, nonlins, args.leaks, out / "fig_s1_ndi_reference.png", bottom_metric="ndi",
         bottom_label=r"angle($\delta_{l-1}$, $g^{-1}(M_{NDI}\delta_l)$) [deg]",
         title=r"Bottom row against the NDI matrix of Algorithm 5 at the same $\alpha$ and $B$ (linear: exact by construction)")
    print(f"done in {runtime:.0f} s; outputs in {out}")


if __name__ == "__main__":
    main()
