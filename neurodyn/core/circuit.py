"""The ``Circuit`` base class and the registry of circuit kinds.

A circuit is an :class:`equinox.Module` whose fields are its arrays (weights,
parameters) and static options. It describes *one sample*; the engine vmaps it over a
leading batch axis. The engine knows nothing about any particular algorithm: it only
uses the methods below.
"""

import abc
import dataclasses
import inspect
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from equinox import AbstractClassVar

State = dict[str, jax.Array]
Inputs = dict[str, jax.Array]


@dataclass(frozen=True)
class ArraySpec:
    """What a kind expects of one named array in a model file.

    ``role`` is ``"param"`` (held by the circuit) or ``"input"`` (per sample, may carry
    a leading batch axis). ``default`` is ``"zeros"`` for an optional array, else None.
    """

    shape: tuple[int, ...]
    role: str = "param"
    default: str | None = None
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class KindInfo:
    """Self-description of a kind for ``neurodyn list``."""

    kind: str
    summary: str
    options: Mapping[str, str] = field(default_factory=dict)
    arrays: Mapping[str, str] = field(default_factory=dict)
    state: str = ""


#: :func:`loop_product` forms ``left diag(gain) right`` as ``gain @ K`` while ``K`` has at
#: most this many entries (128 MiB in float64), else directly
LOOP_PRODUCT_MAX_ENTRIES = 2**24


def loop_product(left: jax.Array, gain: jax.Array, right: jax.Array) -> jax.Array:
    """``left @ diag(gain) @ right`` (m x m) for one sample, ``left`` m x k and ``right``
    k x m the same for every sample. Formed as ``gain @ K`` with ``K[j] = outer(left[:, j],
    right[j, :])`` (k m^2 entries, built once): under ``vmap`` every sample's product is then
    one matrix product, without a ``left diag(gain)`` per sample."""
    m, k = left.shape
    if k * m * m > LOOP_PRODUCT_MAX_ENTRIES:
        return (left * gain[None, :]) @ right
    return (gain @ (left.T[:, :, None] * right[:, None, :]).reshape(k, m * m)).reshape(m, m)


@dataclass(frozen=True)
class LoopJacobian:
    """The Jacobian of a block's residual in its own unknowns ``u`` (one sample), declared
    as ``left @ diag(gain(z, inputs)) @ right + shift * I``: a loop through ``k`` units
    whose only state dependence is their slopes (``W diag(g'(B u)) B - alpha I`` for a
    dynamic-inversion layer). ``left`` (m x k), ``right`` (k x m) and ``shift`` are the same
    for every sample; ``gain(z, inputs)`` gives the ``k`` slopes from one sample's full
    reduced vector ``z``. The engine then builds every sample's Jacobian with
    :func:`loop_product`, one matrix product for the batch. ``gain = None`` declares a loop
    without slopes (a linear readout): the Jacobian ``left @ right + shift * I`` is then the
    same for every sample and state (:meth:`constant`)."""

    left: Any
    right: Any
    shift: float
    gain: Any = None  # Callable[[z, inputs], jax.Array] | None

    def constant(self) -> jax.Array:
        """``left @ right + shift * I``: the Jacobian of a loop declared without ``gain``."""
        if self.gain is not None:
            raise ValueError("this loop's Jacobian depends on the state (it declares a gain)")
        return self.left @ self.right + self.shift * jnp.eye(self.left.shape[0], dtype=self.left.dtype)


@dataclass(frozen=True)
class ReducedBlock:
    """One block ``z[start:stop]`` of a block-triangular reduced equation (see
    :meth:`Circuit.reduced_blocks`). ``shared_jacobian`` declares that the block's
    residual is affine in its own unknowns with a Jacobian that depends on neither the
    state nor the inputs, so one factorisation serves every sample of a batch;
    ``jacobian`` declares a :class:`LoopJacobian`, whose structure the engine uses to build
    the batch's Jacobians at once instead of differentiating each sample (with
    ``shared_jacobian``, a loop without gain: the one Jacobian is then formed from it,
    not differentiated)."""

    start: int
    stop: int
    shared_jacobian: bool = False
    jacobian: LoopJacobian | None = None


