"""The ``train`` job: every rule of an experiment trained from the same initial network on
the same data order, metrics at every evaluation interval, checkpoints for ``--resume``.

Writes ``metrics.csv`` and ``metrics.npz`` (one row per rule and evaluation),
``learning_curves.png`` (one panel per metric, one line per rule), ``summary.json`` and
``checkpoint.npz`` (the networks and the step of each rule, rewritten atomically after
every interval, so an interrupted run resumes where it stopped without losing or
repeating updates).
"""

from __future__ import annotations

import csv
import io as _io
import json
import socket
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import __version__
from ..learning import data as datasets
from ..learning.metrics import probe_metrics
from ..learning.network import init_network
from ..learning.rules import RULES
from ..learning.train import SGD, batches, evaluate, run_steps
from .errors import ModelError, NumericalError
from .experiment import Experiment
from .plots import learning_curves_plot
from .results import json_writer, jsonable, write_outputs


def load_data(exp: Experiment, data_dir: str | None):
    d = exp.data
    sizes = exp.network.sizes
    if d.kind == "linear_regression":
        return datasets.linear_regression(d.n_train or 2000, d.n_test or 500, sizes[0], sizes[-1], seed=exp.seed)
    if d.kind == "nonlinear_regression":
        return datasets.nonlinear_regression(
            d.n_train or 2000, d.n_test or 500, tuple(sizes), tuple(exp.network.nonlinearities), seed=exp.seed, weight_scale=d.teacher_scale
        )
    if d.kind == "student_teacher":
        try:
            return datasets.student_teacher(
                d.n_train or 2000, d.n_test or 1000, tuple(sizes), tuple(exp.network.nonlinearities), distance=d.distance,
                condition=d.condition, seed=exp.seed,
            )
        except ValueError as err:
            raise ModelError(exp.path, "[data].condition", str(err)) from None
    ds = datasets.mnist(data_dir or d.data_dir, task=d.task, n_train=d.n_train, n_test=d.n_test, seed=exp.seed)
    if d.pca is not None:
        try:
            ds = datasets.principal_components(ds, d.pca)
        except ValueError as err:
            raise ModelError(exp.path, "[data].pca", str(err)) from None
    if ds.x_train.shape[1] != sizes[0] or ds.y_train.shape[1] != sizes[-1]:
        raise ModelError(exp.path, "[network].sizes", f"MNIST ({d.task}) needs {ds.x_train.shape[1]} inputs and {ds.y_train.shape[1]} outputs")
    return ds


def initial_network(exp: Experiment, data):
    """The network every rule starts from: drawn from the seed, or the student's weights
    of a student-teacher data set (``init = "data"``)."""
    n = exp.network
    net = init_network(n.sizes, n.nonlinearities, seed=exp.seed, scale=n.init_scale, init="uniform" if n.init == "data" else n.init, biases=n.biases)
    if n.init == "data":
        W = tuple(jnp.asarray(w, net.W[0].dtype) for w in data.teacher["student"])
        net = eqx.tree_at(lambda m: m.W, net, W)
    return net


def _metrics_row(label, step, rule, net, exp, data, probe, wall, per_update):
    """One row of metrics.csv for ``rule`` at ``step``: losses (and accuracy), the angles of
    its update to BP's and to the Gauss-Newton-target update, Frobenius norms of the weights
    (and of the arrays the rule learns itself), S24 abscissae, steady-state
    fractions for circuit rules, wall time since the start and per update of the last
    interval (compilation included in the first)."""
    loss, t = exp.network.loss, exp.training
    classification = data.task == "classification"
    xe, te = probe["eval"]
    train = evaluate(net, loss, xe, te, classification)
    test = evaluate(net, loss, jnp.asarray(data.x_test), jnp.asarray(data.y_test), classification)
    row = {"rule": label, "step": step, "train_loss": float(train["loss"]), "test_loss": float(test["loss"])}
    if "accuracy" in test:
        row["test_accuracy"] = float(test["accuracy"])
    frozen = tuple(exp.rules[label].frozen_layers)
    n_null = min(t.null_space_samples, len(probe["angles"][0]))
    m = jax.tree_util.tree_map(np.asarray, probe_metrics(
        rule, net, loss, *probe["angles"], frozen=frozen, gauss_newton=t.gauss_newton_angles, null_space=n_null,
    ))
    for key, prefix in (("bp", "angle_bp_W"), ("gn", "angle_gn_W")):
        for l, angle in enumerate(m.get(key, []), start=1):
            row[f"{prefix}{l}"] = float(angle)
    for l, W in enumerate(net.W, start=1):
        row[f"norm_W{l}"] = float(np.linalg.norm(np.asarray(W)))
    for key, prefix in (("null_space", "null_space_W"), ("e_rec", "e_rec_h"), ("e_approx", "e_approx_h")):
        for l, v in enumerate(m.get(key, []), start=1):
            row[f"{prefix}{l}"] = float(v)
    for name, value in m["norms"].items():
        row[f"norm_{name}"] = float(value)
    for l, sa in enumerate(m.get("abscissa", []), start=2):
        row[f"abscissa_S24_layer{l}"] = float(sa)
    if "steady_state" in m:
        for key in ("residual", "converged", "stable"):
            row[f"steady_state_{key}"] = float(m["steady_state"].get(key, np.nan))
    row["wall_s"] = wall
    row["wall_per_update_s"] = per_update
    return row


