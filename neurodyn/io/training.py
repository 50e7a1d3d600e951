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
import dataclasses
import io as _io
import json
import math
import socket
import time
import zipfile
from pathlib import Path
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import __version__
from ..learning import data as datasets
from ..learning.metrics import probe_metrics
from ..learning.network import init_network
from ..learning.rules import RULES
from ..learning.train import SGD, batches, evaluate, gather, on_host, run_steps, run_steps_seeds, same_structure, seed_slots, spread, spreadable, stack, unstack
from .errors import ModelError, NumericalError
from .experiment import Experiment
from .interrupt import check as check_interrupt
from .plots import learning_curves_plot
from .results import json_writer, jsonable, shown_path, write_outputs


def load_data(exp: Experiment, data_dir: str | None):
    """The experiment's data set, its arrays in the training precision (``[training] dtype``)."""
    data = _load_data(exp, data_dir)
    dtype = np.dtype(exp.training.dtype)
    if data.x_train.dtype == dtype:
        return data
    return dataclasses.replace(data, **{k: getattr(data, k).astype(dtype) for k in ("x_train", "y_train", "x_test", "y_test")})


def _load_data(exp: Experiment, data_dir: str | None):
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
    net = init_network(
        n.sizes, n.nonlinearities, seed=exp.seed, scale=n.init_scale, init="uniform" if n.init == "data" else n.init, biases=n.biases,
        dtype=jnp.dtype(exp.training.dtype),
    )
    if n.init == "data":
        W = tuple(jnp.asarray(w, net.W[0].dtype) for w in data.teacher["student"])
        net = eqx.tree_at(lambda m: m.W, net, W)
    return net


def _settings(exp, data, label) -> dict:
    """What the measurement of ``label`` depends on besides the arrays (static)."""
    t = exp.training
    return {
        "loss": exp.network.loss, "classification": data.task == "classification", "frozen": tuple(exp.rules[label].frozen_layers),
        "gauss_newton": t.gauss_newton_angles, "null_space": t.null_space_samples,
    }


def _probe(t, data) -> dict:
    """The samples every evaluation uses, as device arrays once: ``"eval"`` (the first
    ``eval_samples`` training samples), ``"angles"`` (the first ``probe_samples`` of those)
    and ``"test"`` (the test set)."""
    n_eval = min(t.eval_samples, data.n_train)
    xe, te = jnp.asarray(data.x_train[:n_eval]), jnp.asarray(data.y_train[:n_eval])
    n_probe = min(t.probe_samples or n_eval, n_eval)
    return {"eval": (xe, te), "angles": (xe[:n_probe], te[:n_probe]), "test": (jnp.asarray(data.x_test), jnp.asarray(data.y_test))}


@eqx.filter_jit
def _measure(rule, net, probe: dict, settings: dict) -> dict:
    """Every metric of one evaluation as one program: losses (and accuracy) on the
    evaluation samples and the test set, the weights' norms, and :func:`probe_metrics` on
    the probe samples (:func:`_probe`)."""
    loss, classification = settings["loss"], settings["classification"]
    x, t = probe["angles"]
    return {
        "train": evaluate(net, loss, *probe["eval"], classification), "test": evaluate(net, loss, *probe["test"], classification),
        "norm_W": jnp.stack([jnp.linalg.norm(W) for W in net.W]),
        **probe_metrics(
            rule, net, loss, x, t, frozen=settings["frozen"], gauss_newton=settings["gauss_newton"],
            null_space=min(settings["null_space"], x.shape[0]),
        ),
    }


@eqx.filter_jit
def _measure_seeds(rules, nets, probes: dict, settings: dict) -> dict:
    """:func:`_measure` for stacked seeds."""
    seeds = eqx.if_array(0)  # a module's non-array leaves (a rule's leak) are shared, not mapped
    return eqx.filter_vmap(_measure, in_axes=(seeds, seeds, 0, None))(rules, nets, probes, settings)


def _metrics_row(label, step, rule, net, exp, data, probe, wall, per_update):
    """One row of metrics.csv for ``rule`` at ``step`` (:func:`_row`)."""
    m = _measure(rule, net, probe, _settings(exp, data, label))
    return _row(label, step, jax.tree_util.tree_map(np.asarray, m), wall, per_update)


