"""Single-loop dynamic inversion as a learning rule (supplement S3-S5, S12-S14): one
feedback matrix ``B`` from the output controller to the first hidden layer; the hidden
errors are the circuit's steady state, computed by the engine. With the linearized
controller the states already carry ``s'(a)`` (S15-S16)."""

from __future__ import annotations

import equinox as eqx

from ...circuits.single_loop_dynamic_inversion import SingleLoopDynamicInversion
from .base import CircuitRule, register_rule
from .di import DIOptions
from .feedback import single_loop_feedback
from .plastic_inversion import PlasticInversion


@register_rule
class SLDI(CircuitRule):
    name = "sldi"
    summary = "single-loop dynamic inversion: one feedback matrix from the output controller to the first hidden layer (S3-S5, S12-S14)"
    Options = DIOptions
    min_layers = 3
    B: object  # d_1 x d_L
    alpha: float = 0.0
    controller: str = eqx.field(static=True, default="nonlinear")
    method: str = eqx.field(static=True, default="equilibrium")

    @classmethod
    def build(cls, network, options, *, seed, lr):
        B, info = single_loop_feedback(network, options, seed, leak=options.leak)
        rule = cls(B=B, alpha=options.leak, controller=options.controller, method=options.method)
        if options.plasticity == "ode":
            learner, more = PlasticInversion.around(rule.circuit(network), network, options, lr=lr, deriv_signal=False)
            return learner, {**info, **more}
        return rule, info

    def circuit(self, network) -> SingleLoopDynamicInversion:
        return SingleLoopDynamicInversion(
            W=tuple(network.W[1:]), B=self.B, alpha=self.alpha, g=tuple(network.s[:-1]), controller=self.controller
        )