class Circuit(eqx.Module):
    """Base class of every circuit kind.

    Every subclass defines (abstract here, so a class that misses one cannot be built):

    - ``kind`` (class variable): its name;
    - ``state_shapes()``: ordered ``{name: shape}`` of the state variables, which fixes
      the order of the flattened state used by Jacobians and block matrices;
    - ``input_shapes()``: ``{name: shape}`` of the per-sample inputs;
    - ``vector_field(t, state, inputs)`` (pure, one sample); ``init_state(inputs)`` has a
      default (zeros).

    A kind that model files can name (:func:`register`) also defines ``Options`` (a
    pydantic model of its ``[circuit]`` options) and the class methods ``array_specs(sizes,
    options) -> {name: ArraySpec}``, ``from_arrays(sizes, options, arrays) -> Circuit``
    (used by the model-file loader) and ``info() -> KindInfo`` (for ``neurodyn list``);
    :func:`register` refuses a kind without them. Circuits built only
    in Python (the engine's :class:`~neurodyn.core.plasticity.Plastic` wrapper, a
    training rule's inner circuit) need not.

    Optional: ``closed_form(inputs)``, ``block_matrix(state, inputs)`` (analytic
    Jacobian), ``eigenvalues(state, inputs)`` (structured spectrum), ``shifted_solve(state,
    inputs, sigma, rhs)`` (structured backward-Euler solves), ``checks(state,
    inputs)`` (named per-sample comparisons against the paper) and the reduced
    equilibrium equation ``reduce / reduced_residual / expand``.
    """

    kind: AbstractClassVar[str]

    # --- required interface -------------------------------------------------------
    @abc.abstractmethod
    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Ordered ``{name: shape}`` of one sample's state variables."""

    @abc.abstractmethod
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{name: shape}`` of one sample's inputs."""

    @abc.abstractmethod
    def vector_field(self, t, state: State, inputs: Inputs) -> State:
        """``d state / dt`` for one sample (pure)."""

    def init_state(self, inputs: Inputs) -> State:
        """Default initial state: zeros (as in Algorithms 1-5)."""
        dtype = _float_dtype(inputs)
        return {k: jnp.zeros(s, dtype) for k, s in self.state_shapes().items()}

    # --- optional interface ---------------------------------------------------------
    def closed_form(self, inputs: Inputs) -> State | None:
        """Analytic steady state where the paper gives one, else None."""
        return None

    def block_matrix(self, state: State, inputs: Inputs) -> jax.Array | None:
        """Analytic Jacobian of the vector field at ``state`` (flattened order), or None."""
        return None

    def eigenvalues(self, state: State, inputs: Inputs) -> jax.Array:
        """Eigenvalues of the Jacobian at ``state``; dense fallback."""
        return jnp.linalg.eigvals(jacobian(self, state, inputs))

    def shifted_solve(self, state: State, inputs: Inputs, sigma, rhs: State) -> State:
        """``x`` with ``(sigma I - J) x = rhs``, ``J`` the Jacobian of the vector field at
        ``state`` (one sample; ``sigma`` a scalar): one backward-Euler step of length
        ``1 / sigma`` is this solve with ``rhs = f(state)`` (pseudo-transient continuation,
        :mod:`~neurodyn.core.continuation`). Default: the dense Jacobian by forward-mode
        differentiation and an LU solve, ``state_size^2`` entries per sample; kinds with
        structure solve it on their small loops instead."""
        shapes = self.state_shapes()
        J = jacobian(self, state, inputs)
        A = sigma * jnp.eye(J.shape[0], dtype=J.dtype) - J
        return unflatten(jnp.linalg.solve(A, flatten(rhs, shapes)), shapes)

    def system_matrix(self) -> jax.Array | None:
        """The paper's block system matrix (e.g. S24), independent of the state, or None."""
        return None

    def system_blocks(self) -> list[tuple] | None:
        """The system matrix as a block-triangular arrangement of two-block matrices
        ``[[-a I, top], [bottom, -b I]]``, given as ``(top, bottom, a, b)``; None if it has
        no such structure. Lets the stability tools work on small reduced problems."""
        return None

    def fixed_abscissa(self) -> float | None:
        """The largest real part among eigenvalues that no array can move, if any."""
        return None

    def where(self, name: str):
        """``where`` function (equinox style) locating the array called ``name`` in a model
        file: ``W2`` is ``c.W[1]`` when ``W`` is a tuple, ``B`` or ``B1`` is ``c.B`` otherwise."""
        m = re.fullmatch(r"([A-Za-z_]+?)(\d*)", name)
        field = m.group(1) if m else None
        if field is None or field not in {f.name for f in dataclasses.fields(self)}:
            raise KeyError(f"'{name}' is not an array of kind {self.kind}")
        value = getattr(self, field)
        if isinstance(value, tuple):
            if not m.group(2) or not 1 <= int(m.group(2)) <= len(value):
                raise KeyError(f"'{name}' is not an array of kind {self.kind} (valid: {field}1..{field}{len(value)})")
            i = int(m.group(2)) - 1
            return lambda c: getattr(c, field)[i]
        if m.group(2) not in ("", "1") or not hasattr(value, "shape"):
            raise KeyError(f"'{name}' is not an array of kind {self.kind}")
        return lambda c: getattr(c, field)

    def checks(self, state: State, inputs: Inputs) -> dict[str, jax.Array]:
        """Named scalar comparisons (relative errors) for one sample at a fixed point."""
        return {}

    def approximations(self, state: State, inputs: Inputs) -> dict[str, jax.Array]:
        """Named relative errors of the paper's *approximate* predictions (first order in
        a small parameter) for one sample at a fixed point: reported, never pass/fail."""
        return {}

    # --- time dependence and plasticity (core/schedules.py, core/plasticity.py) ------
    def jump_times(self) -> tuple[float, ...]:
        """Times at which the vector field jumps (from the circuit's schedules); the
        engine makes the solver's steps land on them."""
        return ()

    def plasticity(self, t, state: State, inputs: Inputs) -> dict[str, jax.Array]:
        """The kind's local weight dynamics for one sample: ``{array name: dW/dt}`` with
        model-file names (``W1``, ``Q2``, ...), computed from the neural ``state`` at time
        ``t``, before the ``1 / tau_w`` factor and any gate that ``core.plasticity`` adds.
        Phase gating that belongs to the rule itself (e.g. W learns only in the learning
        phase) is applied here. Empty when the kind has no local rules."""
        return {}

    # Reduced equilibrium equation: a smaller unknown ``z`` such that the fixed point
    # is ``expand(z)`` where ``reduced_residual(z) = 0``. Default: the full state.
    def reduce(self, state: State) -> jax.Array:
        return flatten(state, self.state_shapes())

    def reduced_residual(self, z: jax.Array, inputs: Inputs) -> jax.Array:
        state = self.expand(z, inputs)
        return flatten(self.vector_field(0.0, state, inputs), self.state_shapes())

    def expand(self, z: jax.Array, inputs: Inputs) -> State:
        return unflatten(z, self.state_shapes())

    def reduced_blocks(self) -> tuple[ReducedBlock, ...] | None:
        """The reduced equation's block-triangular structure, or None (solve it jointly).

        Blocks of ``z`` in solve order, covering ``z`` once: the residual rows of each
        block depend only on that block's unknowns and on blocks earlier in the order.
        The engine then solves one block at a time (Newton per sample, Newton with every
        Jacobian from one product for a block with a :class:`LoopJacobian`, or, for a
        ``shared_jacobian`` block, one LU factorisation for the whole batch) instead of
        one dense Newton on all of ``z``."""
        return None

    # --- construction from model files ---------------------------------------------
    @classmethod
    def validate_sizes(cls, sizes: list[int]) -> None:
        """Raise ValueError when ``sizes`` do not suit this kind."""
        if len(sizes) < 2:
            raise ValueError("sizes needs at least two layers, e.g. [20, 10]")

    @property
    def state_size(self) -> int:
        return sum(math.prod(s) for s in self.state_shapes().values())