def _finite(tree) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(w)))) for w in jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_inexact_array)))


def run_training(exp: Experiment, out_dir: Path, *, data_dir: str | None = None, resume: bool = False, progress: bool = False) -> dict:
    """Train every rule of ``exp``; returns the summary (also written to ``summary.json``).

    A rule whose weights become non-finite stops there and is reported as diverged; the
    job then raises :class:`NumericalError` after writing what it has.
    """
    data = load_data(exp, data_dir)
    t = exp.training
    total = exp.total_steps(data.n_train)
    net0 = initial_network(exp, data)
    n_eval = min(t.eval_samples, data.n_train)
    xe, te = jnp.asarray(data.x_train[:n_eval]), jnp.asarray(data.y_train[:n_eval])
    n_probe = min(t.probe_samples or n_eval, n_eval)
    probe = {"eval": (xe, te), "angles": (xe[:n_probe], te[:n_probe])}
    ckpt_path = Path(out_dir) / "checkpoint.npz"
    state = _load_checkpoint(ckpt_path, exp) if resume else {}
    rows = state.get("rows", [])
    rules_info, status = {}, {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total * len(exp.rules), desc="train", unit="step")
    for label, options in exp.rules.items():
        saved = state.get("feedback", {}).get(label)
        cls = RULES[options.rule]
        # a resumed rule gets its own arrays from the checkpoint: build only its structure
        lr = options.lr or t.lr
        rule, info = cls.build(net0, options.for_restore() if saved else options, seed=exp.seed, lr=lr)
        if saved is not None:
            rule, info = _restore_feedback(rule, saved, ckpt_path, label)
        state.setdefault("feedback", {})[label] = (rule, info)
        # every option as resolved (not the kind's options that the rule takes from elsewhere), plus what was drawn
        rules_info[label] = {**options.model_dump(exclude=set(options.derived)), **info}
        opt = SGD(
            lr=lr, weight_decay=t.weight_decay, clip=t.clip, batch_size=t.batch_size, clip_output=t.clip_output,
            frozen=tuple(options.frozen_layers),
        )
        net, step = state.get("networks", {}).get(label, (net0, 0))
        start_wall = time.perf_counter() - state.get("wall", {}).get(label, 0.0)
        if step == 0 and not any(r["rule"] == label for r in rows):
            rows.append(_metrics_row(label, 0, rule, net, exp, data, probe, 0.0, float("nan")))
        if bar is not None:
            bar.update(step)
        status[label] = "completed"
        while step < total:
            n = min(t.eval_every, total - step)
            xs, ts = batches(data.x_train, data.y_train, start=step, steps=n, batch_size=t.batch_size, seed=exp.seed)
            t0 = time.perf_counter()
            net, rule = jax.block_until_ready(run_steps(rule, net, exp.network.loss, opt, xs, ts))
            per_update = (time.perf_counter() - t0) / n
            step += n
            if not _finite((net, rule)):
                status[label] = f"diverged (non-finite weights by step {step})"
                break
            wall = time.perf_counter() - start_wall
            rows.append(_metrics_row(label, step, rule, net, exp, data, probe, wall, per_update))
            state.setdefault("networks", {})[label] = (net, step)
            state["feedback"][label] = (rule, info)
            state.setdefault("wall", {})[label] = wall
            state["rows"] = rows
            _save_checkpoint(ckpt_path, exp, state)
            if bar is not None:
                bar.update(n)
                bar.set_postfix(rule=label, loss=f"{rows[-1]['train_loss']:.3g}")
    if bar is not None:
        bar.close()
    summary = _summary(exp, data, rows, rules_info, status, total)
    _write_results(out_dir, rows, summary)
    failed = [k for k, v in status.items() if v != "completed"]
    if failed:
        raise NumericalError(f"{exp.path}: rules {', '.join(failed)} diverged; see {out_dir}/summary.json")
    return summary


def _summary(exp, data, rows, rules_info, status, total) -> dict:
    final, warnings = {}, {}
    for label in exp.rules:
        mine = [r for r in rows if r["rule"] == label]
        if mine:
            final[label] = {k: v for k, v in mine[-1].items() if k != "rule"}
        # A circuit rule's signal is the fixed point found by Newton; where that fixed point
        # is unstable the circuit itself would never settle there (it diverges or oscillates).
        unstable = [r["step"] for r in mine if r.get("steady_state_stable", 1.0) < 1.0]
        if unstable:
            warnings[label] = (
                f"unstable fixed points at {len(unstable)} of {len(mine)} evaluations (first at step {unstable[0]}, "
                f"lowest stable fraction {min(r.get('steady_state_stable', 1.0) for r in mine):.2f}): "
                f"{RULES[exp.rules[label].rule].unstable_note}"
            )
    return {
        "name": exp.name,
        "experiment_file": str(exp.path),
        "data": {"name": data.name, "task": data.task, "n_train": data.n_train, "n_test": data.n_test, "description": data.description},
        "steps": total,
        "seed": exp.seed,
        "rules": rules_info,
        "status": status,
        "final": final,
        "warnings": warnings,
        "version": __version__,
        "jax_backend": jax.default_backend(),
        "host": socket.gethostname(),
    }


