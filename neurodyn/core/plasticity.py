"""Plasticity as coupled weight dynamics: chosen arrays of any circuit become state
variables that learn while the neurons relax.

:class:`Plastic` wraps a circuit. For every plastic array ``W`` (model-file name such as
``W1`` or ``Q2``, located with ``circuit.where(name)``) the state gains ``W`` and

    dh/dt = f(t, h; W)                                  (the circuit's vector field)
    dW/dt = gate_W(t) * rule_W(t, h; W) / tau_W         (the circuit's local rule)

where ``rule = circuit.plasticity(t, h, inputs)`` is the kind's own local learning rule
(e.g. thesis eq. 6.17 for the mixture model) evaluated on the circuit rebuilt with the
current weights, ``tau_W > 0`` the weights' time constant and ``gate_W`` an optional
schedule (e.g. 1 only in the learning phase). The engine vmaps the vector field over the
batch, so every sample learns its own copy of the weights (independent simulations).

Contract for kinds: ``plasticity`` returns ``{name: dW/dt}`` with the array's shape for
the arrays that have a rule; the plastic arrays must be fields that the vector field
reads directly (they are swapped in with ``equinox.tree_at``; quantities that
``from_arrays`` derived from them would go stale).

:class:`Frozen` is the reverse view used for reports: the circuit at a fixed time with
the plastic arrays read from the *inputs* (so per-sample weights batch like inputs); its
fixed point, Jacobian and checks are those of the neural dynamics at those weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .circuit import Circuit, Inputs, State, _float_dtype
from .schedules import Constant, Schedule, jump_times


def rule_shapes(circuit: Circuit) -> dict[str, tuple[int, ...]]:
    """``{name: shape}`` of the arrays for which ``circuit.plasticity`` gives a rule,
    found with ``jax.eval_shape`` on one abstract sample (nothing is computed)."""
    dtype = jnp.zeros(()).dtype
    sample = {k: jax.ShapeDtypeStruct(s, dtype) for k, s in circuit.input_shapes().items()}

    def rule(inputs):
        return circuit.plasticity(jnp.zeros((), dtype), circuit.init_state(inputs), inputs)

    out = jax.eval_shape(rule, sample)
    return {k: tuple(v.shape) for k, v in dict(out or {}).items()}


def _rebuild(circuit: Circuit, names: Sequence[str], arrays: Mapping[str, jax.Array]) -> Circuit:
    """``circuit`` with the arrays ``names`` replaced by ``arrays[name]``."""
    if not names:
        return circuit
    wheres = [circuit.where(n) for n in names]
    return eqx.tree_at(lambda c: [w(c) for w in wheres], circuit, [arrays[n] for n in names])


def _array_of(circuit: Circuit, name: str):
    """The array ``name`` of ``circuit``; ValueError (listing the names with rules) if it is
    not one of the kind's arrays."""
    try:
        value = circuit.where(name)(circuit)
    except KeyError as err:
        rules = rule_shapes(circuit)
        hint = f"arrays with local rules: {', '.join(rules)}" if rules else f"kind {circuit.kind} has no local rules"
        raise ValueError(f"{err.args[0]}; {hint}") from None
    if not hasattr(value, "shape") or not jnp.issubdtype(jnp.asarray(value).dtype, jnp.floating):
        raise ValueError(f"'{name}' is not a floating-point array of kind {circuit.kind}")
    return jnp.asarray(value)


def _per_array(value, names: Sequence[str], what: str) -> dict[str, Any]:
    """A single value for every array, or a mapping ``{name: value}`` covering them all."""
    if isinstance(value, Mapping):
        unknown = set(value) - set(names)
        if unknown:
            raise ValueError(f"{what} given for {sorted(unknown)}, which are not plastic (plastic: {', '.join(names)})")
        return {n: value.get(n) for n in names}
    return {n: value for n in names}


