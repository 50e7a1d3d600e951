"""Model files (TOML): parse, validate and build a circuit with its inputs.

The format is documented in the README ("Model files"); every problem becomes a :class:`ModelError` naming the
file and the key. Model files never execute code.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .. import circuits as _circuits  # noqa: F401  (registers the built-in kinds that model files name)
from ..core.circuit import Circuit, get_kind
from ..core.plasticity import Plastic, rule_shapes
from ..core.schedules import from_spec, horizon
from ..core.simulate import FIXED_STEP_SOLVERS, SOLVERS
from .arrays import ResolvedArray, resolve_arrays
from .errors import ModelError, NumericalError, check_keys, read_toml, suggest
from .overrides import apply
from .resources import Linearisation, check_memory, merge, model_memory, ssa_memory, stability_memory

TOP_KEYS = ("name", "description", "seed", "circuit", "arrays", "simulation", "plasticity", "sweep")
PLASTICITY_KEYS = ("arrays", "tau_w", "gate")
PLASTIC_ARRAY_KEYS = ("tau_w", "gate")
DEFAULT_MODEL = "dynamic_inversion.toml"
#: bound on counts read from a file (save points, steps, layer sizes): far beyond any real
#: run, well inside int64
MAX_COUNT = 10**9
#: seeds are non-negative and fit in int64
MAX_SEED = 2**63 - 1


class SimulationSettings(BaseModel):
    """The ``[simulation]`` table (cross-field rules are checked in :func:`load_model`)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    t0: float = 0.0
    t1: float = 200.0
    solver: str = "tsit5"
    dt0: float | None = Field(None, gt=0)
    rtol: float = Field(1e-6, gt=0)
    atol: float = Field(1e-9, gt=0)
    steady_state: bool = True
    saveat: int | list[float] = 201
    max_steps: int = Field(100_000, gt=0, le=MAX_COUNT)

    @field_validator("solver")
    @classmethod
    def _solver(cls, v):
        if v not in SOLVERS:
            raise ValueError(f"unknown solver '{v}'{suggest(v, SOLVERS)}")
        return v

    @field_validator("saveat")
    @classmethod
    def _saveat(cls, v):
        if isinstance(v, int) and not 2 <= v <= MAX_COUNT:
            raise ValueError(f"a number of save points must be between 2 and {MAX_COUNT}")
        if isinstance(v, list) and len(v) > MAX_COUNT:
            raise ValueError(f"at most {MAX_COUNT} save times")
        if isinstance(v, list) and (not v or any(b <= a for a, b in zip(v, v[1:]))):
            raise ValueError("save times must be a non-empty, strictly increasing list")
        return v

    def kwargs(self) -> dict[str, Any]:
        return self.model_dump()


@dataclass
class Model:
    """A validated model file: the circuit's kind, options and arrays, and the settings."""

    path: Path
    name: str
    description: str
    seed: int
    kind: str
    sizes: list[int]
    options: BaseModel
    arrays: dict[str, ResolvedArray]
    simulation: SimulationSettings
    cls: type[Circuit] = field(repr=False)
    circuit: Circuit = field(repr=False)
    stabilization: dict[str, dict] = field(default_factory=dict)
    #: ``{array name: {"tau_w": float, "gate": spec or None}}`` from ``[plasticity]``;
    #: empty when nothing is plastic. Then ``circuit`` is a ``core.plasticity.Plastic``.
    plasticity: dict[str, dict] = field(default_factory=dict)
    #: the file's table as loaded, command-line overrides included
    table: dict = field(default_factory=dict, repr=False)

    @property
    def neural_circuit(self) -> Circuit:
        """The kind's circuit itself (inside the ``Plastic`` wrapper of a plastic model)."""
        return self.circuit.circuit if isinstance(self.circuit, Plastic) else self.circuit

    def inputs(self, dtype=np.float64) -> dict[str, np.ndarray]:
        specs = self.cls.array_specs(self.sizes, self.options)
        return {k: self.arrays[k].value.astype(dtype) for k, s in specs.items() if s.role == "input"}

    @property
    def batch(self) -> int | None:
        return input_batch(self.arrays, self.cls.array_specs(self.sizes, self.options))


def input_batch(arrays: dict[str, ResolvedArray], specs) -> int | None:
    """The leading batch size of the batched inputs (they share one), or None."""
    for k, spec in specs.items():
        v = arrays[k].value
        if spec.role == "input" and v.ndim == len(spec.shape) + 1:
            return v.shape[0]
    return None


