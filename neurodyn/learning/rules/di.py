"""Dynamic inversion as a learning rule: the hidden errors are the steady state of the
sequential DI circuit (supplement eq. 16, Algorithms 1-3) driven by the output error,
computed by the engine (Newton on the controllers, or integration then Newton), never
by a closed form.

Network layers map onto the circuit: the network's ``delta_1..delta_{L-1}`` are the
circuit's ``delta_0..delta_{L-2}``, its ``W_2..W_L`` the circuit's ``W1..W{L-1}``, and the
nonlinearity of hidden layer ``i`` is the ``g`` acting on it. With the linearized
controller the signal is ``delta * s'(a)`` (Algorithm 2) and each loop inverts the error of
the layer above times ``s'(a)``; with the nonlinear controller the steady state itself is
the signal (Algorithm 1).
"""

from __future__ import annotations

from typing import Literal

import equinox as eqx
from pydantic import Field

from ...circuits.dynamic_inversion import DynamicInversion
from .base import CircuitRule, CircuitRuleOptions, register_rule
from .feedback import LeakyFeedbackOptions, sequential_feedback
from .plastic_inversion import PlasticInversion


class DIOptions(LeakyFeedbackOptions, CircuitRuleOptions):
    """Feedback, leak, controller and steady-state method of dynamic inversion, and the
    choice of learning by discrete updates or by weights as ODE state."""

    plasticity: Literal["discrete", "ode"] = Field("discrete", description="discrete: W += lr delta h^T at the steady state; ode: weights learn as state of the circuit's ODE")
    settle_duration: float = Field(50.0, gt=0, description="plasticity = 'ode': time the controllers settle before the weights learn")
    learning_duration: float = Field(10.0, gt=0, description="plasticity = 'ode': length of the learning phase (tau_w = learning_duration / lr)")
    rtol: float = Field(1e-6, gt=0, description="plasticity = 'ode': relative tolerance of one cycle's solve")
    atol: float = Field(1e-9, gt=0, description="plasticity = 'ode': absolute tolerance of one cycle's solve")
    max_steps: int = Field(8192, gt=0, description="plasticity = 'ode': solver steps allowed per cycle")


@register_rule
class DI(CircuitRule):
    name = "di"
    summary = "sequential dynamic inversion: hidden errors are the DI circuit's steady state (eq. 16, Algorithms 1-3)"
    Options = DIOptions
    min_layers = 2
    B: tuple  # B_2..B_L, B_l is d_{l-1} x d_l
    alpha: float = 0.0
    controller: str = eqx.field(static=True, default="nonlinear")
    method: str = eqx.field(static=True, default="equilibrium")

    @classmethod
    def build(cls, network, options, *, seed, lr):
        B, info = sequential_feedback(network, options, seed, leak=options.leak)
        rule = cls(B=B, alpha=options.leak, controller=options.controller, method=options.method)
        if options.plasticity == "ode":
            learner, more = PlasticInversion.around(
                rule.circuit(network), network, options, lr=lr, deriv_signal=options.controller == "linearized"
            )
            return learner, {**info, **more}
        return rule, info

    def circuit(self, network) -> DynamicInversion:
        return DynamicInversion(
            W=tuple(network.W[1:]), B=tuple(self.B), alpha=self.alpha, g=tuple(network.s[:-1]), controller=self.controller
        )

    def to_signal(self, i, delta, network, fwd):
        return delta * network.s[i].deriv(fwd.a[i]) if self.controller == "linearized" else delta

    def stable_fraction(self, network, fwd, delta_L, state):
        """With the linearized controller the Jacobian's spectrum is the union of the S24
        blocks ``[[-I, B_l], [W_l, -alpha I]]`` whatever the sample (the ``s'(a)`` factors sit
        in the block-triangular coupling only), so one sample decides for all."""
        if self.controller != "linearized":
            return super().stable_fraction(network, fwd, delta_L, state)
        import jax

        one = jax.tree_util.tree_map(lambda x: x[:1], (fwd, delta_L, state))
        return super().stable_fraction(network, *one)

    def feedback_matrices(self, network):
        return [(network.W[l - 1], self.B[l - 2]) for l in range(2, network.L + 1)]
