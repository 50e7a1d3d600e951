"""Single-loop dynamic inversion (supplement section 7.3), any depth L >= 2.

One controller ``u_L`` at the output feeds back to the lowest layer through a single
matrix ``B`` (``d_0 x d_L``); the errors in between are driven forward (S3-S5):

    d delta_0/dt = -delta_0 + B u_L
    d delta_k/dt = -delta_k + W_k g(delta_{k-1})             k = 1..L-1
    d u_L/dt     = -alpha u_L + W_L g(delta_{L-1}) - delta_L

With the linearized controller (S12-S14) ``g(delta_k)`` becomes ``delta_k / s'(a_k)``
(element-wise division), so the states are already the errors times ``s'(a)``.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from ..core.circuit import ArraySpec, KindInfo, register
from ..core.nonlinearities import Linear, ReLU
from ._common import CONTROLLER_OPTION_DOCS, ControllerOptions, LayerStack, error_spec, forward_specs, layer_nonlinearities, preactivation_specs, relative_error, stack_array_docs


@register
class SingleLoopDynamicInversion(LayerStack):
    """SLDI; state ``delta_0..delta_{L-1}``, ``u_L``."""

    kind = "single_loop_dynamic_inversion"

    W: tuple  # W_1..W_L
    B: object  # d_0 x d_L
    alpha: float
    g: tuple  # g[i] acts on delta_i
    controller: str = eqx.field(static=True, default="nonlinear")

    def state_shapes(self):
        shapes = {f"delta_{i}": (self.sizes[i],) for i in range(self.L)}
        shapes[f"u_{self.L}"] = (self.sizes[-1],)
        return shapes

    def phi(self, i, delta, inputs):
        """What layer i+1 reads from ``delta_i``: ``g(delta_i)`` (S4) or ``delta_i / s'(a_i)`` (S13)."""
        if self.linearized:
            return delta / self.g[i].deriv(inputs[f"a_{i}"])
        return self.g[i](delta)

    def vector_field(self, t, state, inputs):
        """Eqs. S3-S5 (nonlinear) or S12-S14 (linearized), generalised to L layers."""
        u = state[f"u_{self.L}"]
        out = {"delta_0": -state["delta_0"] + self.B @ u}
        for k in range(1, self.L):
            out[f"delta_{k}"] = -state[f"delta_{k}"] + self.W[k - 1] @ self.phi(k - 1, state[f"delta_{k - 1}"], inputs)
        top = self.W[-1] @ self.phi(self.L - 1, state[f"delta_{self.L - 1}"], inputs)
        out[f"u_{self.L}"] = -self.alpha * u + top - inputs["delta_out"]
        return out

    def _chain(self, u, inputs):
        """Steady-state errors driven forward from ``delta_0 = B u`` (S3-S4 at rest)."""
        state = {"delta_0": self.B @ u}
        for k in range(1, self.L):
            state[f"delta_{k}"] = self.W[k - 1] @ self.phi(k - 1, state[f"delta_{k - 1}"], inputs)
        state[f"u_{self.L}"] = u
        return state

    def closed_form(self, inputs):
        """Linear dynamics: ``u = (W_L Phi_{L-1} ... W_1 Phi_0 B - alpha I)^{-1} delta_L`` and
        ``delta_k`` driven forward (S8-S9 for alpha = 0). Nonlinear g, alpha = 0 and square
        layers: the sequential inversion ``delta_{k-1} = g^{-1}(W_k^{-1} delta_k)`` (S6-S7)."""
        linear = self.linearized or all(isinstance(g, Linear) for g in self.g)
        if linear:
            d = self.sizes[-1]
            # columns of the linear map u -> top readout
            M = jnp.stack([self.W[-1] @ self.phi(self.L - 1, self._chain(e, inputs)[f"delta_{self.L - 1}"], inputs) for e in jnp.eye(d, dtype=self.B.dtype)], axis=1)
            u = jnp.linalg.solve(M - self.alpha * jnp.eye(d, dtype=M.dtype), inputs["delta_out"])
            return self._chain(u, inputs)
        square = len(set(self.sizes)) == 1
        if self.alpha == 0.0 and square and all(g.invertible for g in self.g):
            state, delta = {}, inputs["delta_out"]
            for k in range(self.L, 0, -1):
                delta = self.g[k - 1].inverse(jnp.linalg.solve(self.W[k - 1], delta))
                state[f"delta_{k - 1}"] = delta
            state[f"u_{self.L}"] = jnp.linalg.solve(self.B, state["delta_0"])
            return {k: state[k] for k in self.state_shapes()}
        return None

    def checks(self, state, inputs):
        """``||W_L g(delta_{L-1}) - delta_out - alpha u_L|| / ||delta_out||`` (S5 at rest)."""
        top = self.W[-1] @ self.phi(self.L - 1, state[f"delta_{self.L - 1}"], inputs)
        return {"readout_relative_error": relative_error(top - self.alpha * state[f"u_{self.L}"], inputs["delta_out"])}

    def _gain(self, i, state, inputs):
        """Derivative of ``phi_i`` at ``delta_i``, as a vector."""
        if self.linearized:
            return 1.0 / self.g[i].deriv(inputs[f"a_{i}"])
        return self.g[i].deriv(state[f"delta_{i}"])

    def _assemble(self, gains):
        """``-I`` on the delta diagonal, ``B`` from ``u`` into ``delta_0``,
        ``W_k diag(gains[k-1])`` below the diagonal, ``-alpha I`` on ``u``."""
        d = self.sizes
        off = [0]
        for i in range(self.L):
            off.append(off[-1] + d[i])
        n = off[-1] + d[-1]
        J = -jnp.eye(n, dtype=self.B.dtype)
        J = J.at[off[-1]:, off[-1]:].set(-self.alpha * jnp.eye(d[-1]))
        J = J.at[0 : d[0], off[-1]:].set(self.B)
        for k in range(1, self.L + 1):
            J = J.at[off[k] : off[k] + d[k], off[k - 1] : off[k]].set(self.W[k - 1] * gains[k - 1][None, :])
        return J

    def block_matrix(self, state, inputs):
        """Jacobian at ``state``: the loop with ``phi'_k`` (``g'(delta_k)`` or ``1 / s'(a_k)``)."""
        return self._assemble([self._gain(i, state, inputs) for i in range(self.L)])

    def system_matrix(self):
        """The loop's block system matrix with unit gains (the analogue of S24)."""
        return self._assemble([jnp.ones(d) for d in self.sizes[:-1]])

    # reduced equilibrium: the single controller u_L
    def reduce(self, state):
        return state[f"u_{self.L}"]

    def expand(self, z, inputs):
        return self._chain(z, inputs)

    def reduced_residual(self, z, inputs):
        return self.vector_field(0.0, self.expand(z, inputs), inputs)[f"u_{self.L}"]

    Options = ControllerOptions

    @classmethod
    def validate_sizes(cls, sizes):
        if len(sizes) < 3:
            raise ValueError("single-loop DI needs L >= 2 layers: sizes = [d_0, d_1, d_2, ...]")

    @classmethod
    def array_specs(cls, sizes, options):
        specs = forward_specs(sizes)
        specs["B"] = ArraySpec((sizes[0], sizes[-1]), doc="single feedback matrix B, d_0 x d_L")
        specs |= error_spec(sizes)
        if options.controller == "linearized":
            specs |= preactivation_specs(sizes)
        return specs

    @classmethod
    def from_arrays(cls, sizes, options, arrays):
        L = len(sizes) - 1
        g = layer_nonlinearities(options.nonlinearity, L)
        if options.controller == "linearized" and any(isinstance(x, ReLU) for x in g):
            raise ValueError("the linearized single-loop controller divides by s'(a), which is 0 for relu: use leaky_relu:<slope>")
        return cls(
            W=tuple(jnp.asarray(arrays[f"W{l}"]) for l in range(1, L + 1)),
            B=jnp.asarray(arrays["B"]),
            alpha=float(options.leak),
            g=g,
            controller=options.controller,
        )

    @classmethod
    def info(cls):
        return KindInfo(
            kind=cls.kind,
            summary="single-loop dynamic inversion, L >= 2 (supplement S3-S5, S12-S14)",
            options=CONTROLLER_OPTION_DOCS,
            arrays=stack_array_docs({"B": "single feedback matrix, d_0 x d_L (paper: B = -B_1 B_2 = -W_1^T W_2^T)"}),
            state="delta_0..delta_{L-1}, u_L",
        )