def _row(label, step, m: dict, wall, per_update) -> dict:
    """Losses (and accuracy), the angles of the update to BP's and to the
    Gauss-Newton-target update, Frobenius norms of the weights (and of the arrays the rule
    learns itself), null-space fractions and reconstruction errors, S24 abscissae,
    steady-state fractions for circuit rules, wall time since the start and per update of
    the last interval (compilation included in the first)."""
    row = {"rule": label, "step": step, "train_loss": float(m["train"]["loss"]), "test_loss": float(m["test"]["loss"])}
    if "accuracy" in m["test"]:
        row["test_accuracy"] = float(m["test"]["accuracy"])
    for key, prefix in (("bp", "angle_bp_W"), ("gn", "angle_gn_W")):
        for l, angle in enumerate(m.get(key, []), start=1):
            row[f"{prefix}{l}"] = float(angle)
    for l, norm in enumerate(m["norm_W"], start=1):
        row[f"norm_W{l}"] = float(norm)
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


def _finite_seeds(tree, S: int) -> np.ndarray:
    """Per seed of a stacked tree: whether all its floating-point arrays are finite."""
    leaves = jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_inexact_array))
    return np.all([np.isfinite(np.asarray(v)).reshape(S, -1).all(axis=1) for v in leaves], axis=0)


def _divergence_seeds(net, rule, S: int) -> list[str]:
    """Per seed of stacked networks and rules: ``""`` while training is sound, else why it
    diverged: non-finite weights (network or rule), or network weights so large that their
    norms overflow (finite entries beyond about 1e154 in float64: the metrics would be inf)."""
    weights = [np.asarray(v).reshape(S, -1) for v in jax.tree_util.tree_leaves(eqx.filter(net, eqx.is_inexact_array))]
    with np.errstate(over="ignore", invalid="ignore"):
        norms = np.all([np.isfinite(np.sum(np.square(w), axis=1)) for w in weights], axis=0)  # inf also where an entry is
    finite = _finite_seeds(rule, S) & np.all([np.isfinite(w).all(axis=1) for w in weights], axis=0)
    return ["" if f and n else "non-finite weights" if not f else "weight norms overflow" for f, n in zip(finite, norms)]


def _divergence(net, rule) -> str:
    return _divergence_seeds(net, rule, 1)[0]


#: ``report(label, step, rows) -> stop``: called after every evaluation of a rule with its
#: new metrics rows (one per seed); returning True stops that rule there ("pruned").
Report = Callable[[str, int, list], bool]


def pruned(status: str) -> bool:
    """Whether a rule's status says a search stopped it early (:data:`Report`)."""
    return status.startswith("pruned")


def run_training(
    exp: Experiment, out_dir: Path, *, data_dir: str | None = None, resume: bool = False, progress: bool = False, plot: bool = True,
    report: Report | None = None, figure_format: str = "png",
) -> dict:
    """Train every rule of ``exp``; returns the summary (also written to ``summary.json``;
    ``learning_curves.png``, or pdf/svg by ``figure_format``, unless ``plot`` is off).

    A rule whose weights become non-finite stops there and is reported as diverged; the
    job then raises :class:`NumericalError` after writing what it has. A rule that
    ``report`` stops is reported as pruned (not an error).
    """
    data = load_data(exp, data_dir)
    t = exp.training
    total = exp.total_steps(data.n_train)
    net0 = initial_network(exp, data)
    probe = _probe(t, data)
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
        rules_info[label] = _rule_record(options, info)
        opt = _optimizer(t, options)
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
            why = _divergence(net, rule)
            if why:
                status[label] = f"diverged ({why} by step {step})"
                break
            wall = time.perf_counter() - start_wall
            rows.append(_metrics_row(label, step, rule, net, exp, data, probe, wall, per_update))
            state.setdefault("networks", {})[label] = (net, step)
            state["feedback"][label] = (rule, info)
            state.setdefault("wall", {})[label] = wall
            state["rows"] = rows
            _save_checkpoint(ckpt_path, exp, state)
            check_interrupt()  # Ctrl-C stops here, with the checkpoint written and nothing in flight
            if bar is not None:
                bar.update(n)
                bar.set_postfix(rule=label, loss=f"{rows[-1]['train_loss']:.3g}")
            if report is not None and step < total and report(label, step, [rows[-1]]):
                status[label] = f"pruned (stopped by the search at step {step})"
                break
    if bar is not None:
        bar.close()
    summary = _summary(exp, data, rows, rules_info, status, total)
    _write_results(out_dir, rows, summary, plot, figure_format)
    failed = [k for k, v in status.items() if v != "completed" and not pruned(v)]
    if failed:
        raise NumericalError(f"{exp.path}: rules {', '.join(failed)} diverged; see {out_dir}/summary.json")
    return summary


