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


def model_memory(n_state: int, batch: int, n_save: int, dense_jacobian: bool) -> dict[str, tuple[float, str]]:
    """The parts of a simulation's memory: the saved trajectory (``n_save x batch x
    state``) and, for a circuit whose eigenvalues come from its dense Jacobian, the
    per-sample Jacobians (``batch x state^2``, three copies while the eigenvalues are found)."""
    parts = {"[simulation].saveat": (8.0 * n_save * batch * n_state, f"the trajectory, {n_save} points x {batch} samples x {n_state} state variables")}
    if dense_jacobian:
        parts["[circuit].sizes"] = (24.0 * batch * n_state**2, f"the fixed point's dense Jacobians, {batch} samples x {n_state}^2")
    return parts


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
