"""Dynamic inversion with plastic weights: the network's forward weights are state of the
same ODE as DI's controllers (the rules ``di`` and ``sldi`` with ``plasticity = "ode"``).

:class:`InversionLearning` wraps the backward circuit (sequential DI, eq. 16, or single-loop
DI, S3-S5) of a network and adds the local learning rule of every layer (supplement Eq. 2
as weight dynamics):

    dW_l/dt = gate(t) delta_l h_{l-1}^T / tau_w,   db_l/dt = gate(t) delta_l / tau_w,   l = 1..L,

where ``delta_L`` is the output error (input ``delta_out``), ``delta_l`` (l < L) the live
error of hidden layer ``l`` (the circuit's ``delta_{l-1}``, times ``s_l'(a_l)`` for the
linearized controller of sequential DI) and ``h_{l-1}`` the presynaptic rate of the forward
pass (inputs ``h_0..h_{L-1}``, held during the cycle). The gate is a settling phase (0)
followed by a learning phase (1) of length ``T``; ``tau_w = T / lr``, so with the errors at
their steady state the cycle moves ``W_l`` by ``lr delta_l h_{l-1}^T``: the discrete DI
update, to first order in ``lr`` (the weights move the circuit while it learns).
"""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from ...core.circuit import Circuit
from ...core.schedules import phases
from ..losses import output_error
from .plastic_circuit import PlasticCircuitRule


class InversionLearning(Circuit):
    """A DI backward circuit plus the network's first layer and the learning rule above."""

    kind: ClassVar[str] = "inversion_learning"
    backward: Circuit  # DynamicInversion or SingleLoopDynamicInversion on W_2..W_L
    W1: jax.Array  # the network's first layer (the backward circuit does not use it)
    b: tuple  # the network's biases b_1..b_L (learn by the same rule)
    s: tuple  # the network's nonlinearities s_1..s_L
    deriv_signal: bool = eqx.field(static=True)  # multiply delta_l by s_l'(a_l) (DI, linearized)

    @property
    def L(self) -> int:
        return len(self.s)

    def where(self, name: str):
        if name == "W1":
            return lambda c: c.W1
        if name.startswith("b") and name[1:].isdigit() and 1 <= int(name[1:]) <= self.L:
            return lambda c: c.b[int(name[1:]) - 1]
        if name.startswith("W") and name[1:].isdigit() and 2 <= int(name[1:]) <= self.L:
            inner = self.backward.where(f"W{int(name[1:]) - 1}")
            return lambda c: inner(c.backward)
        raise KeyError(f"'{name}' is not a forward weight W1..W{self.L} or bias b1..b{self.L}")

    def _inner(self, inputs):
        return {k: inputs[k] for k in self.backward.input_shapes()}

    def state_shapes(self):
        return self.backward.state_shapes()

    def input_shapes(self):
        shapes = dict(self.backward.input_shapes())
        sizes = [self.W1.shape[1]] + [self.W1.shape[0]] + [w.shape[0] for w in self.backward.W]
        shapes.update({f"h_{l}": (sizes[l],) for l in range(self.L)})
        if self.deriv_signal:
            shapes.update({f"a_{l - 1}": (sizes[l],) for l in range(1, self.L)})
        return shapes

    def init_state(self, inputs):
        return self.backward.init_state(self._inner(inputs))

    def vector_field(self, t, state, inputs):
        return self.backward.vector_field(t, state, self._inner(inputs))

    def jump_times(self):
        return self.backward.jump_times()

    def plasticity(self, t, state, inputs):
        """``dW_l = delta_l h_{l-1}^T``, ``db_l = delta_l`` (module docstring)."""
        deltas = []
        for l in range(1, self.L):
            d = state[f"delta_{l - 1}"]
            deltas.append(d * self.s[l - 1].deriv(inputs[f"a_{l - 1}"]) if self.deriv_signal else d)
        deltas.append(inputs["delta_out"])
        rules = {f"W{l}": jnp.outer(d, inputs[f"h_{l - 1}"]) for l, d in enumerate(deltas, start=1)}
        rules.update({f"b{l}": d for l, d in enumerate(deltas, start=1)})
        return rules


class PlasticInversion(PlasticCircuitRule):
    """DI or SLDI whose weights learn inside the circuit's ODE (module docstring)."""

    name: ClassVar[str] = "plastic_inversion"  # built by the rules di and sldi, not registered
    summary: ClassVar[str] = "dynamic inversion with weights as ODE state"
    Options: ClassVar = None
    linearized: bool = eqx.field(static=True, default=False)

    @classmethod
    def build(cls, network, options, *, seed, lr):
        raise TypeError("built by the rules di and sldi with plasticity = 'ode' (see PlasticInversion.around)")

    @classmethod
    def around(cls, backward, network, options, *, lr, deriv_signal: bool):
        """The learner for ``network`` around the backward circuit ``backward``."""
        from ...core.plasticity import Plastic

        circuit = InversionLearning(backward=backward, W1=network.W[0], b=tuple(network.b), s=tuple(network.s), deriv_signal=deriv_signal)
        gate = phases([options.settle_duration, options.learning_duration], [0.0, 1.0], 1, after=0.0)
        names = [f"W{l}" for l in range(1, network.L + 1)] + ([f"b{l}" for l in range(1, network.L + 1)] if network.biases else [])
        plastic = Plastic(circuit, names, tau_w=options.learning_duration / lr, gate=gate)
        t1 = options.settle_duration + options.learning_duration
        rule = cls(
            plastic=plastic, own={}, lr=lr, t1=t1, rtol=options.rtol, atol=options.atol, max_steps=options.max_steps,
            linearized=options.controller == "linearized",
        )
        return rule, {"t1": t1, "tau_w": options.learning_duration / lr}

    def feedback_matrices(self, network):
        B = self.plastic.circuit.backward.B
        if not isinstance(B, tuple):  # single loop: no S24 blocks
            return None
        return [(network.W[l - 1], B[l - 2]) for l in range(2, network.L + 1)]

    def cycle_inputs(self, network, x, t, loss):
        fwd = network.forward(x)
        inputs = {"delta_out": output_error(loss, network, fwd, t)}
        inputs.update({f"h_{l}": fwd.h[l] for l in range(network.L)})
        if self.linearized:
            inputs.update({f"a_{l}": fwd.a[l] for l in range(network.L - 1)})
        return inputs