def default_model_path() -> Path:
    """The packaged default model (``models/dynamic_inversion.toml``)."""
    return Path(str(resources.files("neurodyn") / "models" / DEFAULT_MODEL))


def _pydantic_error(file, section: str, err: ValidationError) -> ModelError:
    first = err.errors()[0]
    # the first element names the field; later ones are pydantic's type branches
    key = f"{section}.{first['loc'][0]}" if first["loc"] else section
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    return ModelError(file, key, msg)


def _check_times(file, sim: SimulationSettings) -> None:
    if not sim.t1 > sim.t0:
        raise ModelError(file, "[simulation].t1", f"t1 ({sim.t1}) must be greater than t0 ({sim.t0})")
    if isinstance(sim.saveat, list) and (sim.saveat[0] < sim.t0 or sim.saveat[-1] > sim.t1):
        raise ModelError(file, "[simulation].saveat", f"save times must lie within [t0, t1] = [{sim.t0}, {sim.t1}]")
    if sim.solver == "euler" and sim.dt0 is None:
        raise ModelError(file, "[simulation].dt0", "the fixed-step solver 'euler' needs dt0, e.g. dt0 = 0.1")
    if sim.solver in FIXED_STEP_SOLVERS and (sim.t1 - sim.t0) / sim.dt0 > sim.max_steps:
        n = (sim.t1 - sim.t0) / sim.dt0
        raise ModelError(file, "[simulation].dt0", f"{n:.3g} fixed steps of {sim.dt0:g} from t0 to t1 exceed max_steps = {sim.max_steps}; use a larger dt0 or raise max_steps")


def _check_batches(file, arrays, specs) -> None:
    """Every batched input must carry the same batch size."""
    batches = {k: arrays[k].value.shape[0] for k, s in specs.items() if s.role == "input" and arrays[k].value.ndim == len(s.shape) + 1}
    if len(set(batches.values())) > 1:
        listing = ", ".join(f"{k} {b}" for k, b in batches.items())
        name = next(iter(batches))
        raise ModelError(file, f"[arrays].{name}", f"inputs carry different batch sizes ({listing}); give every batched input the same batch")


def _stabilize_arrays(file, circuit, arrays) -> dict[str, dict]:
    """Run the SSA optimisation requested by ``stabilize`` keys, in array order; the
    optimised values replace the arrays (and the circuit's fields, via ``where``)."""
    from ..core.stabilize import stabilize

    report = {}
    for name, arr in arrays.items():
        if arr.stabilize is None:
            continue
        s = arr.stabilize
        try:
            where = circuit.where(name)
            result = stabilize(circuit, where, margin=s["margin"], eps=s["epsilon"], lr=s["lr"], max_iter=s["max_iter"])
        except (KeyError, ValueError) as err:
            raise ModelError(file, f"[arrays].{name}.stabilize", str(err)) from None
        if not result.success:
            raise NumericalError(f"{file}: [arrays].{name}.stabilize: could not stabilise: {result.message}; try a larger max_iter or lr, or a smaller margin")
        circuit = result.circuit
        arr.value = np.asarray(where(circuit))
        arr.source += f", SSA-stabilised ({result.iterations} iterations, abscissa {result.abscissa_before:.3g} -> {result.abscissa_after:.3g})"
        report[name] = {
            "success": True,
            "iterations": result.iterations,
            "target": result.target,
            "abscissa_before": result.abscissa_before,
            "abscissa_after": result.abscissa_after,
            "seconds": result.seconds,
        }
    return report