def _rule_record(options, info: dict) -> dict:
    """Every option as resolved (not the kind's options that the rule takes from elsewhere),
    plus what was drawn."""
    return {**options.model_dump(exclude=set(options.derived)), **info}


def _optimizer(t, options) -> SGD:
    return SGD(
        lr=options.lr or t.lr, weight_decay=t.weight_decay, clip=t.clip, batch_size=t.batch_size, clip_output=t.clip_output,
        frozen=tuple(options.frozen_layers),
    )


def run_training_seeds(
    exps: list[Experiment], out_dirs: list[Path], *, data_dir: str | None = None, plot: bool = True, report: Report | None = None,
    resume: bool = False,
) -> list[dict] | None:
    """Train experiments that differ only in their seed, each rule's steps of all seeds in
    one vmapped program (:func:`~neurodyn.learning.train.run_steps_seeds`); every seed gets
    the outputs :func:`run_training` writes (a checkpoint at each evaluation included), the
    same numbers to rounding, ``vmapped_seeds`` in its summary, and ``seed_devices``: per
    rule, the devices its seeds' steps were spread over (:func:`~neurodyn.learning.train.spread`
    where :func:`~neurodyn.learning.train.spreadable`, else 1). ``wall_per_update_s``
    is the group's time per update divided by the number of seeds. A seed whose weights
    become non-finite stops being evaluated and is reported as diverged (no exception);
    ``report`` sees the rows of the seeds still training and stops them all at once.
    ``resume``: every seed continues from its checkpoint, together, where each rule's seeds
    stopped at the same step (as a stopped vmapped run leaves them). Returns the summaries,
    or None, having run nothing, if some rule's structure differs between seeds, or on
    resume their checkpoints differ in a rule's step (then train them one by one)."""
    datas = [load_data(e, data_dir) for e in exps]
    t, S = exps[0].training, len(exps)
    total = exps[0].total_steps(datas[0].n_train)
    nets0 = [initial_network(e, d) for e, d in zip(exps, datas)]
    paths = [Path(o) / "checkpoint.npz" for o in out_dirs]
    states = _seed_states(exps, paths, resume)
    if states is None:
        return None
    saved = {label: [st["feedback"].get(label) for st in states] for label in exps[0].rules}
    built = {
        label: [RULES[o.rule].build(n0, o.for_restore() if saved[label][s] else o, seed=e.seed, lr=o.lr or t.lr) for s, (e, n0) in enumerate(zip(exps, nets0))]
        for label, o in exps[0].rules.items()
    }
    xs_shapes = {d.x_train.shape for d in datas}
    if not same_structure(nets0) or len(xs_shapes) > 1 or not all(same_structure([r for r, _ in b]) for b in built.values()):
        return None
    probe_b = jax.tree_util.tree_map(lambda *v: jnp.stack(v), *[_probe(t, d) for d in datas])
    records, status, devices = [{} for _ in range(S)], [{} for _ in range(S)], {}
    for label, options in exps[0].rules.items():
        if all(saved[label]):  # restored, as run_training does: the arrays it trained with, no SSA again
            built[label] = [_restore_feedback(r, saved[label][s], paths[s], label) for s, (r, _) in enumerate(built[label])]
        rules, settings = [r for r, _ in built[label]], _settings(exps[0], datas[0], label)
        nets, step = zip(*[st["networks"].get(label, (n0, 0)) for st, n0 in zip(states, nets0)])
        nets, step = list(nets), step[0]
        opt, start = _optimizer(t, options), time.perf_counter() - states[0]["wall"].get(label, 0.0)
        rule_b, net_b, alive, slots, parallel = stack(rules), stack(nets), np.ones(S, bool), None, False
        fresh = step == 0 and not any(r["rule"] == label for r in states[0]["rows"])  # not begun: its step-0 row
        if fresh:
            m = jax.tree_util.tree_map(np.asarray, _measure_seeds(gather(rule_b), gather(net_b), probe_b, settings))  # as below: one compilation
        for s in range(S):
            records[s][label] = _rule_record(options, built[label][s][1])
            if fresh:
                states[s]["rows"].append(_row(label, 0, jax.tree_util.tree_map(lambda v, s=s: v[s], m), 0.0, float("nan")))
            status[s][label] = "completed"
        while step < total and alive.any():
            n = min(t.eval_every, total - step)
            steps = [batches(d.x_train, d.y_train, start=step, steps=n, batch_size=t.batch_size, seed=e.seed) for e, d in zip(exps, datas)]
            if slots is None:  # the seeds' steps spread over the devices where that is safe
                parallel = spreadable(run_steps_seeds, rule_b, net_b, exps[0].network.loss, opt, *(np.stack(v) for v in zip(*steps)))
                slots = seed_slots(S) if parallel else S
                rule_b, net_b = _slots(rules, slots, parallel), _slots(nets, slots, parallel)
                devices[label] = len(net_b.W[0].sharding.device_set)
            t0 = time.perf_counter()
            net_b, rule_b = jax.block_until_ready(run_steps_seeds(rule_b, net_b, exps[0].network.loss, opt, *(_slots(v, slots, parallel) for v in zip(*steps))))
            per_update = (time.perf_counter() - t0) / n / S
            step += n
            host_net, host_rule = on_host(net_b), on_host(rule_b)  # one copy: the checks and the checkpoints
            whys = _divergence_seeds(host_net, host_rule, slots)
            for s in np.flatnonzero(alive & np.array([bool(w) for w in whys[:S]])):
                status[s][label], alive[s] = f"diverged ({whys[s]} by step {step})", False
            m = jax.tree_util.tree_map(np.asarray, _measure_seeds(gather(rule_b, S), gather(net_b, S), probe_b, settings))
            wall = time.perf_counter() - start
            for s in np.flatnonzero(alive):
                states[s]["rows"].append(_row(label, step, jax.tree_util.tree_map(lambda v, s=s: v[s], m), wall, per_update))
                states[s]["networks"][label], states[s]["feedback"][label] = (unstack(host_net, s), step), (unstack(host_rule, s), built[label][s][1])
                states[s]["wall"][label] = wall
                _save_checkpoint(Path(out_dirs[s]) / "checkpoint.npz", exps[s], states[s])
            check_interrupt()
            if report is not None and alive.any() and step < total and report(label, step, [states[s]["rows"][-1] for s in np.flatnonzero(alive)]):
                for s in np.flatnonzero(alive):
                    status[s][label] = f"pruned (stopped by the search at step {step})"
                break
    summaries = []
    for s in range(S):
        summary = _summary(exps[s], datas[s], states[s]["rows"], records[s], status[s], total) | {"vmapped_seeds": S, "seed_devices": devices}
        _write_results(out_dirs[s], states[s]["rows"], summary, plot)
        summaries.append(summary)
    return summaries


