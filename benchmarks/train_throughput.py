"""Online DI training throughput: neurodyn's ``run_steps`` against a per-sample numba loop.

What is measured
----------------
One epoch of online (batch size 1) training of a 784-1000-10 network (tanh hidden layer,
softmax output, cross-entropy) with the dynamic-inversion rule, nonlinear controller
(supplement Eq. 2 and Algorithm 1)::

    delta_2 = t - softmax(a_2)
    delta_1 = steady state of  d delta_1/dt = -delta_1 + B_2 u,
                               d u/dt       = -alpha u + W_2 tanh(delta_1) - delta_2
    W_l += lr (delta_l h_{l-1}^T - weight_decay W_l),   b_l += lr delta_l

with lr = 1e-3, weight_decay = 1e-6, no clipping, alpha = 0.01, W ~ U(-0.01, 0.01) from
``init_network(seed=0)``, b = 0, and the fixed feedback B_2 = -50 W_2^T of the initial W_2.
Both implementations see the same weights and the same samples in the same order, in
float64:

``neurodyn``
    ``run_steps(DI(method="equilibrium"), ...)``: one ``lax.scan`` over the whole epoch
    (Newton on the reduced controller equation for delta_1). ``compile_s`` is the time to
    lower and compile ``run_steps`` for the epoch's shapes ahead of time, so the timed
    call excludes compilation.
``baseline``
    A faithful per-sample loop: numpy forward pass, Algorithm 1 for delta_1 by explicit
    Euler, dt = 0.5, 1000 steps from delta_1 = u = 0 with the controller updated first as
    in the public reference code (``u += dt * (-alpha u + W_2 tanh(delta_1) - delta_2)``,
    then ``delta_1 += dt * (-delta_1 + B_2 u)`` with the new ``u``), compiled with
    ``numba.njit`` in the vectorised form of the reference code (``tanh`` once per step,
    matrix-vector products through BLAS); numpy update in the order of
    ``neurodyn.learning.train.sgd_step`` (both layers' updates from the old weights).
    Timed on the first ``--baseline-samples`` samples of the epoch after a one-sample
    compile call; the epoch time is extrapolated.
``baseline_foundation``
    The same loop with ``di_throughput.euler_one`` (the foundation benchmark's kernel,
    which evaluates ``tanh(delta_1)`` once per controller unit and step), on fewer samples,
    for comparison with that benchmark (same steady states up to rounding).

``speedup`` is a throughput (samples/s) ratio against ``baseline``. As a check that both
compute the same training run, the baseline's weights after its samples are compared with
neurodyn's after the same samples: ``max_rel_weight_diff`` is the maximum over W_1, b_1,
W_2, b_2 of ``max|p_baseline - p_neurodyn| / max|p_neurodyn|``, and
``max_rel_update_diff`` the same relative to the change of the parameter from its initial
value (the stricter of the two). Test accuracy on 2,000 held-out images before and after
the epoch checks that learning happens (not a target).

Data: MNIST t10k (10,000 images, IDX files, gzip or raw) from ``--data-dir``, else
``$NEURODYN_DATA`` (files directly there or
in a ``mnist/`` subfolder), read by ``neurodyn.learning.data.mnist`` with its split
``"test-8k-2k"``: the images are shuffled by the fixed permutation
``numpy.random.default_rng(0).permutation(10000)``; the first 8,000 are the training epoch
and the last 2,000 the test set. Preprocessing as in supplement 7.7.4:
pixels / 255, the per-pixel mean removed and one global standard deviation divided out
(statistics of the training images). Without the files, synthetic data of the same shapes
(noisy class prototypes in [0, 1], 10 one-hot classes) is used; the output says which.
The epoch order is ``train.batches(..., seed=0)``.

Targets (2-core CPU): one epoch of 8,000 online DI updates in <= 60 s, and >= 20x the
baseline's throughput, with the two runs agreeing (``max_rel_weight_diff <= 1e-6``). The
script prints whether they were met in this run. If JAX sees a GPU, the neurodyn figures
are GPU figures (the baseline always runs on the CPU); the output says which device ran.

``--profile`` adds a breakdown of neurodyn's per-sample time (microseconds): the DI run
as is, the same scan with backpropagation instead of DI (forward + update, no circuit),
forward + DI signals without the update, ``solve_fixed_point`` alone, and a what-if run
whose forward pass uses ``einsum`` instead of ``h @ W.T``.

Run::

    python benchmarks/train_throughput.py                        # full run (~2-4 min on 2 cores)
    python benchmarks/train_throughput.py --json train.json # also write the results
    python benchmarks/train_throughput.py --quick                # 1,000 samples, 50 baseline samples
    python benchmarks/train_throughput.py --profile              # with the time breakdown

BLAS (numpy's and numba's) runs single-threaded (``OPENBLAS_NUM_THREADS=1`` unless set):
with threads, spinning OpenBLAS workers slowed the per-sample baseline about fourfold on
2 cores. Needs the ``bench`` extra (numba). Timings on a shared machine are noisy; compare the
ratios within one run.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

# The baseline is a per-sample loop of small BLAS calls: OpenBLAS threads that spin between
# calls take the core from the numba kernel (on 2 cores this made the baseline ~4x slower),
# so BLAS runs single-threaded unless the environment says otherwise. JAX does not use it.
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
try:
    import numba  # noqa: E402
except ImportError:  # one line instead of a traceback
    raise SystemExit("benchmarks/train_throughput.py needs numba for its baseline: pip install -e '.[bench]'") from None
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from di_throughput import ALPHA, EULER_DT, EULER_STEPS, euler_one, machine_info, timed, write_json  # noqa: E402

from neurodyn.core.equilibrium import solve_fixed_point  # noqa: E402
from mnist_data import N_TEST, N_TRAIN, Data, load_data  # noqa: E402
from neurodyn.learning.data import DATA_ENV  # noqa: E402
from neurodyn.learning.network import Forward, Network, init_network  # noqa: E402
from neurodyn.learning.rules import BP, DI  # noqa: E402
from neurodyn.learning.train import SGD, batches, evaluate, run_steps  # noqa: E402

SIZES = [784, 1000, 10]
NONLINEARITIES = ["tanh", "softmax"]
LOSS = "cross_entropy"
INIT_SEED = 0
INIT_SCALE = 0.01
B_GAIN = 50.0
LR = 1e-3
WEIGHT_DECAY = 1e-6
ORDER_SEED = 0

TARGET_EPOCH_S = 60.0
TARGET_SPEEDUP = 20.0
TARGET_MAX_REL_WEIGHT_DIFF = 1e-6
FOUNDATION_MAX_SAMPLES = 50


# ---- setup ------------------------------------------------------------------------
def setup() -> tuple[Network, DI, SGD]:
    net = init_network(SIZES, NONLINEARITIES, seed=INIT_SEED, scale=INIT_SCALE)
    rule = DI(B=(-B_GAIN * net.W[1].T,), alpha=ALPHA, controller="nonlinear", method="equilibrium")
    return net, rule, SGD(lr=LR, weight_decay=WEIGHT_DECAY, clip=None, batch_size=1)


def params(net: Network) -> dict[str, np.ndarray]:
    return {"W1": np.asarray(net.W[0]), "b1": np.asarray(net.b[0]), "W2": np.asarray(net.W[1]), "b2": np.asarray(net.b[1])}


def accuracy(net: Network, data: Data) -> float:
    return float(evaluate(net, LOSS, jnp.asarray(data.x_test), jnp.asarray(data.t_test))["accuracy"])


# ---- neurodyn ----------------------------------------------------------------------
def train_neurodyn(rule, net, opt, xs, ts) -> tuple[Network, float, float]:
    """``(trained network, seconds, compile_s)`` for one ``run_steps`` call over ``xs``."""
    compiled, compile_s = timed(lambda: run_steps.lower(rule, net, LOSS, opt, xs, ts).compile())
    (trained, _), seconds = timed(lambda: jax.block_until_ready(compiled(rule, net, LOSS, opt, xs, ts)))
    return trained, seconds, compile_s


# ---- baseline: per-sample loop, Algorithm 1 in numba ------------------------------
@numba.njit(cache=False)
def settle_vectorised(W, B, alpha, delta_out, dt, steps):
    """Algorithm 1 as the reference code writes it; ``(delta, last step's max|change|)``."""
    delta = np.zeros(W.shape[1])
    u = np.zeros(W.shape[0])
    change = np.zeros(W.shape[1])
    for _ in range(steps):
        u += dt * (-alpha * u + W @ np.tanh(delta) - delta_out)
        change = dt * (-delta + B @ u)
        delta += change
    return delta, np.max(np.abs(change))


def settle_foundation(W, B, alpha, delta_out, dt, steps):
    """The foundation benchmark's kernel with the same call signature."""
    out = np.empty(W.shape[1])
    return out, euler_one(W, B, alpha, delta_out, dt, steps, out)


KERNELS = {"baseline": settle_vectorised, "baseline_foundation": settle_foundation}


def train_baseline(kernel, p0: dict, B2: np.ndarray, xs: np.ndarray, ts: np.ndarray) -> tuple[dict, float]:
    """Online training over ``xs`` (samples, 784): ``(parameters, max last-step change)``."""
    W1, b1, W2, b2 = (np.array(p0[k]) for k in ("W1", "b1", "W2", "b2"))
    worst = 0.0
    for x, t in zip(xs, ts):
        h1 = np.tanh(W1 @ x + b1)
        a2 = W2 @ h1 + b2
        y = np.exp(a2 - a2.max())
        d2 = t - y / y.sum()
        d1, last = kernel(W2, B2, ALPHA, d2, EULER_DT, EULER_STEPS)
        worst = max(worst, float(last)) if np.isfinite(last) else math.inf
        W1 += LR * (np.outer(d1, x) - WEIGHT_DECAY * W1)
        b1 += LR * d1
        W2 += LR * (np.outer(d2, h1) - WEIGHT_DECAY * W2)
        b2 += LR * d2
    return {"W1": W1, "b1": b1, "W2": W2, "b2": b2}, worst


def weight_differences(ours: dict, theirs: dict, initial: dict) -> tuple[float, float]:
    """``(max_rel_weight_diff, max_rel_update_diff)`` of ``ours`` against ``theirs``."""
    rel_w, rel_u = 0.0, 0.0
    for k in ours:
        diff = np.max(np.abs(ours[k] - theirs[k])) if np.all(np.isfinite(ours[k])) else math.inf
        rel_w = max(rel_w, diff / np.max(np.abs(theirs[k])))
        rel_u = max(rel_u, diff / np.max(np.abs(theirs[k] - initial[k])))
    return float(rel_w), float(rel_u)


# ---- rows, table ------------------------------------------------------------------
@dataclass
class Row:
    method: str
    device: str
    samples: int
    seconds: float
    samples_per_s: float
    speedup: float
    epoch_s: float
    epoch_extrapolated: bool
    compile_s: float
    max_rel_weight_diff: float | None  # None: the reference (neurodyn)
    max_rel_update_diff: float | None
    note: str


def make_row(method, device, samples, seconds, compile_s, base_sps, diffs, note) -> Row:
    sps = samples / seconds
    return Row(
        method, device, samples, seconds, sps, sps / base_sps if base_sps else math.nan,
        N_TRAIN / sps, samples != N_TRAIN, compile_s, *diffs, note,
    )


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'method':<20} {'device':<5} {'samples':>7} {'seconds':>8} {'samples/s':>10} {'speedup':>8} "
        f"{'epoch_s':>9} {'compile_s':>9} {'rel_w_diff':>10} {'rel_dW_diff':>11}  note"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        epoch = f"{r.epoch_s:.1f}{'*' if r.epoch_extrapolated else ' '}"
        w, dw = ("ref", "ref") if r.max_rel_weight_diff is None else (f"{r.max_rel_weight_diff:.1e}", f"{r.max_rel_update_diff:.1e}")
        print(
            f"{r.method:<20} {r.device:<5} {r.samples:>7} {r.seconds:>8.2f} {r.samples_per_s:>10.1f} {r.speedup:>7.1f}x "
            f"{epoch:>9} {r.compile_s:>9.2f} {w:>10} {dw:>11}  {r.note}"
        )
    print(f"(* epoch time extrapolated from the samples timed; an epoch is {N_TRAIN} samples)")