# ---------------------------------------------------------------------------------
def flatten(state: Mapping[str, jax.Array], shapes: Mapping[str, tuple[int, ...]]) -> jax.Array:
    """Concatenate one sample's state variables in the order of ``shapes``."""
    return jnp.concatenate([jnp.reshape(state[k], (-1,)) for k in shapes])


def unflatten(vec: jax.Array, shapes: Mapping[str, tuple[int, ...]]) -> State:
    out, i = {}, 0
    for k, s in shapes.items():
        n = math.prod(s)
        out[k] = jnp.reshape(vec[i : i + n], s)
        i += n
    return out


class BlockMatrix:
    """A dense matrix over the flattened state (the order of ``state_shapes``), filled block
    by block by variable name, for kinds that write their Jacobian analytically:
    ``J.add(row, col, block)`` adds ``block`` at rows ``row`` and columns ``col``; a name that
    is not among the shapes (a variable the kind's mode leaves out) is skipped. The result
    is ``J.matrix``."""

    def __init__(self, shapes: Mapping[str, tuple[int, ...]], dtype):
        self.slices, n = {}, 0
        for k, s in shapes.items():
            self.slices[k] = slice(n, n + math.prod(s))
            n += math.prod(s)
        self.matrix = jnp.zeros((n, n), dtype)

    def add(self, row: str, col: str, block) -> None:
        if row in self.slices and col in self.slices:
            self.matrix = self.matrix.at[self.slices[row], self.slices[col]].add(block)


