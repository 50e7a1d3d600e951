"""Resource limits, checked from the resolved shapes before anything is allocated.

A model or experiment file whose run would need more memory than the limit is an input
error naming the key that drives the estimate (``[circuit].sizes``,
``[simulation].saveat``, ``[arrays].<name>.batch``, ``[training].eval_every``, ...). The
limit is half the machine's physical memory unless ``NEURODYN_MAX_MEMORY`` (set by the
CLI's ``--max-memory``) says otherwise, e.g. ``8G``, ``512M`` or a number of bytes.

The estimates count the large arrays a run holds at once (float64 unless the experiment
trains in float32); they are meant to catch a mistyped number (``sizes = [1000000000,
10]``), not to predict memory to the last megabyte.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from .errors import ModelError

FRACTION = 0.5  # of physical memory, the default limit
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_bytes(text: str) -> int:
    """``"8G"``, ``"512M"``, ``"1.5T"`` or ``"1000000"`` as bytes (ValueError otherwise)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([KMGT]?)i?B?\s*", str(text), flags=re.IGNORECASE)
    if not m:
        raise ValueError(f"not a memory size: {text!r} (write e.g. 8G, 512M or a number of bytes)")
    value = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if not 0 < value < 2**63:
        raise ValueError(f"memory size out of range: {text!r}")
    return int(value)


def physical_memory() -> int:
    """The machine's physical memory in bytes (16 GiB where the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30


def memory_limit() -> int:
    """The limit in bytes: ``NEURODYN_MAX_MEMORY``, else half the physical memory."""
    text = os.environ.get("NEURODYN_MAX_MEMORY")
    if text:
        try:
            return parse_bytes(text)
        except ValueError as err:
            raise ModelError("NEURODYN_MAX_MEMORY", None, str(err)) from None
    return int(FRACTION * physical_memory())


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def present_cores(n: int) -> None:
    """Let JAX's CPU backend present ``n`` devices, so that stacked seeds spread over them
    (:func:`~neurodyn.learning.train.spread`) run on ``n`` cores at once. It must come
    before JAX's first computation: afterwards, or where the user already chose
    (``jax_num_cpu_devices``, XLA_FLAGS' ``xla_force_host_platform_device_count``), it
    changes nothing. GPUs are unaffected: there the devices are the GPUs."""
    import jax

    if n <= 1 or jax.config.jax_num_cpu_devices != -1 or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    try:
        jax.config.update("jax_num_cpu_devices", int(n))
    except RuntimeError:  # the backend has started: it keeps its devices
        pass


def human(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if nbytes < 1024 or unit == "PiB":
            return f"{nbytes:.3g} {unit}"
        nbytes /= 1024
    return f"{nbytes:.3g} PiB"


def check_memory(file, parts: dict[str, tuple[float, str]], what: str) -> None:
    """Raise an input error naming the key of the largest part if the parts' sum exceeds
    :func:`memory_limit`; ``parts`` maps the file key that drives each part to its bytes
    and what it is."""
    total = sum(b for b, _ in parts.values())
    limit = memory_limit()
    if not math.isfinite(total) or total > limit:
        key = max(parts, key=lambda k: parts[k][0])
        nbytes, desc = parts[key]
        raise ModelError(
            file, key,
            f"{what} would need about {human(total)} of memory ({human(nbytes)} for {desc}), more than the limit of "
            f"{human(limit)}; use smaller values, or raise the limit with --max-memory (NEURODYN_MAX_MEMORY)",
        )


#: copies of the saved trajectory: the solver's output and its numpy copy
TRAJECTORY_COPIES = 2
#: copies of the batch's state the ODE solver holds: Tsit5's seven stages, the state, its
#: error estimate and a step's temporaries (with the trajectory, about 230 MB on
#: dynamic_inversion [1000, 10] with 1000 samples)
SOLVER_COPIES = 12
#: copies of a dense ``n x n`` matrix that one linear solve or eigenproblem holds at once
#: (the matrix, its LU or Hessenberg copy, LAPACK's workspace and the compiled program's
#: temporaries)
SOLVE_COPIES = 3
#: copies of the ``N x N`` block system matrix that ``stability`` holds at its peak: the
#: matrix (jax and numpy), the dense eigenproblem, the analytic and autodiff Jacobians at
#: the fixed point and their difference (peak RSS on dynamic_inversion [1000, 10]: see docs)
STABILITY_COPIES = 8
#: copies of the matrix whose smoothed spectral abscissa is found: the shifted matrix,
#: two Lyapunov solves (Schur form, Schur vectors, solution), ``Q P^T`` and the gradient
SSA_COPIES = 10


@dataclass(frozen=True)
class Linearisation:
    """What a circuit's linear algebra costs, from its shapes alone (no array built):
    ``n_state`` per sample, ``blocks`` the reduced blocks Newton solves one after the other
    as ``(size, loop width or 0, shared)`` (one block of the reduced size where the kind
    declares none), ``dense_eigenvalues`` whether the fixed point's eigenvalues come
    from the dense Jacobian, and ``ssa_sizes`` the sizes of the matrices whose smoothed
    spectral abscissa ``stability`` computes."""

    n_state: int
    blocks: tuple[tuple[int, int, bool], ...]
    dense_eigenvalues: bool
    ssa_sizes: tuple[int, ...]


def _samples(n: int) -> str:
    return "1 sample" if n == 1 else f"{n} samples"


def _sizes_or_batch(batch: int, size: int, batch_key: str | None) -> str:
    """The key to name for ``batch x size^2`` bytes: the batch where it is the larger factor."""
    return batch_key if batch_key and batch > size else "[circuit].sizes"


def model_memory(lin: Linearisation, batch: int, n_save: int, batch_key: str | None = None) -> dict[str, tuple[float, str]]:
    """The parts of a simulation's memory: the saved trajectory (``n_save x batch x
    state``), Newton's Jacobians (every sample's, for the largest reduced block, with the
    loop products' operator of :func:`~neurodyn.core.circuit.loop_product`) and the
    verification's eigenproblems, :data:`~neurodyn.core.equilibrium.VERIFY_CHUNK` samples
    at a time (each a dense ``state^2`` Jacobian for a kind without structured
    eigenvalues, else the size of its largest block)."""
    from ..core.circuit import LOOP_PRODUCT_MAX_ENTRIES
    from ..core.equilibrium import VERIFY_CHUNK

    n = lin.n_state
    parts = {"[simulation].saveat": (8.0 * TRAJECTORY_COPIES * n_save * batch * n, f"the trajectory, {n_save} points x {_samples(batch)} x {n} state variables")}
    _add(parts, _sizes_or_batch(batch, n, batch_key), 8.0 * SOLVER_COPIES * batch * n, f"the solver's stages, {_samples(batch)} x {n} state variables")
    newton = 0.0
    for m, k, shared in lin.blocks:
        operator = 8.0 * k * m * m if 0 < k * m * m <= LOOP_PRODUCT_MAX_ENTRIES else 0.0
        newton = max(newton, 8.0 * SOLVE_COPIES * (1 if shared else batch) * m * m + operator)
    m = max(m for m, _, _ in lin.blocks)
    _add(parts, _sizes_or_batch(batch, m, batch_key), newton, f"Newton's Jacobians, {_samples(batch)} x {m}^2")
    chunk = batch if batch < 2 * VERIFY_CHUNK else VERIFY_CHUNK
    e = n if lin.dense_eigenvalues else m  # the size of one sample's eigenproblem
    what = "dense Jacobians" if lin.dense_eigenvalues else "eigenproblems"
    _add(parts, _sizes_or_batch(batch, e, batch_key), 8.0 * SOLVE_COPIES * chunk * e * e, f"the fixed point's {what}, {_samples(chunk)} x {e}^2 at a time")
    return parts


def stability_memory(lin: Linearisation) -> dict[str, tuple[float, str]]:
    """The parts of ``stability``'s memory beyond the fixed point's
    (:func:`model_memory`): the dense ``state^2`` block system matrix (or Jacobian at the
    fixed point) with its eigenproblem, and the smoothed spectral abscissa's matrices."""
    n = lin.n_state
    ssa = max(lin.ssa_sizes)
    return {"[circuit].sizes": (
        8.0 * (STABILITY_COPIES * n * n + SSA_COPIES * ssa * ssa),
        f"the dense {n} x {n} block system matrix, its eigenvalues and the SSA's {ssa} x {ssa} matrices",
    )}