# ---- profile ----------------------------------------------------------------------
class EinsumNetwork(Network):
    """What-if: the forward pass with ``einsum`` instead of ``h @ W.T`` (same numbers)."""

    def forward(self, x) -> Forward:
        h, a = [x], []
        for W, b, s in zip(self.W, self.b, self.s):
            a.append(jnp.einsum("...j,ij->...i", h[-1], W) + b)
            h.append(s(a[-1]))
        return Forward(a=tuple(a), h=tuple(h))


@eqx.filter_jit
def forward_scan(net, xs):
    """``Network.forward`` alone, one sample per step, weights fixed."""
    return jax.lax.scan(lambda acc, x: (acc + jnp.sum(net.forward(x).h[-1]), None), 0.0, xs)[0]


@eqx.filter_jit
def fixed_point_scan(rule, net, deltas_out):
    """``solve_fixed_point`` of the DI circuit alone, one sample (batch of 1) per step."""

    def body(acc, d):
        state, _, _ = solve_fixed_point(rule.circuit(net), {"delta_out": d}, method=rule.method)
        return acc + jnp.sum(state["delta_0"]), None

    return jax.lax.scan(body, 0.0, deltas_out)[0]


def transposed_weight_copies(rule, net, opt, xs, ts) -> int | None:
    """Ops in the compiled ``run_steps`` that materialise ``W_1^T`` (None if unavailable)."""
    try:
        text = run_steps.lower(rule, net, LOSS, opt, xs, ts).compile().compiled.as_text()
    except Exception:  # noqa: BLE001 - diagnostic only; relies on equinox/JAX internals
        return None
    shape = f"f64[{SIZES[0]},{SIZES[1]}]"
    return sum(1 for line in text.splitlines() if shape in line and "transpose(" in line)