def _seed_states(exps: list[Experiment], paths: list[Path], resume: bool) -> list[dict] | None:
    """Each seed's training state (rows, networks, feedback arrays, wall times): empty, or
    on ``resume`` its checkpoint's; None where a rule's seeds stopped at different steps
    (a kill while their checkpoints were being written)."""
    if not resume:
        return [{"rows": [], "feedback": {}, "networks": {}, "wall": {}} for _ in exps]
    states = [_load_checkpoint(p, e) for p, e in zip(paths, exps)]
    if any(len({st["networks"].get(label, (None, 0))[1] for st in states}) > 1 for label in exps[0].rules):
        return None
    return states


def _slots(items, slots: int, parallel: bool):
    """The seeds' ``items`` (modules or arrays) stacked into ``slots`` entries, the last seed
    repeated in the extra ones (their results are discarded), and if ``parallel`` spread
    over the devices (:func:`~neurodyn.learning.train.spread`)."""
    items = list(items) + [items[-1]] * (slots - len(items))
    stacked = np.stack(items) if isinstance(items[0], np.ndarray) else stack(items)  # mini-batches stay on the host
    return spread(stacked) if parallel else stacked


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
        "experiment_file": shown_path(exp.path),
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


def _write_results(out_dir, rows, summary, plot: bool = True, figure_format: str = "png"):
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
    }
    if plot:
        families = {label: RULES[info["rule"]].family for label, info in summary["rules"].items() if info.get("rule") in RULES}
        writers["learning_curves.png"] = lambda p: learning_curves_plot(p, rows, summary["name"], families)
    write_outputs(out_dir, writers, stale=["learning_curves.png"], figure_format=figure_format)


