"""The ``simulate`` job: integrate a model to its fixed point, compare it with the paper,
and write ``trajectory.npz``, ``fixed_point.npz``, ``summary.json`` and ``convergence.png``
(plus ``weights.png`` for a model with plastic arrays).

Time-dependent models (plastic arrays, phase schedules): the trajectory is integrated over
``[t0, t1]`` (stopping at steady state only after the last jump time); then the neural
fixed point at the *final* weights and the *final* phase (the circuit frozen at
``t_final``, ``core.plasticity.Frozen``) is polished with Newton from the trajectory's
end. ``fixed_point.npz``, ``residual``, ``spectral_abscissa``, ``stable`` and ``checks``
refer to that neural fixed point (``summary["spectral_abscissa_of"]`` says so); the
plastic arrays' final values are added to ``fixed_point.npz``.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import jax
import numpy as np

from .. import __version__
from ..core.equilibrium import approximations, checks, fixed_point
from ..core.plasticity import Frozen, Plastic
from ..core.results import Reason
from ..core.batching import batch_inputs, batched_vector_field
from ..core.simulate import jumps_within, rate_along, simulate
from .model import Model
from .plots import convergence_plot, weights_plot
from .results import json_writer, npz_writer, shown_path, write_outputs

OUTPUTS = ("trajectory.npz", "fixed_point.npz", "summary.json", "convergence.png", "weights.png")
FINISHED = (Reason.steady_state, Reason.t1_reached)


def is_time_dependent(circuit, inputs, t0: float, t1: float) -> bool:
    """Plastic, with jump times in ``(t0, t1)``, or with a vector field at the initial
    state that differs between ``t0`` and ``t1`` (smooth schedules such as ramps)."""
    if isinstance(circuit, Plastic) or jumps_within(circuit, t0, t1):
        return True
    binputs, _, _ = batch_inputs(circuit, inputs)
    y0 = jax.vmap(circuit.init_state)(binputs)
    f = batched_vector_field(circuit)
    a, b = f(t0, y0, binputs), f(t1, y0, binputs)
    return any(not np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)


def _first(v, batched: bool):
    return v[:, 0] if batched else v


def run_simulation(model: Model, out_dir: Path, *, plot: bool = True, progress: bool = False, figure_format: str = "png") -> dict:
    """Simulate ``model`` and write its outputs to ``out_dir`` (figures in ``figure_format``:
    png, pdf or svg); returns the summary.

    ``summary["converged"]`` is false (with a ``reason``) when the dynamics diverged,
    became non-finite, hit ``max_steps`` or did not settle; then no ``fixed_point.npz``
    is written.
    """
    circuit, inputs = model.circuit, model.inputs()
    sim = model.simulation.kwargs()
    start = time.perf_counter()
    dynamic = is_time_dependent(circuit, inputs, sim["t0"], sim["t1"])
    if not dynamic:
        eq = fixed_point(circuit, inputs, method="ode", progress=progress, **sim)
        traj, view, view_inputs = eq.trajectory, circuit, inputs
        converged, reason = eq.all_converged, eq.reason
    else:
        traj = simulate(circuit, inputs, progress=progress, **sim)
        plastic = isinstance(circuit, Plastic)
        neural = circuit.circuit if plastic else circuit
        view = Frozen(neural, circuit.arrays if plastic else (), traj.t_final)
        view_inputs = {**inputs, **({n: traj.final[n] for n in circuit.arrays} if plastic else {})}
        eq = None
        if not traj.reason.blew_up:
            start_state = {k: traj.final[k] for k in neural.state_shapes()}
            eq = fixed_point(view, view_inputs, method="equilibrium", start=start_state)
        converged = eq is not None and traj.reason in FINISHED and eq.all_converged
        reason = traj.reason if traj.reason not in FINISHED or eq is None else eq.reason
    wall = time.perf_counter() - start
    nan = float("nan")
    summary = {
        "name": model.name,
        "kind": model.kind,
        "sizes": model.sizes,
        "batch": model.batch,
        "converged": converged,
        "reason": reason,
        "reason_message": reason.message,
        "ode_reason": traj.reason,
        "t_final": traj.t_final,
        "num_steps": traj.num_steps,
        "num_rejected_steps": traj.num_rejected_steps,
        "newton_steps": eq.newton_steps if eq is not None else 0,
        "residual": float(np.max(eq.residual)) if eq is not None else nan,
        "ode_residual": float(np.max(traj.residual)),
        "spectral_abscissa": float(np.max(eq.spectral_abscissa)) if eq is not None else nan,
        "stable": bool(eq is not None and np.all(eq.stable)),
        "checks": checks(view, eq.state, view_inputs) if converged else {},
        "approximations": approximations(view, eq.state, view_inputs) if converged else {},
        "stabilization": model.stabilization,
        "time_dependent": dynamic,
    }
    if traj.reason.blew_up:
        summary["diverged"] = _divergence(traj)
    if dynamic:
        summary["jump_times"] = list(traj.jump_times)
        summary["spectral_abscissa_of"] = (
            "the neural dynamics at the final weights and at t_final (plastic arrays held fixed)"
            if isinstance(circuit, Plastic) else "the neural dynamics frozen at t_final"
        )
    if model.plasticity:
        summary["plastic"] = _plastic_summary(model, traj)
    summary.update({
        "wall_time_s": wall,
        "seed": model.seed,
        "solver": model.simulation.solver,
        "model_file": shown_path(model.path),
        "version": __version__,
        "jax_backend": jax.default_backend(),
        "host": socket.gethostname(),
    })
    writers = {"summary.json": json_writer(summary), "trajectory.npz": npz_writer({"t": traj.ts, **traj.ys})}
    if converged:
        fp = dict(eq.state)
        if isinstance(circuit, Plastic):
            fp.update({n: traj.final[n] for n in circuit.arrays})
        writers["fixed_point.npz"] = npz_writer(fp)
    if plot:
        writers.update(_plots(model, traj, eq, converged, reason, inputs, dynamic))
    write_outputs(out_dir, writers, stale=OUTPUTS, figure_format=figure_format)
    return summary


def _divergence(traj) -> dict:
    """When and where a run diverged: ``t``, and the state variable that grew first past
    the bound (the first non-finite one, else the largest), with its largest magnitude."""
    final = {k: np.asarray(v) for k, v in traj.final.items()}
    bad = [k for k, v in final.items() if not np.all(np.isfinite(v))]
    key = bad[0] if bad else max(final, key=lambda k: float(np.max(np.abs(final[k]))))
    size = float(np.max(np.abs(np.nan_to_num(final[key], nan=np.inf))))
    return {"t": float(traj.t_final), "variable": key, "max_abs": size}


def _initial_weights(model: Model) -> dict[str, np.ndarray]:
    neural = model.neural_circuit
    return {n: np.asarray(neural.where(n)(neural)) for n in model.plasticity}


def _plastic_summary(model: Model, traj) -> dict:
    """Per plastic array: ``tau_w``, the gate spec and ``change_frobenius``, the largest
    ``||W(t_final) - W(0)||_F`` over the samples (``relative_change``: over ``||W(0)||_F``)."""
    out = {}
    for name, W0 in _initial_weights(model).items():
        W = traj.final[name] if traj.batched else traj.final[name][None]
        change = np.sqrt(np.sum((W - W0[None]).reshape(W.shape[0], -1) ** 2, axis=1))
        norm0 = float(np.linalg.norm(W0))
        out[name] = {
            "tau_w": model.plasticity[name]["tau_w"],
            "gate": model.plasticity[name]["gate"],
            "change_frobenius": float(np.max(change)),
            "relative_change": float(np.max(change) / norm0) if norm0 > 0 else None,
        }
    return out


def _plots(model: Model, traj, eq, converged: bool, reason: str, inputs, dynamic: bool) -> dict:
    circuit = model.circuit
    plastic = isinstance(circuit, Plastic)
    neural_keys = list(model.neural_circuit.state_shapes())
    traces = {k: _first(traj.ys[k], traj.batched) for k in neural_keys}
    title = f"{model.name} ({model.kind}): {reason}"
    if converged:
        distance = np.max(
            [np.abs(traj.ys[k] - eq.state[k]).reshape(len(traj.ts), -1).max(axis=1) for k in neural_keys], axis=0
        )
    else:
        distance = np.full(len(traj.ts), np.nan)
    if not dynamic:
        rate = rate_along(circuit, traj, inputs).max(axis=1)
        plot = lambda p: convergence_plot(p, traj.ts, distance, rate, traces, title)  # noqa: E731
        return {"convergence.png": plot}
    rates = {r"$\max|dh/dt|$ (neural state)": rate_along(circuit, traj, inputs, keys=neural_keys).max(axis=1)}
    if plastic:
        rates[r"$\max|dW/dt|$ (plastic arrays)"] = rate_along(circuit, traj, inputs, keys=circuit.arrays).max(axis=1)
    label = r"$\max|h(t) - h^*|$, $h^*$: fixed point at the final " + ("weights and phase" if plastic else "phase")
    writers = {
        "convergence.png": lambda p: convergence_plot(
            p, traj.ts, distance, None, traces, title, jumps=traj.jump_times, distance_label=label, rates=rates
        )
    }
    if plastic:
        W0 = _initial_weights(model)
        weights = {n: _first(traj.ys[n], traj.batched) for n in circuit.arrays}
        writers["weights.png"] = lambda p: weights_plot(
            p, traj.ts, weights, W0, traj.jump_times, f"{model.name}: plastic arrays (sample 0)",
            {n: model.plasticity[n]["tau_w"] for n in circuit.arrays},
        )
    return writers
