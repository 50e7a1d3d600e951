"""The ``stability`` job: the spectrum of a model's block system matrix (S24 and its
analogues), the Jacobian at the computed fixed point, and optionally SSA optimisation of
chosen arrays; writes ``stability.json``, ``spectrum.png`` and, after an optimisation,
the optimised arrays (``NAME.npy``) with a model file that uses them."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import jax
import numpy as np

from .. import __version__
from ..core.circuit import Circuit, jacobian
from ..core.equilibrium import fixed_point
from ..core.stability import is_oscillatory, smoothed_spectral_abscissa, system_spectrum, verdict
from ..core.stabilize import stabilize
from .arrays import check_epsilon
from .errors import ModelError, NumericalError
from .model import Model, check_stability_memory
from .plots import spectrum_plot
from .results import json_writer, write_outputs
from .toml_write import dumps


def _spectrum_report(circuit: Circuit, eps: float) -> tuple[dict, np.ndarray]:
    structured, dense = system_spectrum(circuit)
    eigs = structured if structured is not None else dense
    sa = float(np.max(eigs.real))
    blocks = circuit.system_blocks()
    if blocks is not None:
        from ..core.stability import smoothed_spectral_abscissa_two_block

        ssa = max(smoothed_spectral_abscissa_two_block(np.asarray(t), np.asarray(b), float(a1), float(a2), eps).value for t, b, a1, a2 in blocks)
    else:
        ssa = smoothed_spectral_abscissa(np.asarray(circuit.system_matrix()), eps).value
    report = {
        "spectral_abscissa": sa,
        "smoothed_spectral_abscissa": ssa,
        "verdict": verdict(sa),
        "oscillatory": is_oscillatory(eigs),
        "structured": structured is not None,
    }
    if structured is not None and dense is not None:
        report["spectral_abscissa_dense"] = float(np.max(dense.real))
        report["structured_dense_difference"] = abs(report["spectral_abscissa_dense"] - sa)
    return report, eigs


def _fixed_point_report(model: Model, circuit: Circuit, matrices: list | None = None) -> dict:
    """Jacobian (autodiff) at the computed fixed point, against the analytic block matrix;
    appends the analytic matrix (else the autodiff one) to ``matrices`` if given."""
    inputs = model.inputs()
    eq = fixed_point(circuit, inputs, method="ode", **model.simulation.kwargs())
    report = {"converged": eq.all_converged, "reason": eq.reason, "jacobian_spectral_abscissa": float(np.max(eq.spectral_abscissa))}
    if eq.all_converged:
        first = lambda tree: {k: (v[0] if model.batch else v) for k, v in tree.items()}  # noqa: E731
        state, x = first(eq.state), first(inputs)
        J = np.asarray(jacobian(circuit, state, x))
        analytic = circuit.block_matrix(state, x)
        if analytic is not None:
            report["analytic_vs_autodiff_jacobian"] = float(np.max(np.abs(J - np.asarray(analytic))))
        if matrices is not None:
            matrices.append(J if analytic is None else np.asarray(analytic))
        report["verdict"] = verdict(report["jacobian_spectral_abscissa"])
    return report


def _stabilized_model_text(model: Model, out_dir: Path, written: set[str]) -> str:
    """The model file with the arrays in ``written`` read from ``NAME.npy`` and other
    relative ``file`` paths re-pointed from ``out_dir``."""
    data = copy.deepcopy(model.table)
    arrays = data.setdefault("arrays", {})
    for name, entry in list(arrays.items()):
        if name in written:
            arrays[name] = {"file": f"{name}.npy"}
        elif isinstance(entry, dict) and "file" in entry:
            src = (model.path.parent / entry["file"]).resolve()
            arrays[name] = {**entry, "file": os.path.relpath(src, out_dir.resolve())}
    data["name"] = f"{data.get('name', model.path.stem)}_stabilized"
    return dumps(data, header=f"Written by neurodyn {__version__} stability from {model.path}")


def _arrays_to_write(model: Model, optimized: list[str]) -> set[str]:
    """Optimised arrays, arrays stabilised at load time, and neg_transposes of either."""
    changed = set(optimized) | {k for k, a in model.arrays.items() if a.stabilize is not None}
    data = model.table.get("arrays", {})
    for name, entry in data.items():
        of = entry.get("of") if isinstance(entry, dict) else None
        if of is not None and set([of] if isinstance(of, str) else of) & changed:
            changed.add(name)
    return changed


def _run_at_fixed_point(model: Model, circuit: Circuit, out_dir: Path, epsilon: float, figure_format: str) -> dict:
    """Kinds whose linearisation depends on the state (no ``system_matrix``): the spectrum
    of the analytic block matrix (else the autodiff Jacobian) at the computed fixed point."""
    matrices: list = []
    fp = _fixed_point_report(model, circuit, matrices)
    if not matrices:
        raise NumericalError(f"{model.path}: no fixed point to analyse ({fp['reason']}); check [simulation] (t1, max_steps)")
    M = matrices[0]
    eigs = np.linalg.eigvals(M)
    sa = float(np.max(eigs.real))
    before = {
        "matrix": "jacobian_at_fixed_point",
        "spectral_abscissa": sa,
        "smoothed_spectral_abscissa": smoothed_spectral_abscissa(M, epsilon).value,
        "verdict": verdict(sa),
        "oscillatory": is_oscillatory(eigs),
        "structured": False,
    }
    report = {
        "name": model.name, "kind": model.kind, "sizes": model.sizes, "block_matrix_shape": list(M.shape),
        "epsilon": epsilon, "before": before, "fixed_point_before": fp, "optimize": [],
        "version": __version__, "jax_backend": jax.default_backend(),
    }
    title = f"{model.name}: eigenvalues of the Jacobian at the fixed point ({M.shape[0]} x {M.shape[1]})"
    writers = {"stability.json": json_writer(report), "spectrum.png": lambda p: spectrum_plot(p, {"model file": eigs}, None, title)}
    write_outputs(out_dir, writers, stale=["spectrum.png"], figure_format=figure_format)
    return report


def run_stability(
    model: Model,
    out_dir: Path,
    *,
    optimize: list[str] = (),
    margin: float = 0.1,
    epsilon: float = 1e-3,
    lr: float = 1.0,
    max_iter: int = 500,
    progress: bool = False,
    figure_format: str = "png",
) -> dict:
    """Analyse (and optionally stabilise) ``model``; returns the report written as JSON
    (``spectrum.png``, or pdf/svg by ``figure_format``, beside it).

    ``report["success"]`` is false when the optimisation did not reach its target; then
    no arrays or model file are written. An ``epsilon`` outside the SSA's range
    (``core.stabilize.EPS_MIN`` to ``EPS_MAX``) is an input error, like a run whose
    estimated memory (:func:`~.model.check_stability_memory`) exceeds the limit.
    """
    check_epsilon(model.path, "--epsilon", epsilon)
    check_stability_memory(model)
    circuit = model.neural_circuit  # a plastic model's weights are analysed at their initial values
    if circuit.system_matrix() is None:
        if optimize:
            raise ModelError(model.path, f"--optimize {optimize[0]}", f"kind {model.kind} has no state-independent block system matrix to optimise; run stability without --optimize (it analyses the Jacobian at the fixed point)")
        return _run_at_fixed_point(model, circuit, Path(out_dir), epsilon, figure_format)
    wheres = []
    for name in optimize:
        try:
            wheres.append(circuit.where(name))
        except KeyError as err:
            raise ModelError(model.path, f"--optimize {name}", f"{err.args[0]}; choose weight arrays of [arrays]") from None
    M = np.asarray(circuit.system_matrix())
    before, eig_before = _spectrum_report(circuit, epsilon)
    report = {
        "name": model.name,
        "kind": model.kind,
        "sizes": model.sizes,
        "block_matrix_shape": list(M.shape),
        "epsilon": epsilon,
        "before": before,
        "fixed_point_before": _fixed_point_report(model, circuit),
        "optimize": list(optimize),
        "version": __version__,
        "jax_backend": jax.default_backend(),
    }
    spectra = {"model file" if not optimize else "before": eig_before}
    writers = {}
    target = None
    if optimize:
        result = stabilize(
            circuit, lambda c: tuple(w(c) for w in wheres), margin=margin, eps=epsilon, lr=lr, max_iter=max_iter, progress=progress
        )
        target = result.target
        after, spectra[f"after optimising {', '.join(optimize)}"] = _spectrum_report(result.circuit, epsilon)
        report.update(
            margin=margin, target=target, success=result.success, message=result.message,
            iterations=result.iterations, seconds=result.seconds, after=after,
        )
        if result.success:
            report["fixed_point_after"] = _fixed_point_report(model, result.circuit)
            values = {name: np.asarray(w(result.circuit)) for name, w in zip(optimize, wheres)}
            values.update({k: model.arrays[k].value for k in _arrays_to_write(model, list(optimize)) if k not in values})
            for name, value in values.items():
                writers[f"{name}.npy"] = lambda p, v=value: np.save(p, v, allow_pickle=False)
            model_name = f"{model.path.stem}_stabilized.toml"
            text = _stabilized_model_text(model, Path(out_dir), set(values))
            writers[model_name] = lambda p: p.write_text(text)
            report["files"] = sorted(writers)
    writers["stability.json"] = json_writer(report)
    title = f"{model.name}: eigenvalues of the block system matrix ({M.shape[0]} x {M.shape[1]})"
    writers["spectrum.png"] = lambda p: spectrum_plot(p, spectra, target, title)
    write_outputs(out_dir, writers, stale=["spectrum.png"], figure_format=figure_format)
    return report