# --- checkpoints --------------------------------------------------------------------
def _save_checkpoint(path: Path, exp: Experiment, state: dict) -> None:
    arrays = {
        "experiment": np.asarray(exp.text), "seed": np.asarray(exp.seed),
        # Python's JSON keeps NaN and infinities, so a resumed run writes the rows it had
        "rows": np.asarray(json.dumps(state["rows"], default=lambda v: v.item())),
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
    """The state saved by :func:`_save_checkpoint`, every array checked against the
    experiment (present, numeric, the network's shapes); a broken or foreign checkpoint is
    an input error naming it and what is wrong, and is left as it is."""
    if not path.is_file():
        raise ModelError(path, None, "no checkpoint to resume from; run without --resume first")
    try:
        with np.load(path, allow_pickle=False) as z:
            return _read_checkpoint(z, path, exp)
    except ModelError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError, TypeError) as err:
        raise ModelError(path, None, f"not a readable checkpoint ({type(err).__name__}: {err}); remove it or use another --out") from None


def _read_checkpoint(z, path: Path, exp: Experiment) -> dict:
    def array(name: str, shape: tuple | None = None, kind: str = "fi") -> np.ndarray:
        if name not in z.files:
            raise ModelError(path, None, f"the checkpoint lacks '{name}'; remove it or use another --out")
        a = z[name]
        if a.dtype.kind not in kind or (shape is not None and a.shape != shape):
            raise ModelError(path, None, f"the checkpoint's '{name}' has shape {a.shape} and dtype {a.dtype}, expected {shape} numbers; remove it or use another --out")
        return a

    if "seed" in z.files and int(array("seed", ())) != exp.seed:
        raise ModelError(path, None, f"the checkpoint was trained with seed {int(z['seed'])}, not {exp.seed}; use the same --seed or another --out")
    if str(array("experiment", (), "U")) != exp.text:
        raise ModelError(path, None, "the checkpoint belongs to a different experiment file; use another --out or drop --resume")
    rows = json.loads(str(array("rows", (), "U")))
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("rule"), str) and isinstance(r.get("step"), int) for r in rows):
        raise ModelError(path, None, "the checkpoint's metrics rows are damaged; remove it or use another --out")
    rows = [{k: math.nan if v is None else v for k, v in r.items()} for r in rows]  # older checkpoints saved NaN as null
    net0 = init_network(exp.network.sizes, exp.network.nonlinearities, biases=exp.network.biases)
    networks, wall, feedback = {}, {}, {}
    for label in exp.rules:
        if f"{label}/step" not in z.files:
            continue
        step = int(array(f"{label}/step", (), "i"))
        if step < 0:
            raise ModelError(path, None, f"the checkpoint's step for rule '{label}' is {step}; remove it or use another --out")
        W = tuple(jnp.asarray(array(f"{label}/W{l}", w.shape, "f")) for l, w in enumerate(net0.W, start=1))
        b = tuple(jnp.asarray(array(f"{label}/b{l}", v.shape, "f")) for l, v in enumerate(net0.b, start=1))
        networks[label] = (eqx.tree_at(lambda n: (n.W, n.b), net0, (W, b)), step)
        wall[label] = float(array(f"{label}/wall", (), "fi"))
        if f"{label}/rule_info" in z.files:
            n = sum(1 for k in z.files if k.startswith(f"{label}/feedback"))
            leaves = [np.asarray(array(f"{label}/feedback{i}", None, "fib")) for i in range(n)]
            feedback[label] = (leaves, json.loads(str(array(f"{label}/rule_info", (), "U"))))
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
