"""Alternative control architecture for expanding layers (supplement section 7.2).

The error ``delta_0`` integrates the mismatch between the target ``delta_out`` and a
fast readout ``dtilde_1`` of itself, through the feedback matrix ``B_1``:

    d delta_0/dt  = -alpha delta_0 + B_1 (delta_out - dtilde_1)      (S1)
    d dtilde_1/dt = -dtilde_1 + W_1 g(delta_0)                         (S2)

Stability is governed by ``B_1 W_1 + alpha I`` (with fast readout the error obeys
``d delta_0/dt = -(alpha I + B_1 W_1) delta_0 + ...``): with this sign convention the
stable choice is ``B_1 = +W_1^T`` (``neg_transpose`` with ``scale = -1``), which makes
the steady state the regularised least-squares inverse of ``W_1``.
"""

from __future__ import annotations

import jax.numpy as jnp

from ..core.circuit import Circuit, KindInfo, register
from ..core.nonlinearities import Nonlinearity
from ..core.stability import two_block_eigenvalues
from ._common import LeakyOptions, error_spec, feedback_specs, forward_specs, layer_nonlinearities


@register
class DynamicInversionExpanding(Circuit):
    """One layer of the S1-S2 architecture; state ``delta_0``, ``dtilde_1``."""

    kind = "dynamic_inversion_expanding"

    W: object  # d_1 x d_0
    B: object  # d_0 x d_1
    alpha: float
    g: Nonlinearity

    def state_shapes(self):
        return {"delta_0": (self.W.shape[1],), "dtilde_1": (self.W.shape[0],)}

    def input_shapes(self):
        return {"delta_out": (self.W.shape[0],)}

    def vector_field(self, t, state, inputs):
        """Eqs. S1-S2."""
        delta, dtilde = state["delta_0"], state["dtilde_1"]
        return {
            "delta_0": -self.alpha * delta + self.B @ (inputs["delta_out"] - dtilde),
            "dtilde_1": -dtilde + self.W @ self.g(delta),
        }

    def closed_form(self, inputs):
        """Linear g: ``(B_1 W_1 + alpha I) delta_0 = B_1 delta_out``, ``dtilde_1 = W_1 delta_0``."""
        if self.g.name != "linear":
            return None
        n = self.W.shape[1]
        delta = jnp.linalg.solve(self.B @ self.W + self.alpha * jnp.eye(n, dtype=self.W.dtype), self.B @ inputs["delta_out"])
        return {"delta_0": delta, "dtilde_1": self.W @ delta}

    def _gain(self, state):
        return self.W * self.g.deriv(state["delta_0"])[None, :]

    def _assemble(self, gain):
        n, m = self.W.shape[1], self.W.shape[0]
        top = jnp.concatenate([-self.alpha * jnp.eye(n), -self.B], axis=1)
        bottom = jnp.concatenate([gain, -jnp.eye(m)], axis=1)
        return jnp.concatenate([top, bottom], axis=0)

    def block_matrix(self, state, inputs):
        """``[[-alpha I, -B_1], [W_1 D, -I]]`` (rows ``delta_0``, ``dtilde_1``)."""
        return self._assemble(self._gain(state))

    def system_matrix(self):
        """``[[-alpha I, -B_1], [W_1, -I]]``: stability is governed by ``B_1 W_1 + alpha I`` (7.2)."""
        return self._assemble(self.W)

    def system_blocks(self):
        return [(-self.B, self.W, self.alpha, 1.0)]

    def eigenvalues(self, state, inputs):
        return two_block_eigenvalues(-self.B, self._gain(state), self.alpha, 1.0)

    # reduced equilibrium: delta_0 alone (dtilde_1 = W_1 g(delta_0) at steady state)
    def reduce(self, state):
        return state["delta_0"]

    def expand(self, z, inputs):
        return {"delta_0": z, "dtilde_1": self.W @ self.g(z)}

    def reduced_residual(self, z, inputs):
        return self.vector_field(0.0, self.expand(z, inputs), inputs)["delta_0"]

    Options = LeakyOptions

    @classmethod
    def validate_sizes(cls, sizes):
        if len(sizes) != 2:
            raise ValueError(f"this kind has exactly one layer: sizes = [d_0, d_1], got {len(sizes)} entries")

    @classmethod
    def array_specs(cls, sizes, options):
        return forward_specs(sizes) | feedback_specs(sizes) | error_spec(sizes)

    @classmethod
    def from_arrays(cls, sizes, options, arrays):
        return cls(
            W=jnp.asarray(arrays["W1"]),
            B=jnp.asarray(arrays["B1"]),
            alpha=float(options.leak),
            g=layer_nonlinearities(options.nonlinearity, 1)[0],
        )

    @classmethod
    def info(cls):
        return KindInfo(
            kind=cls.kind,
            summary="expanding-layer alternative controller, one layer (supplement S1-S2)",
            options={"nonlinearity": "g on delta_0 (default tanh)", "leak": "alpha on delta_0, 0 to 1e6 (default 0)"},
            arrays={
                "W1": "forward weights, d_1 x d_0",
                "B1": "feedback weights, d_0 x d_1 (stable for B1 = +W1^T: neg_transpose with scale = -1)",
                "delta_out": "input: error delta_1 (d_1), optional leading batch",
            },
            state="delta_0, dtilde_1",
        )