def profile(rule, net, opt, xs, ts, repeats: int = 3) -> list[dict]:
    """Best-of-``repeats`` microseconds per sample of each part, the parts interleaved."""
    n = xs.shape[0]
    deltas_out = 0.1 * jax.random.normal(jax.random.PRNGKey(0), (n, 1, SIZES[-1]), jnp.float64)
    fast = EinsumNetwork(W=net.W, b=net.b, s=net.s)
    parts = {
        "run_steps, DI (as measured)": lambda: run_steps(rule, net, LOSS, opt, xs, ts),
        "run_steps, BP instead of DI (no circuit)": lambda: run_steps(BP(), net, LOSS, opt, xs, ts),
        "Network.forward alone": lambda: forward_scan(net, xs),
        "solve_fixed_point alone (DI circuit, Newton)": lambda: fixed_point_scan(rule, net, deltas_out),
        "what-if: forward alone via einsum": lambda: forward_scan(fast, xs),
        "what-if: run_steps, DI, forward via einsum": lambda: run_steps(rule, fast, LOSS, opt, xs, ts),
    }
    best = {}
    for name, fn in parts.items():
        print(f"  profile: compiling {name} ...", file=sys.stderr, flush=True)
        jax.block_until_ready(fn())
    for _ in range(repeats):
        for name, fn in parts.items():
            best[name] = min(best.get(name, math.inf), timed(lambda: jax.block_until_ready(fn()))[1])
    return [{"part": name, "us_per_sample": s / n * 1e6} for name, s in best.items()]


