"""The ``simulate`` job: integrate a model to its fixed point, compare it with the paper,
and write ``trajectory.npz``, ``fixed_point.npz``, ``summary.json`` and ``convergence.png``."""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np

from .. import __version__
from ..core.equilibrium import checks, fixed_point
from ..core.simulate import rate_along
from .model import Model
from .plots import convergence_plot
from .results import json_writer, npz_writer, write_outputs

OUTPUTS = ("trajectory.npz", "fixed_point.npz", "summary.json", "convergence.png")


def run_simulation(model: Model, out_dir: Path, *, plot: bool = True, progress: bool = False) -> dict:
    """Simulate ``model`` and write its outputs to ``out_dir``; returns the summary.

    ``summary["converged"]`` is false (with a ``reason``) when the dynamics diverged,
    became non-finite, hit ``max_steps`` or did not settle; then no ``fixed_point.npz``
    is written.
    """
    circuit, inputs = model.circuit, model.inputs()
    start = time.perf_counter()
    eq = fixed_point(circuit, inputs, method="ode", progress=progress, **model.simulation.kwargs())
    traj = eq.trajectory
    wall = time.perf_counter() - start
    converged = eq.all_converged
    summary = {
        "name": model.name,
        "kind": model.kind,
        "sizes": model.sizes,
        "batch": model.batch,
        "converged": converged,
        "reason": eq.reason,
        "ode_reason": traj.reason,
        "t_final": traj.t_final,
        "num_steps": traj.num_steps,
        "num_rejected_steps": traj.num_rejected_steps,
        "newton_steps": eq.newton_steps,
        "residual": float(np.max(eq.residual)),
        "ode_residual": float(np.max(traj.residual)),
        "spectral_abscissa": float(np.max(eq.spectral_abscissa)),
        "stable": bool(np.all(eq.stable)),
        "checks": checks(circuit, eq.state, inputs) if converged else {},
        "stabilization": model.stabilization,
        "wall_time_s": wall,
        "seed": model.seed,
        "solver": model.simulation.solver,
        "model_file": str(model.path),
        "version": __version__,
        "jax_backend": jax.default_backend(),
    }
    writers = {"summary.json": json_writer(summary), "trajectory.npz": npz_writer({"t": traj.ts, **traj.ys})}
    if converged:
        writers["fixed_point.npz"] = npz_writer(eq.state)
    if plot:
        rate = rate_along(circuit, traj, inputs).max(axis=1)
        if converged:
            distance = np.max([np.abs(traj.ys[k] - eq.state[k]).reshape(len(traj.ts), -1).max(axis=1) for k in traj.ys], axis=0)
        else:
            distance = np.full(len(traj.ts), np.nan)
        traces = {k: (v[:, 0] if traj.batched else v) for k, v in traj.ys.items()}
        title = f"{model.name} ({model.kind}): {eq.reason}"
        writers["convergence.png"] = lambda p: convergence_plot(p, traj.ts, distance, rate, traces, title)
    write_outputs(out_dir, writers, stale=OUTPUTS)
    return summary