def _number(file, key: str, value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModelError(file, key, f"must be a number, got {value!r}; {what}")
    return float(value)


def _gate(file, key: str, spec, t_max: float):
    try:
        gate = from_spec(spec, t_max=t_max)
    except ValueError as err:
        raise ModelError(file, key, f"{err}; e.g. gate = {{ type = \"phases\", durations = [50, 50], values = [0, 1], cycles = 3 }}") from None
    import jax
    import jax.numpy as jnp

    if jax.eval_shape(gate, jnp.zeros(())).shape != ():
        raise ModelError(file, key, "a gate must be one number per time (not a per-layer wave)")
    return gate


def _plasticity(file, table, circuit: Circuit, kind: str, specs, t_max: float) -> tuple[Circuit, dict[str, dict]]:
    """Validate ``[plasticity]`` and wrap ``circuit`` in :class:`Plastic`."""
    if not isinstance(table, dict):
        raise ModelError(file, "[plasticity]", 'must be a table, e.g. [plasticity] arrays = ["W1"] tau_w = 100.0')
    names = table.get("arrays")
    if names is None:
        raise ModelError(file, "[plasticity].arrays", 'missing; list the arrays that learn, e.g. arrays = ["W1"]')
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ModelError(file, "[plasticity].arrays", f'must be a non-empty list of array names, e.g. ["W1"], got {names!r}')
    if len(set(names)) != len(names):
        raise ModelError(file, "[plasticity].arrays", f"lists a name twice: {names}; list each array once")
    for key, value in table.items():
        if key in PLASTICITY_KEYS:
            continue
        if key in names and not isinstance(value, dict):
            raise ModelError(file, f"[plasticity].{key}", f"must be a table of this array's own settings, e.g. [plasticity.{key}] tau_w = 50.0")
        if isinstance(value, dict):
            if key not in names:
                raise ModelError(file, f"[plasticity.{key}]", f"'{key}' is not in [plasticity].arrays; add it there or remove this table")
            check_keys(file, f"[plasticity.{key}]", value, PLASTIC_ARRAY_KEYS)
        else:
            check_keys(file, "[plasticity]", [key], PLASTICITY_KEYS + tuple(names))
    rules = rule_shapes(circuit)
    if not rules:
        raise ModelError(file, "[plasticity]", f"kind {kind} has no local plasticity rules, so no array can learn; remove [plasticity]")
    available = f"arrays with local rules: {', '.join(rules)}"
    for name in names:
        if name in specs and specs[name].role == "input":
            raise ModelError(file, "[plasticity].arrays", f"'{name}' is an input, not a weight; {available}")
        try:
            circuit.where(name)
        except KeyError as err:
            raise ModelError(file, "[plasticity].arrays", f"{err.args[0]}; {available}") from None
        if name not in rules:
            raise ModelError(file, "[plasticity].arrays", f"kind {kind} has no local rule for '{name}'; {available}")
    settings: dict[str, dict] = {}
    gates = {}
    for name in names:
        own = table.get(name, {})
        tau_key = f"[plasticity.{name}].tau_w" if "tau_w" in own else "[plasticity].tau_w"
        tau = own.get("tau_w", table.get("tau_w"))
        if tau is None:
            raise ModelError(file, "[plasticity].tau_w", f"missing for '{name}'; give the weights' time constant, e.g. tau_w = 100.0 (here or in [plasticity.{name}])")
        tau = _number(file, tau_key, tau, "give the weights' time constant, e.g. tau_w = 100.0")
        if tau <= 0:
            raise ModelError(file, tau_key, f"must be positive, got {tau}; e.g. tau_w = 100.0")
        gate_key = f"[plasticity.{name}].gate" if "gate" in own else "[plasticity].gate"
        spec = own.get("gate", table.get("gate"))
        gates[name] = None if spec is None else _gate(file, gate_key, spec, t_max)
        settings[name] = {"tau_w": tau, "gate": spec}
    try:
        plastic = Plastic(circuit, names, tau_w={n: s["tau_w"] for n, s in settings.items()}, gate=gates)
    except ValueError as err:
        raise ModelError(file, "[plasticity]", str(err)) from None
    return plastic, settings


def portable(table: dict, folder: Path) -> dict:
    """A model table (a copy) whose array files are found from any folder: ``file``
    entries made absolute from ``folder``, the swept or overridden file's own. A sweep's
    trial files and the resolved file of ``--set`` live in output folders, not beside it."""
    table = copy.deepcopy(table)
    for entry in (table.get("arrays") or {}).values():
        if isinstance(entry, dict) and isinstance(entry.get("file"), str):
            entry["file"] = str((folder / entry["file"]).resolve())
    return table


def _array_bytes(table: dict, specs) -> dict[str, tuple[float, str]]:
    """Bytes of the arrays the file asks to build, keyed by what drives them (an input's
    batch, or the sizes), before any is allocated."""
    parts: dict[str, tuple[float, str]] = {}
    for name, spec in specs.items():
        entry = table.get(name)
        batch = entry.get("batch", 1) if isinstance(entry, dict) else 1
        batch = batch if isinstance(batch, int) and not isinstance(batch, bool) and batch > 0 else 1
        key = f"[arrays].{name}.batch" if batch > 1 else "[circuit].sizes"
        before = parts.get(key, (0.0, ""))[0]
        parts[key] = (before + 8.0 * batch * math.prod(spec.shape), f"array {name}" if batch > 1 else "the arrays of these sizes")
    return parts


def linearisation(circuit: Circuit) -> Linearisation:
    """The shapes behind the memory estimates (:class:`~.resources.Linearisation`), from
    the circuit's structure and traced shapes: nothing is allocated."""
    import equinox as eqx
    import jax

    n = circuit.state_size
    blocks = circuit.reduced_blocks()
    if blocks is None:
        state = {k: jax.ShapeDtypeStruct(s, np.result_type(float)) for k, s in circuit.state_shapes().items()}
        z = math.prod(eqx.filter_eval_shape(lambda c, y: c.reduce(y), circuit, state).shape)
        rows = ((z, 0, False),)
    else:
        loop = lambda b: b.jacobian.left.shape[1] if b.jacobian is not None and b.jacobian.gain is not None else 0  # noqa: E731
        rows = tuple((b.stop - b.start, loop(b), b.shared_jacobian) for b in blocks)
    pieces = eqx.filter_eval_shape(lambda c: c.system_blocks(), circuit)
    # a two-block piece's SSA runs on the dense n + m matrix, or reduced to at most 3m
    ssa = (n,) if pieces is None else tuple(a + b if 2 * b >= a else 3 * b for a, b in (p[0].shape for p in pieces))
    return Linearisation(n, rows, type(circuit).eigenvalues is Circuit.eigenvalues, ssa)


def _batch_key(arrays, specs) -> str | None:
    """``[arrays].NAME.batch`` of the first batched input, if any."""
    return next((f"[arrays].{k}.batch" for k, s in specs.items() if s.role == "input" and arrays[k].value.ndim == len(s.shape) + 1), None)


def _run_memory(circuit: Circuit, arrays, specs, simulation, plastic: bool, lin: Linearisation | None = None) -> dict[str, tuple[float, str]]:
    """The simulation's trajectory, Newton's and the verification's matrices
    (:func:`~.resources.model_memory`; ``lin``: the circuit's :func:`linearisation`, if the
    caller has it); plastic arrays, when there are any, count as state in the trajectory
    (all parameters, an upper bound)."""
    lin = linearisation(circuit) if lin is None else lin
    batch = input_batch(arrays, specs) or 1
    if plastic:
        extra = sum(math.prod(s.shape) for s in specs.values() if s.role == "param")
        lin = Linearisation(lin.n_state + extra, lin.blocks, lin.dense_eigenvalues, lin.ssa_sizes)
    n_save = simulation.saveat if isinstance(simulation.saveat, int) else len(simulation.saveat)
    parts = model_memory(lin, batch, n_save, _batch_key(arrays, specs))
    if any(a.stabilize is not None for a in arrays.values()):
        parts = merge(parts, ssa_memory(lin))
    return parts


def check_stability_memory(model: Model) -> None:
    """``stability``'s estimate: the simulation's (:func:`_run_memory`) and the dense block
    system matrix with its eigenproblem and SSA (:func:`~.resources.stability_memory`)."""
    specs = model.cls.array_specs(model.sizes, model.options)
    circuit = model.neural_circuit
    lin = linearisation(circuit)
    parts = merge(_run_memory(circuit, model.arrays, specs, model.simulation, False, lin), stability_memory(lin))
    check_memory(model.path, parts, "analysing the stability of this model")


def load_model(path: str | Path | None = None, *, stabilize: bool = True, overrides: dict | None = None) -> Model:
    """Read, validate and build a model file (the packaged default when ``path`` is None).

    Arrays with a ``stabilize`` table are SSA-optimised on the circuit's block system
    matrix before the model is returned (unless ``stabilize=False``); failing to reach the
    target raises :class:`NumericalError`.

    The circuit is built inside ``schedules.horizon([simulation].t1)``: schedules that a
    kind builds with ``from_spec`` in ``from_arrays`` know the simulation's end. With a
    ``[plasticity]`` table the circuit is wrapped in ``core.plasticity.Plastic``.
    ``overrides`` (dotted paths such as ``circuit.leak``, :mod:`.overrides`) are applied to
    the file's table before anything is validated.
    """
    file = Path(path) if path is not None else default_model_path()
    table = read_toml(file, "model")
    if overrides:
        table = apply(table, overrides, file)
    return model_from_table(file, table, stabilize=stabilize)


def is_experiment(table: dict) -> bool:
    """Whether a file's table is an experiment file (``[network]``, ``[training]``,
    ``[rules]``, no ``[circuit]``) rather than a model file."""
    return "circuit" not in table and bool({"network", "training", "rules"} & set(table))


def model_from_table(file: Path, data: dict, *, stabilize: bool = True) -> Model:
    """The model of a TOML table read from ``file`` (:func:`load_model`; errors name
    ``file``, and array files are found relative to it). A ``[sweep]`` table is left to
    :mod:`.sweep`."""
    if is_experiment(data):
        raise ModelError(file, None, "this is an experiment file ([network], [training], [rules]), not a model file: train it with neurodyn train (or sweep it with neurodyn sweep)")
    check_keys(file, "", data, TOP_KEYS)
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise ModelError(file, "seed", f"must be an integer from 0 to 2^63 - 1, got {seed!r}")
    for key in ("name", "description"):
        if not isinstance(data.get(key, ""), str):
            raise ModelError(file, key, "must be a string")

    circuit_table = data.get("circuit")
    if not isinstance(circuit_table, dict):
        raise ModelError(file, "[circuit]", "missing table; add [circuit] with kind and sizes")
    kind = circuit_table.get("kind")
    if kind is None:
        raise ModelError(file, "[circuit].kind", "missing; `neurodyn list` shows the kinds")
    if not isinstance(kind, str):
        raise ModelError(file, "[circuit].kind", "must be a string naming a kind; `neurodyn list` shows them")
    try:
        cls = get_kind(kind)
    except KeyError as err:
        raise ModelError(file, "[circuit].kind", str(err.args[0])) from None
    sizes = circuit_table.get("sizes")
    if not isinstance(sizes, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in sizes):
        raise ModelError(file, "[circuit].sizes", "must be a list of layer sizes, lowest first, e.g. [20, 10]")
    if any(not 0 < s <= MAX_COUNT for s in sizes):
        raise ModelError(file, "[circuit].sizes", f"layer sizes must be positive (at most {MAX_COUNT}), got {sizes}")
    try:
        cls.validate_sizes(sizes)
    except ValueError as err:
        raise ModelError(file, "[circuit].sizes", str(err)) from None
    option_table = {k: v for k, v in circuit_table.items() if k not in ("kind", "sizes")}
    check_keys(file, "[circuit]", option_table, cls.Options.model_fields)
    try:
        options = cls.Options(**option_table)
    except ValidationError as err:
        raise _pydantic_error(file, "[circuit]", err) from None

    sim_table = data.get("simulation", {})
    if not isinstance(sim_table, dict):
        raise ModelError(file, "[simulation]", "must be a table")
    check_keys(file, "[simulation]", sim_table, SimulationSettings.model_fields)
    try:
        simulation = SimulationSettings(**sim_table)
    except ValidationError as err:
        raise _pydantic_error(file, "[simulation]", err) from None

    _check_times(file, simulation)

    arrays_table = data.get("arrays", {})
    if not isinstance(arrays_table, dict):
        raise ModelError(file, "[arrays]", "must be a table")
    try:
        specs = cls.array_specs(sizes, options)
    except ValueError as err:
        raise ModelError(file, "[circuit]", str(err)) from None
    check_memory(file, _array_bytes(arrays_table, specs), "building the arrays")
    arrays = resolve_arrays(file, arrays_table, specs, seed)
    _check_batches(file, arrays, specs)
    try:
        with horizon(simulation.t1):
            circuit = cls.from_arrays(sizes, options, {k: a.value for k, a in arrays.items()})
    except ValueError as err:
        raise ModelError(file, "[circuit]", str(err)) from None
    check_memory(file, _run_memory(circuit, arrays, specs, simulation, plastic="plasticity" in data), "simulating this model")
    stabilization = _stabilize_arrays(file, circuit, arrays) if stabilize else {}
    if stabilization:
        with horizon(simulation.t1):
            circuit = cls.from_arrays(sizes, options, {k: a.value for k, a in arrays.items()})
    plasticity = {}
    if "plasticity" in data:
        circuit, plasticity = _plasticity(file, data["plasticity"], circuit, kind, specs, simulation.t1)
    return Model(
        table=data,
        plasticity=plasticity,
        stabilization=stabilization,
        path=file,
        name=data.get("name", file.stem),
        description=data.get("description", ""),
        seed=seed,
        kind=kind,
        sizes=sizes,
        options=options,
        arrays=arrays,
        simulation=simulation,
        cls=cls,
        circuit=circuit,
    )