def ssa_memory(lin: Linearisation) -> dict[str, tuple[float, str]]:
    """The SSA optimisation of a ``stabilize`` table: the smoothed spectral abscissa's
    matrices (the reduced pieces, or the dense system matrix)."""
    ssa = max(lin.ssa_sizes)
    return {"[circuit].sizes": (8.0 * SSA_COPIES * ssa * ssa, f"the SSA optimisation's {ssa} x {ssa} matrices")}


def merge(*groups: dict[str, tuple[float, str]]) -> dict[str, tuple[float, str]]:
    """Parts of several estimates as one (bytes of the same key added)."""
    parts: dict[str, tuple[float, str]] = {}
    for group in groups:
        for key, (nbytes, desc) in group.items():
            _add(parts, key, nbytes, desc)
    return parts


def _add(parts: dict, key: str, nbytes: float, desc: str) -> None:
    before, text = parts.get(key, (0.0, ""))
    parts[key] = (before + nbytes, f"{text} and {desc}" if text else desc)


def training_memory(sizes: list[int], n_rules: int, n_data: int, batch_size: int, eval_every: int, n_eval: int, itemsize: int) -> dict[str, float]:
    """The parts of a training's memory: the weights of every rule (network, feedback,
    gradients, checkpoint and optimiser copies: about 8 per weight), the data set, one
    evaluation interval's mini-batches, and the activations of the largest evaluation."""
    params = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    width = sizes[0] + sizes[-1]
    return {
        "[network].sizes": (8.0 * itemsize * params * n_rules, f"{n_rules} rules' copies of {params} weights"),
        "[data].n_train": (2.0 * itemsize * n_data * width, f"the data, {n_data} samples x {width} inputs and outputs ([network].sizes)"),
        "[training].eval_every": (1.0 * itemsize * eval_every * batch_size * width, f"{eval_every} mini-batches of {batch_size} per evaluation interval"),
        "[training].eval_samples": (4.0 * itemsize * n_eval * sum(sizes), f"the activations of {n_eval} evaluation samples"),
    }