class Plastic(Circuit):
    """``circuit`` with the arrays ``arrays`` as state variables (module docstring).

    Arguments:
        circuit: any circuit whose ``plasticity`` gives a rule for each of ``arrays``.
        arrays: model-file names of the plastic arrays, e.g. ``("W1", "Q1")``.
        tau_w: time constant (> 0) of every plastic array, or ``{name: tau_w}``.
        gate: a scalar :class:`Schedule` (or number) multiplying every rule, or
            ``{name: schedule or None}``; None means always on.

    State: the circuit's state variables, then ``{name: array}`` in the order given.
    ``jump_times`` is the union of the circuit's and the gates' discontinuities.
    """

    kind: ClassVar[str] = "plastic"
    circuit: Circuit
    arrays: tuple[str, ...] = eqx.field(static=True)
    tau_w: tuple[float, ...] = eqx.field(static=True)
    gates: tuple[Schedule | None, ...]

    def __init__(self, circuit: Circuit, arrays: Sequence[str], tau_w: float | Mapping[str, float] = 1.0, gate: "Schedule | float | Mapping | None" = None):
        if isinstance(circuit, Plastic):
            raise ValueError("the circuit is plastic already; list every plastic array in one Plastic")
        if isinstance(arrays, str) or not isinstance(arrays, Sequence) or not arrays:
            raise ValueError('arrays must be a non-empty list of array names, e.g. ["W1"]')
        names = tuple(arrays)
        if not all(isinstance(n, str) for n in names):
            raise ValueError('arrays must be a list of array names (strings), e.g. ["W1"]')
        if len(set(names)) != len(names):
            raise ValueError(f"arrays lists a name twice: {list(names)}")
        values = {n: _array_of(circuit, n) for n in names}
        rules = rule_shapes(circuit)
        for n in names:
            if n not in rules:
                if not rules:
                    raise ValueError(f"kind {circuit.kind} has no local plasticity rules, so no array can be plastic")
                raise ValueError(f"kind {circuit.kind} has no local rule for '{n}'; arrays with local rules: {', '.join(rules)}")
            if rules[n] != tuple(values[n].shape):
                raise ValueError(f"the rule for '{n}' has shape {rules[n]}, the array {tuple(values[n].shape)} (a bug in kind {circuit.kind})")
        clash = set(names) & set(circuit.state_shapes())
        if clash:
            raise ValueError(f"{sorted(clash)} name state variables of kind {circuit.kind} already")
        taus = _per_array(tau_w, names, "tau_w")
        for n, tau in taus.items():
            if tau is None or isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau) or tau <= 0:
                raise ValueError(f"tau_w of '{n}' must be a positive number, got {tau!r}")
        gates = _per_array(gate, names, "gate")
        for n, g in gates.items():
            if isinstance(g, (int, float)) and not isinstance(g, bool):
                gates[n] = g = Constant(float(g))
            if g is not None and not isinstance(g, Schedule):
                raise ValueError(f"the gate of '{n}' must be a schedule, a number or None, got {type(g).__name__}")
            if g is not None and jax.eval_shape(g, jnp.zeros(())).shape != ():
                raise ValueError(f"the gate of '{n}' must be a scalar schedule (not a per-layer wave)")
        self.circuit = circuit
        self.arrays = names
        self.tau_w = tuple(float(taus[n]) for n in names)
        self.gates = tuple(gates[n] for n in names)

    # --- views -------------------------------------------------------------------------
    def weights(self, state: State) -> dict[str, jax.Array]:
        """The plastic arrays in ``state``."""
        return {n: state[n] for n in self.arrays}

    def neural_state(self, state: State) -> State:
        """The circuit's own state variables in ``state``."""
        return {k: state[k] for k in self.circuit.state_shapes()}

    def rebuild(self, weights: Mapping[str, jax.Array]) -> Circuit:
        """The wrapped circuit with the plastic arrays set to ``weights``."""
        return _rebuild(self.circuit, self.arrays, weights)

    def frozen(self, t) -> "Frozen":
        """The neural dynamics at time ``t`` with the weights taken from the inputs."""
        return Frozen(self.circuit, self.arrays, t)

    # --- Circuit interface -------------------------------------------------------------
    def state_shapes(self):
        out = dict(self.circuit.state_shapes())
        for n in self.arrays:
            out[n] = tuple(self.circuit.where(n)(self.circuit).shape)
        return out

    def input_shapes(self):
        return self.circuit.input_shapes()

    def init_state(self, inputs: Inputs) -> State:
        state = dict(self.circuit.init_state(inputs))
        leaves = jax.tree_util.tree_leaves(state)
        dtype = leaves[0].dtype if leaves else _float_dtype(inputs)
        for n in self.arrays:
            state[n] = jnp.asarray(self.circuit.where(n)(self.circuit), dtype)
        return state

    def vector_field(self, t, state: State, inputs: Inputs) -> State:
        c = self.rebuild(state)
        h = self.neural_state(state)
        out = dict(c.vector_field(t, h, inputs))
        rule = c.plasticity(t, h, inputs)
        for n, tau, gate in zip(self.arrays, self.tau_w, self.gates):
            dW = rule[n] if gate is None else gate(t) * rule[n]
            out[n] = (dW / tau).astype(state[n].dtype)
        return out

    def jump_times(self) -> tuple[float, ...]:
        return tuple(sorted(set(self.circuit.jump_times()) | set(jump_times(*self.gates))))

    def where(self, name: str):
        inner = self.circuit.where(name)
        return lambda p: inner(p.circuit)


