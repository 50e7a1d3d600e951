"""Single-loop dynamic inversion as a learning rule (supplement S3-S5, S12-S14): one
feedback matrix ``B`` from the output controller to the first hidden layer; the hidden
errors are the circuit's steady state, computed by the engine. With the linearized
controller the states already carry ``s'(a)`` (S15-S16)."""

from __future__ import annotations

import equinox as eqx

from ...circuits.single_loop_dynamic_inversion import SingleLoopDynamicInversion
from .base import CircuitRule


class SLDI(CircuitRule):
    name = "sldi"
    B: object  # d_1 x d_L
    alpha: float = 0.0
    controller: str = eqx.field(static=True, default="nonlinear")
    method: str = eqx.field(static=True, default="equilibrium")

    def circuit(self, network) -> SingleLoopDynamicInversion:
        return SingleLoopDynamicInversion(
            W=tuple(network.W[1:]), B=self.B, alpha=self.alpha, g=tuple(network.s[:-1]), controller=self.controller
        )