def jacobian(circuit: Circuit, state: State, inputs: Inputs, t: float = 0.0) -> jax.Array:
    """Dense Jacobian of the (one-sample) vector field at ``state``, via ``jax.jacfwd``."""
    shapes = circuit.state_shapes()

    def f(v):
        return flatten(circuit.vector_field(t, unflatten(v, shapes), inputs), shapes)

    return jax.jacfwd(f)(flatten(state, shapes))


def _float_dtype(inputs: Mapping[str, Any]):
    for v in inputs.values():
        if jnp.issubdtype(jnp.asarray(v).dtype, jnp.floating):
            return jnp.asarray(v).dtype
    return jnp.zeros(()).dtype


# ---------------------------------------------------------------------------------
REGISTRY: dict[str, type[Circuit]] = {}


#: what a kind defines beyond :class:`Circuit`'s abstract members, so that model files can
#: build it and ``neurodyn list`` describe it: its options model and three class methods
MODEL_FILE_MEMBERS = ("Options", "array_specs", "from_arrays", "info")


def register(cls: type[Circuit]) -> type[Circuit]:
    """Class decorator: make a circuit kind available to model files and the CLI. The
    class must be concrete and define :data:`MODEL_FILE_MEMBERS`."""
    if not isinstance(getattr(cls, "kind", None), str) or not cls.kind:
        raise TypeError(f"{cls.__name__} has no kind")
    if inspect.isabstract(cls):
        raise TypeError(f"{cls.__name__} does not define {', '.join(sorted(cls.__abstractmethods__))}")
    missing = [m for m in MODEL_FILE_MEMBERS if not callable(getattr(cls, m, None))]
    if missing:
        raise TypeError(f"kind '{cls.kind}' does not define {', '.join(missing)}, which model files need")
    if cls.kind in REGISTRY and REGISTRY[cls.kind] is not cls:
        raise TypeError(f"kind '{cls.kind}' registered twice")
    REGISTRY[cls.kind] = cls
    return cls


def get_kind(kind: str) -> type[Circuit]:
    """The registered kind called ``kind``; kinds of installed plugins load on the first
    miss (:mod:`neurodyn.plugins`)."""
    import difflib

    if kind not in REGISTRY:
        from .. import plugins

        plugins.load(plugins.CIRCUITS)
    if kind not in REGISTRY:
        close = difflib.get_close_matches(kind, list(REGISTRY), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known kinds: {', '.join(sorted(REGISTRY))}"
        raise KeyError(f"unknown circuit kind '{kind}'{hint}")
    return REGISTRY[kind]


def as_numpy(tree):
    return jax.tree_util.tree_map(np.asarray, tree)