class Frozen(Circuit):
    """``circuit`` at the fixed time ``t`` with the arrays ``arrays`` read from the inputs:
    an autonomous circuit on the circuit's own state. Used to find and analyse the neural
    fixed point at the final weights (and final phase) of a plastic or phased run."""

    kind: ClassVar[str] = "frozen"
    circuit: Circuit
    arrays: tuple[str, ...] = eqx.field(static=True)
    t: jax.Array

    def __init__(self, circuit: Circuit, arrays: Sequence[str] = (), t=0.0):
        clash = set(arrays) & set(circuit.input_shapes())
        if clash:
            raise ValueError(f"{sorted(clash)} name inputs of kind {circuit.kind} already")
        self.circuit = circuit
        self.arrays = tuple(arrays)
        self.t = jnp.asarray(t, float)

    def _split(self, inputs: Inputs) -> tuple[Circuit, Inputs]:
        inner = {k: inputs[k] for k in self.circuit.input_shapes()}
        return _rebuild(self.circuit, self.arrays, inputs), inner

    def state_shapes(self):
        return self.circuit.state_shapes()

    def input_shapes(self):
        out = dict(self.circuit.input_shapes())
        for n in self.arrays:
            out[n] = tuple(self.circuit.where(n)(self.circuit).shape)
        return out

    def init_state(self, inputs: Inputs) -> State:
        c, inner = self._split(inputs)
        return c.init_state(inner)

    def vector_field(self, t, state: State, inputs: Inputs) -> State:
        c, inner = self._split(inputs)
        return c.vector_field(self.t.astype(jnp.result_type(t, float)), state, inner)

    def closed_form(self, inputs: Inputs):
        c, inner = self._split(inputs)
        return c.closed_form(inner)

    def checks(self, state: State, inputs: Inputs):
        c, inner = self._split(inputs)
        return c.checks(state, inner)

    def approximations(self, state: State, inputs: Inputs):
        c, inner = self._split(inputs)
        return c.approximations(state, inner)


def unwrap(circuit: Circuit) -> Circuit:
    """The neural circuit inside a :class:`Plastic` (the circuit itself otherwise)."""
    return circuit.circuit if isinstance(circuit, Plastic) else circuit
