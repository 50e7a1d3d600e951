"""Array specifications of model files: seeded initialisers, literals and ``.npy`` files.

Each ``[arrays]`` entry has exactly one source: ``init`` (``uniform``, ``normal``,
``orthogonal``, ``zeros``, ``neg_transpose``), ``file`` (a ``.npy``, loaded with
``allow_pickle=False``) or ``values`` (a literal). Random arrays without their own
``seed`` derive one from the model's master seed and the array's name, so adding an
array never changes the others.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.circuit import ArraySpec
from ..core.stabilize import EPS_MAX, EPS_MIN
from .errors import ModelError, check_keys, suggest

INITS = {
    "uniform": {"low": -1.0, "high": 1.0},
    "normal": {"mean": 0.0, "std": 1.0},
    "orthogonal": {"gain": 1.0},
    "zeros": {},
    "neg_transpose": {"of": None, "scale": 1.0},
}
COMMON_KEYS = ("seed", "batch", "stabilize")
#: numpy's normal draws stay within about 9.3 standard deviations of the mean (the
#: ziggurat's tail from a 53-bit uniform): ``|mean| + 10 std`` must be a finite float64
NORMAL_REACH = 10.0
SOURCES = ("init", "file", "values")


STABILIZE_KEYS = {"margin": 0.1, "epsilon": 1e-3, "lr": 1.0, "max_iter": 500}


@dataclass
class ResolvedArray:
    """A loaded array and where it came from (for ``neurodyn check``); ``stabilize`` holds
    the settings of an SSA optimisation requested for it, if any."""

    value: np.ndarray
    source: str
    seed: int | None
    stabilize: dict | None = None


def derived_seed(master: int, name: str) -> int:
    """A per-array seed from the master seed and the array's name."""
    return int(np.random.SeedSequence([master, zlib.crc32(name.encode())]).generate_state(1)[0])


def resolve_arrays(file: Path, entries: dict[str, Any], specs: dict[str, ArraySpec], master_seed: int) -> dict[str, ResolvedArray]:
    """Build every array a kind needs from the ``[arrays]`` table, validated against ``specs``."""
    check_keys(file, "[arrays]", entries, specs)
    for name, spec in specs.items():
        if name not in entries and spec.required:
            raise ModelError(file, f"[arrays].{name}", f"missing array of shape {_shape_text(spec)}; add e.g. {name} = {{ init = \"normal\", std = 0.1 }}")
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            raise ModelError(file, f"[arrays].{name}", "must be a table, e.g. { init = \"uniform\", low = -1.0, high = 1.0 }")
    out: dict[str, ResolvedArray] = {}
    pending = [n for n in specs if n in entries]
    # neg_transpose refers to another array: resolve the others first
    pending.sort(key=lambda n: entries[n].get("init") == "neg_transpose")
    for name in pending:
        out[name] = _resolve_one(file, name, entries[name], specs[name], master_seed, out, specs)
    for name, spec in specs.items():
        if name not in out:
            out[name] = ResolvedArray(np.zeros(spec.shape), "zeros (default)", None)
    return out


def _shape_text(spec: ArraySpec) -> str:
    shape = tuple(spec.shape)
    return f"{shape} or (batch, *{shape})" if spec.role == "input" else str(shape)