def _nmse(rows):
    """Training error normalised by the largest across all rules and evaluations (7.7.2)."""
    peak = max(r["train_loss"] for r in rows)
    return [r["train_loss"] / peak for r in rows]


def _write_results(out_dir, rows, summary):
    rows = [dict(r) for r in rows]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    for r, v in zip(rows, _nmse(rows)):
        r["train_nmse"] = v
    keys.append("train_nmse")
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    text = buf.getvalue()
    arrays = {k: np.asarray([r.get(k, np.nan) for r in rows], dtype=object if k == "rule" else float) for k in keys}
    arrays["rule"] = arrays["rule"].astype(str)
    writers = {
        "metrics.csv": lambda p: p.write_text(text),
        "metrics.npz": lambda p: np.savez(p, **arrays),
        "summary.json": json_writer(summary),
        "learning_curves.png": lambda p: learning_curves_plot(p, rows, summary["name"]),
    }
    write_outputs(out_dir, writers)


# --- checkpoints --------------------------------------------------------------------
def _save_checkpoint(path: Path, exp: Experiment, state: dict) -> None:
    arrays = {
        "experiment": np.asarray(exp.path.read_text()), "seed": np.asarray(exp.seed),
        "rows": np.asarray(json.dumps(jsonable(state["rows"]))),
    }
    for label, (net, step) in state["networks"].items():
        arrays[f"{label}/step"] = np.asarray(step)
        arrays[f"{label}/wall"] = np.asarray(state["wall"][label])
        rule, info = state["feedback"][label]
        arrays[f"{label}/rule_info"] = np.asarray(json.dumps(jsonable(info)))
        for i, leaf in enumerate(jax.tree_util.tree_leaves(eqx.filter(rule, eqx.is_array))):
            arrays[f"{label}/feedback{i}"] = np.asarray(leaf)
        for l, (W, b) in enumerate(zip(net.W, net.b), start=1):
            arrays[f"{label}/W{l}"] = np.asarray(W)
            arrays[f"{label}/b{l}"] = np.asarray(b)
    write_outputs(path.parent, {path.name: lambda p: np.savez(p, **arrays)})


def _load_checkpoint(path: Path, exp: Experiment) -> dict:
    if not path.is_file():
        raise ModelError(path, None, "no checkpoint to resume from; run without --resume first")
    with np.load(path, allow_pickle=False) as z:
        if str(z["experiment"]) != exp.path.read_text():
            raise ModelError(path, None, "the checkpoint belongs to a different experiment file; use another --out or drop --resume")
        if "seed" in z.files and int(z["seed"]) != exp.seed:
            raise ModelError(path, None, f"the checkpoint was trained with seed {int(z['seed'])}, not {exp.seed}; use the same --seed or another --out")
        rows = json.loads(str(z["rows"]))
        net0 = init_network(exp.network.sizes, exp.network.nonlinearities, biases=exp.network.biases)
        networks, wall, feedback = {}, {}, {}
        for label in exp.rules:
            if f"{label}/step" not in z:
                continue
            L = net0.L
            W = tuple(jnp.asarray(z[f"{label}/W{l}"]) for l in range(1, L + 1))
            b = tuple(jnp.asarray(z[f"{label}/b{l}"]) for l in range(1, L + 1))
            networks[label] = (eqx.tree_at(lambda n: (n.W, n.b), net0, (W, b)), int(z[f"{label}/step"]))
            wall[label] = float(z[f"{label}/wall"])
            if f"{label}/rule_info" in z:
                n = sum(1 for k in z.files if k.startswith(f"{label}/feedback"))
                feedback[label] = ([np.asarray(z[f"{label}/feedback{i}"]) for i in range(n)], json.loads(str(z[f"{label}/rule_info"])))
    return {"rows": rows, "networks": networks, "wall": wall, "feedback": feedback}


def _restore_feedback(rule, saved, path, label):
    """The rule with the feedback arrays it trained with (SSA is not rerun on resume)."""
    leaves, info = saved
    params, static = eqx.partition(rule, eqx.is_array)
    current, treedef = jax.tree_util.tree_flatten(params)
    if [np.shape(a) for a in current] != [np.shape(a) for a in leaves]:
        raise ModelError(path, None, f"the checkpoint's feedback for rule '{label}' does not fit the experiment file; use another --out or drop --resume")
    restored = [jnp.asarray(a, dtype=c.dtype) for a, c in zip(leaves, current)]
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, restored), static), info
