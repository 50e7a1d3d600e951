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
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import __version__
from ..learning import data as datasets
from ..learning.feedback import make_rule
from ..learning.network import init_network
from ..learning.rules import CircuitRule
from ..learning.train import SGD, alignment, batches, evaluate, feedback_abscissa, run_steps, steady_state_metrics
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
    ds = datasets.mnist(data_dir or d.data_dir, task=d.task, n_train=d.n_train, n_test=d.n_test, seed=exp.seed)
    if ds.x_train.shape[1] != sizes[0] or ds.y_train.shape[1] != sizes[-1]:
        raise ModelError(exp.path, "[network].sizes", f"MNIST ({d.task}) needs {ds.x_train.shape[1]} inputs and {ds.y_train.shape[1]} outputs")
    return ds


def _metrics_row(label, step, rule, net, exp, data, xe, te, wall):
    loss = exp.network.loss
    train = evaluate(net, loss, xe, te)
    test = evaluate(net, loss, jnp.asarray(data.x_test), jnp.asarray(data.y_test))
    row = {"rule": label, "step": step, "train_loss": float(train["loss"]), "test_loss": float(test["loss"])}
    if "accuracy" in test:
        row["test_accuracy"] = float(test["accuracy"])
    for l, angle in enumerate(np.asarray(alignment(rule, net, loss, xe, te)), start=1):
        row[f"angle_bp_W{l}"] = float(angle)
    for l, sa in enumerate(feedback_abscissa(rule, net), start=2):
        row[f"abscissa_S24_layer{l}"] = sa
    if isinstance(rule, CircuitRule):
        residual, converged, stable = steady_state_metrics(rule, net, loss, xe, te)
        row["steady_state_residual"] = float(residual)
        row["steady_state_converged"] = float(converged)
        row["steady_state_stable"] = float(stable)
    row["wall_s"] = wall
    return row


def _finite(net) -> bool:
    return all(bool(jnp.all(jnp.isfinite(w))) for w in jax.tree_util.tree_leaves((net.W, net.b)))


def run_training(exp: Experiment, out_dir: Path, *, data_dir: str | None = None, resume: bool = False, progress: bool = False) -> dict:
    """Train every rule of ``exp``; returns the summary (also written to ``summary.json``).

    A rule whose weights become non-finite stops there and is reported as diverged; the
    job then raises :class:`NumericalError` after writing what it has.
    """
    data = load_data(exp, data_dir)
    t = exp.training
    total = exp.total_steps(data.n_train)
    opt = SGD(lr=t.lr, weight_decay=t.weight_decay, clip=t.clip, batch_size=t.batch_size, clip_output=t.clip_output)
    net0 = init_network(exp.network.sizes, exp.network.nonlinearities, seed=exp.seed, scale=exp.network.init_scale)
    n_eval = min(t.eval_samples, data.n_train)
    xe, te = jnp.asarray(data.x_train[:n_eval]), jnp.asarray(data.y_train[:n_eval])
    ckpt_path = Path(out_dir) / "checkpoint.npz"
    state = _load_checkpoint(ckpt_path, exp) if resume else {}
    rows = state.get("rows", [])
    rules_info, status = {}, {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total * len(exp.rules), desc="train", unit="step")
    for label, spec in exp.rules.items():
        saved = state.get("feedback", {}).get(label)
        rule, info = make_rule(
            # a resumed rule gets its feedback from the checkpoint: build only its structure
            spec.rule, net0, feedback="random" if saved and spec.feedback == "ssa" else spec.feedback,
            scale=spec.feedback_scale, leak=spec.leak, controller=spec.controller, method=spec.method,
            ssa_margin=spec.ssa_margin, seed=exp.seed,
        )
        if saved is not None:
            rule, info = _restore_feedback(rule, saved, ckpt_path, label)
        state.setdefault("feedback", {})[label] = (rule, info)
        rules_info[label] = {**spec.model_dump(), **info}  # every option as resolved, plus the feedback actually drawn
        net, step = state.get("networks", {}).get(label, (net0, 0))
        start_wall = time.perf_counter() - state.get("wall", {}).get(label, 0.0)
        if step == 0 and not any(r["rule"] == label for r in rows):
            rows.append(_metrics_row(label, 0, rule, net, exp, data, xe, te, 0.0))
        if bar is not None:
            bar.update(step)
        status[label] = "completed"
        while step < total:
            n = min(t.eval_every, total - step)
            xs, ts = batches(data.x_train, data.y_train, start=step, steps=n, batch_size=t.batch_size, seed=exp.seed)
            net = run_steps(rule, net, exp.network.loss, opt, xs, ts)
            step += n
            if not _finite(net):
                status[label] = f"diverged (non-finite weights by step {step})"
                break
            wall = time.perf_counter() - start_wall
            rows.append(_metrics_row(label, step, rule, net, exp, data, xe, te, wall))
            state.setdefault("networks", {})[label] = (net, step)
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
                f"lowest stable fraction {min(r.get('steady_state_stable', 1.0) for r in mine):.2f}): its learning signal is the "
                "Newton fixed point, which the circuit's own dynamics would not reach"
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
    arrays = {"experiment": np.asarray(exp.path.read_text()), "rows": np.asarray(json.dumps(jsonable(state["rows"])))}
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
        rows = json.loads(str(z["rows"]))
        net0 = init_network(exp.network.sizes, exp.network.nonlinearities, seed=exp.seed, scale=exp.network.init_scale)
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