# ---- targets ----------------------------------------------------------------------
def check_targets(nd_row: Row, base_row: Row) -> list[tuple[str, bool, str]]:
    how = f"extrapolated from {nd_row.samples} samples" if nd_row.epoch_extrapolated else "measured"
    agree = base_row.max_rel_weight_diff <= TARGET_MAX_REL_WEIGHT_DIFF
    return [
        (f"one epoch of {N_TRAIN} online DI updates <= {TARGET_EPOCH_S:g} s", nd_row.epoch_s <= TARGET_EPOCH_S, f"{nd_row.epoch_s:.1f} s ({how}, {nd_row.device})"),
        (
            f">= {TARGET_SPEEDUP:g}x the baseline's throughput, weights agreeing (max rel diff <= {TARGET_MAX_REL_WEIGHT_DIFF:g})",
            nd_row.speedup >= TARGET_SPEEDUP and agree,
            f"{nd_row.speedup:.1f}x ({nd_row.samples_per_s:.0f} vs {base_row.samples_per_s:.1f} samples/s), "
            f"max rel weight diff {base_row.max_rel_weight_diff:.1e}",
        ),
    ]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=N_TRAIN, help=f"neurodyn samples, <= {N_TRAIN} (default: one epoch)")
    p.add_argument("--baseline-samples", type=int, default=400, help="samples timed for the baseline (default 400)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1,000 neurodyn and 50 baseline samples")
    p.add_argument("--profile", action="store_true", help="add the per-sample time breakdown of neurodyn")
    p.add_argument("--data-dir", help=f"MNIST directory (default ${DATA_ENV}; without files: synthetic data)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.samples, args.baseline_samples = min(args.samples, 1000), min(args.baseline_samples, 50)
    if not 1 <= args.samples <= N_TRAIN:
        p.error(f"--samples must be in 1..{N_TRAIN}")
    if not 1 <= args.baseline_samples <= args.samples:
        p.error("--baseline-samples must be in 1..--samples")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    machine = machine_info()
    machine["load_average_start"] = os.getloadavg()
    machine["blas_threads"] = os.environ["OPENBLAS_NUM_THREADS"]
    device = jax.devices()[0].platform
    gpu_note = "neurodyn ran on the GPU" if device == "gpu" else "no GPU visible to JAX: GPU figure not measured"
    print(f"machine: {machine['cpu_count']} CPUs, {machine['platform']}, jax {machine['jax']} on {machine['device']}; {gpu_note}")
    print(
        f"load average at start: {', '.join(f'{v:.2f}' for v in machine['load_average_start'])} (timings are noisy under load); "
        f"BLAS threads {machine['blas_threads']}"
    )

    data = load_data(args.data_dir)
    print(f"data: {data.source}; train {len(data.x_train)}, test {len(data.x_test)}")
    net0, rule, opt = setup()
    xs, ts = batches(data.x_train, data.t_train, start=0, steps=args.samples, batch_size=1, seed=ORDER_SEED)
    p0 = params(net0)
    acc_before = accuracy(net0, data)

    print(f"  neurodyn: {args.samples} samples ...", file=sys.stderr, flush=True)
    net, nd_s, nd_compile = train_neurodyn(rule, net0, opt, xs, ts)
    acc_after = accuracy(net, data)
    nb = args.baseline_samples
    nd_at_nb = params(net if nb == args.samples else run_steps(rule, net0, LOSS, opt, xs[:nb], ts[:nb])[0])

    xs_np, ts_np, B2 = np.asarray(xs[:, 0]), np.asarray(ts[:, 0]), np.ascontiguousarray(np.asarray(rule.B[0]))
    runs = {}
    for method, kernel in KERNELS.items():
        n = nb if method == "baseline" else min(nb, FOUNDATION_MAX_SAMPLES)
        print(f"  {method}: {n} samples ...", file=sys.stderr, flush=True)
        _, compile_s = timed(train_baseline, kernel, p0, B2, xs_np[:1], ts_np[:1])
        (p, worst), seconds = timed(train_baseline, kernel, p0, B2, xs_np[:n], ts_np[:n])
        reference = nd_at_nb if n == nb else params(run_steps(rule, net0, LOSS, opt, xs[:n], ts[:n])[0])
        runs[method] = (n, seconds, compile_s, weight_differences(p, reference, p0), worst)

    n, seconds, _, _, _ = runs["baseline"]
    base_sps = n / seconds
    rows = [
        make_row("neurodyn DI", device, args.samples, nd_s, nd_compile, base_sps, (None, None), "run_steps, equilibrium (Newton), one lax.scan"),
    ]
    for method, (n, seconds, compile_s, diffs, worst) in runs.items():
        kind = "vectorised, BLAS" if method == "baseline" else "di_throughput.euler_one"
        note = f"numba Euler dt={EULER_DT} x{EULER_STEPS} ({kind}); last-step max|d delta_1| {worst:.1e}"
        rows.append(make_row(method, "cpu", n, seconds, compile_s, base_sps, diffs, note))
    machine["load_average_end"] = os.getloadavg()

    print_table(rows)
    print("weights: rel_w_diff = max|p_baseline - p_neurodyn| / max|p_neurodyn| after the baseline's samples, rel_dW_diff relative to the change from the initial weights")
    print(f"test accuracy ({N_TEST} held out): {acc_before:.4f} before, {acc_after:.4f} after {args.samples} neurodyn updates (sanity check, not a target)")
    print(f"load average at end: {', '.join(f'{v:.2f}' for v in machine['load_average_end'])}")

    profile_rows = None
    if args.profile:
        chunk = min(args.samples, 500)
        profile_rows = profile(rule, net0, opt, xs[:chunk], ts[:chunk])
        copies = transposed_weight_copies(rule, net0, opt, xs[:chunk], ts[:chunk])
        print(f"profile ({chunk} samples, best of 3, microseconds per sample):")
        for r in profile_rows:
            print(f"  {r['us_per_sample']:>9.1f}  {r['part']}")
        print(f"  transposes of W_1 ({SIZES[1]} x {SIZES[0]}) in the compiled run_steps: {'n/a' if copies is None else copies}")
        profile_rows.append({"part": "transposes of W_1 in compiled run_steps", "count": copies})

    targets = check_targets(rows[0], rows[1])
    print(f"targets (defined for one {N_TRAIN}-sample epoch on a 2-core CPU; this run: {args.samples} samples, {machine['cpu_count']} CPUs, {device}):")
    for desc, met, measured in targets:
        print(f"  [{'MET' if met else 'NOT MET'}] {desc}: {measured}")
    fs = rows[2]
    print(f"  [info] speedup over the foundation benchmark's kernel (di_throughput.euler_one): {rows[0].samples_per_s / fs.samples_per_s:.1f}x")
    print(f"  [info] GPU: {gpu_note}")

    if args.json:
        report = {
            "rows": [asdict(r) for r in rows],
            "accuracy": {"before": acc_before, "after": acc_after, "test_samples": N_TEST, "after_samples": args.samples},
            "data": data.source,
            "profile": profile_rows,
            "targets": [{"target": d, "met": m, "measured": s} for d, m, s in targets],
            "gpu": gpu_note,
            "settings": {
                "sizes": SIZES, "lr": LR, "weight_decay": WEIGHT_DECAY, "alpha": ALPHA, "b_gain": B_GAIN,
                "euler_dt": EULER_DT, "euler_steps": EULER_STEPS, "samples": args.samples, "baseline_samples": nb,
            },
            "machine": machine,
        }
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