def _number(file, key, value, *, positive=False, integer=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if integer:
        ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or (positive and value <= 0):
        kind = "a positive " if positive else "a finite "
        raise ModelError(file, key, f"must be {kind}{'integer' if integer else 'number'}, got {value!r}")
    return value


def _resolve_one(file, name, entry, spec: ArraySpec, master_seed, done, specs) -> ResolvedArray:
    resolved = _resolve_source(file, name, entry, spec, master_seed, done, specs)
    resolved.stabilize = _stabilize_settings(file, f"[arrays].{name}", entry, spec)
    return resolved


def _stabilize_settings(file, key, entry, spec: ArraySpec) -> dict | None:
    """``stabilize = { margin, epsilon, lr, max_iter }`` (all optional) on a weight array."""
    if "stabilize" not in entry:
        return None
    table = entry["stabilize"]
    if spec.role != "param":
        raise ModelError(file, f"{key}.stabilize", "only weight arrays can be stabilised, not inputs")
    if table is True:
        table = {}
    if not isinstance(table, dict):
        raise ModelError(file, f"{key}.stabilize", "must be a table, e.g. stabilize = { margin = 0.1 }")
    check_keys(file, f"{key}.stabilize", table, STABILIZE_KEYS)
    out = dict(STABILIZE_KEYS)
    for k, v in table.items():
        out[k] = _number(file, f"{key}.stabilize.{k}", v, positive=k != "margin", integer=k == "max_iter")
        if k == "margin" and v < 0:
            raise ModelError(file, f"{key}.stabilize.margin", f"must be >= 0, got {v}")
    check_epsilon(file, f"{key}.stabilize.epsilon", out["epsilon"])
    return out


def check_epsilon(file, key: str, eps: float) -> None:
    """The SSA smoothing parameter must lie in ``[EPS_MIN, EPS_MAX]`` (core.stabilize)."""
    if not EPS_MIN <= eps <= EPS_MAX:
        raise ModelError(file, key, f"must be from {EPS_MIN:g} to {EPS_MAX:g} (the SSA smoothing range), got {eps:g}; e.g. 1e-3")


def _resolve_source(file, name, entry, spec: ArraySpec, master_seed, done, specs) -> ResolvedArray:
    key = f"[arrays].{name}"
    sources = [s for s in SOURCES if s in entry]
    if len(sources) != 1:
        raise ModelError(file, key, "give exactly one of init = \"...\", file = \"...\" or values = [...]")
    if "batch" in entry and spec.role != "input":
        raise ModelError(file, f"{key}.batch", f"only inputs take a batch; '{name}' is a {spec.role} array")
    batch = _number(file, f"{key}.batch", entry["batch"], positive=True, integer=True) if "batch" in entry else None
    source = sources[0]
    if source == "init":
        init = entry["init"]
        if not isinstance(init, str) or init not in INITS:
            raise ModelError(file, f"{key}.init", f"unknown initialiser '{init}'{suggest(str(init), INITS)}")
        check_keys(file, key, entry, ("init", *INITS[init], *COMMON_KEYS))
        seed = entry.get("seed")
        if seed is not None and _number(file, f"{key}.seed", seed, integer=True) < 0:
            raise ModelError(file, f"{key}.seed", f"must be a non-negative integer, got {seed}")
        shape = ((batch,) if batch else ()) + tuple(spec.shape)
        if init == "neg_transpose":
            value = _neg_transpose(file, key, entry, spec, done, specs)
            return ResolvedArray(value, f"neg_transpose of {entry['of']} (scale {entry.get('scale', 1.0)})", None)
        seed = derived_seed(master_seed, name) if seed is None else int(seed)
        rng = np.random.default_rng(seed)
        params = {k: _number(file, f"{key}.{k}", entry.get(k, d)) for k, d in INITS[init].items()}
        with np.errstate(over="ignore", invalid="ignore"):
            value = _draw(file, key, init, params, shape, rng)
        _finite_draw(file, key, init, params, value)
        text = init + "".join(f", {k}={v:g}" for k, v in params.items())
        return ResolvedArray(value, text, None if init == "zeros" else seed)
    check_keys(file, key, entry, (source, "batch"))
    value = _load_file(file, key, entry["file"]) if source == "file" else _literal(file, key, entry["values"])
    _check_shape(file, key, name, value, spec, batch)
    return ResolvedArray(value, f"file {entry['file']}" if source == "file" else "values", None)


def _draw(file, key, init, params, shape, rng):
    if init == "uniform":
        if not params["low"] < params["high"]:
            raise ModelError(file, f"{key}.low", f"low ({params['low']}) must be below high ({params['high']})")
        if not math.isfinite(params["high"] - params["low"]):
            _overflow(file, key, init, params)
        return rng.uniform(params["low"], params["high"], size=shape)
    if init == "normal":
        if params["std"] < 0:
            raise ModelError(file, f"{key}.std", f"must be >= 0, got {params['std']}")
        if not math.isfinite(abs(params["mean"]) + NORMAL_REACH * params["std"]):
            _overflow(file, key, init, params)
        return rng.normal(params["mean"], abs(params["std"]), size=shape)  # abs: -0.0 is a valid zero
    if init == "zeros":
        return np.zeros(shape)
    if len(shape) != 2:
        raise ModelError(file, f"{key}.init", "orthogonal needs a matrix; use normal or uniform for vectors")
    m, n = shape
    q, r = np.linalg.qr(rng.normal(size=(max(m, n), min(m, n))))
    q = q * np.sign(np.diag(r))  # uniform (Haar) distribution
    return params["gain"] * (q if m >= n else q.T)


def _overflow(file, key, init, params):
    """An initialiser whose draws leave float64: named by its largest parameter."""
    name = max(params, key=lambda k: abs(params[k]))
    shown = ", ".join(f"{k} = {v:g}" for k, v in params.items())
    raise ModelError(file, f"{key}.{name}", f"{init} with {shown} gives values beyond float64's range (about 1.8e308); give {name} a smaller magnitude")


def _finite_draw(file, key, init, params, value):
    if not np.all(np.isfinite(value)):
        _overflow(file, key, init, params)


def _neg_transpose(file, key, entry, spec, done, specs):
    """``-scale * M^T`` where ``M`` is the named matrix, or for a list ``[W1, W2, ...]``
    the product ``... W2 W1`` (so ``of = ["W1", "W2"]`` gives ``-W1^T W2^T``)."""
    of = entry.get("of")
    names = [of] if isinstance(of, str) else of
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ModelError(file, f"{key}.of", "name the forward matrix, e.g. of = \"W1\", or a list, e.g. of = [\"W1\", \"W2\"]")
    for n in names:
        if n not in specs:
            raise ModelError(file, f"{key}.of", f"unknown array '{n}'{suggest(n, specs)}")
        if n not in done:
            raise ModelError(file, f"{key}.of", f"'{n}' must be given in [arrays] and must not itself be a neg_transpose")
    scale = _number(file, f"{key}.scale", entry.get("scale", 1.0))
    product = done[names[0]].value
    with np.errstate(over="ignore", invalid="ignore"):
        for n in names[1:]:
            if done[n].value.ndim != 2 or done[n].value.shape[1] != product.shape[0]:
                raise ModelError(file, f"{key}.of", f"cannot multiply {n} {done[n].value.shape} after {product.shape}")
            product = done[n].value @ product
        value = -scale * product.T
    if not np.all(np.isfinite(value)):
        raise ModelError(file, f"{key}.scale", f"-scale * ({' '.join(reversed(names))})^T with scale = {scale:g} has values beyond float64's range; use a smaller scale or smaller arrays")
    if value.shape != tuple(spec.shape):
        raise ModelError(file, f"{key}.of", f"-({' '.join(reversed(names))})^T has shape {value.shape}, expected {tuple(spec.shape)}")
    return value


def _load_file(file, key, rel):
    if not isinstance(rel, str):
        raise ModelError(file, f"{key}.file", "must be a path string relative to the model file")
    path = (Path(file).parent / rel).resolve()
    if path.suffix != ".npy":
        raise ModelError(file, f"{key}.file", f"'{rel}' is not a .npy file; save the array with numpy.save")
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "not found"
        raise ModelError(file, f"{key}.file", f"file '{rel}' {what} (looked at {path})")
    _check_npy_header(file, key, rel, path)
    try:
        value = np.load(path, allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err):
            raise ModelError(file, f"{key}.file", f"'{rel}' holds pickled/object data, which is not allowed; save a numeric array") from None
        raise ModelError(file, f"{key}.file", f"'{rel}' is not a valid .npy file ({err}); save it with numpy.save") from None
    except OSError as err:
        raise ModelError(file, f"{key}.file", f"cannot read '{rel}' as .npy: {err}") from None
    if not isinstance(value, np.ndarray) or not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
        raise ModelError(file, f"{key}.file", f"'{rel}' has dtype {getattr(value, 'dtype', type(value))}; save a numeric (float or int) array")
    return _finite(file, key, value.astype(np.float64))


def _check_npy_header(file, key, rel, path: Path) -> None:
    """Before loading: the header names a plain numeric dtype and a shape whose bytes the
    file actually holds (a header may claim any size)."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as fh:
            version = fmt.read_magic(fh)
            read = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
            if read is None:
                raise ValueError(f"unsupported .npy version {version}")
            shape, _, dtype = read(fh)
            offset = fh.tell()
    except (ValueError, OSError, SyntaxError) as err:
        raise ModelError(file, f"{key}.file", f"'{rel}' is not a valid .npy file ({err}); save it with numpy.save") from None
    if dtype.hasobject:
        raise ModelError(file, f"{key}.file", f"'{rel}' holds pickled/object data, which is not allowed; save a numeric array")
    if 0 in shape:
        raise ModelError(file, f"{key}.file", f"'{rel}' has shape {tuple(shape)}, with an empty axis (no samples or no entries); save an array with at least one entry along every axis")
    claimed = math.prod(shape) * dtype.itemsize
    held = path.stat().st_size - offset
    if claimed != held:
        raise ModelError(file, f"{key}.file", f"'{rel}' is damaged: its header says shape {tuple(shape)} ({claimed} bytes) but it holds {held} bytes; save it again with numpy.save")


def _literal(file, key, values):
    if _holds_bool(values):
        raise ModelError(file, f"{key}.values", "holds a boolean (true/false); write numbers, e.g. 1.0 and 0.0")
    try:
        value = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ModelError(file, f"{key}.values", "must be a (nested) list of numbers of equal lengths") from None
    if value.size == 0:
        raise ModelError(file, f"{key}.values", f"is empty (shape {value.shape}); give at least one number along every axis")
    return _finite(file, key, value)


def _holds_bool(values) -> bool:
    """Whether a (nested) list holds a boolean anywhere (without recursion)."""
    stack = [values]
    while stack:
        v = stack.pop()
        if isinstance(v, bool):
            return True
        if isinstance(v, list):
            stack.extend(v)
    return False


def _finite(file, key, value):
    if not np.all(np.isfinite(value)):
        raise ModelError(file, key, "contains NaN or infinite values; every entry must be finite")
    return value


def _check_shape(file, key, name, value, spec, batch):
    shape = tuple(spec.shape)
    ok = value.shape == shape or (spec.role == "input" and value.ndim == len(shape) + 1 and value.shape[1:] == shape)
    if not ok:
        raise ModelError(file, key, f"has shape {value.shape}, expected {_shape_text(spec)}")
    if batch is not None and (value.ndim == len(shape) or value.shape[0] != batch):
        raise ModelError(file, f"{key}.batch", f"batch = {batch} disagrees with the data's shape {value.shape}")
