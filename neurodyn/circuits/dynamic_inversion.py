"""Sequential dynamic inversion (Podlaski & Machens 2020), any depth.

For each layer ``l = 1..L`` a controller ``u_l`` drives the error ``delta_{l-1}``
through the feedback matrix ``B_l`` until the forward readout of ``delta_{l-1}``
matches the error of the layer above (main-text eq. 16, Algorithm 1):

    d delta_{l-1}/dt = -delta_{l-1} + B_l u_l
    d u_l/dt         = -alpha u_l + W_l g(delta_{l-1}) - delta_l

With the linearized controller (Algorithm 2) the readout is ``W_l delta_{l-1}`` and the
error handed down is ``delta_{l-1} * s'(a_{l-1})``. All layers run at once (Algorithm 3
generalised): layer ``l-1``'s target is the live ``delta_{l-1}`` of the layer above;
``delta_L`` is the input ``delta_out``.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ..core.circuit import BlockMatrix, KindInfo, LoopJacobian, ReducedBlock, loop_product, register
from ..core.nonlinearities import Linear, Nonlinearity
from ..core.stability import two_block_eigenvalues_of_product
from ._common import CONTROLLER_OPTION_DOCS, ControllerOptions, LayerStack, error_spec, feedback_specs, forward_specs, layer_nonlinearities, preactivation_specs, relative_error, stack_array_docs


@register
class DynamicInversion(LayerStack):
    """Stacked sequential DI; state ``delta_0..delta_{L-1}``, ``u_1..u_L``."""

    kind = "dynamic_inversion"

    W: tuple  # W_1..W_L, W_l is d_l x d_{l-1}
    B: tuple  # B_1..B_L, B_l is d_{l-1} x d_l
    alpha: float
    g: tuple[Nonlinearity, ...]  # g[i] acts on delta_i
    controller: str = eqx.field(static=True, default="nonlinear")

    def state_shapes(self):
        d = self.sizes
        shapes = {f"delta_{i}": (d[i],) for i in range(self.L)}
        shapes.update({f"u_{l}": (d[l],) for l in range(1, self.L + 1)})
        return shapes

    # ---- the equations -----------------------------------------------------------
    def readout(self, i, delta, inputs):
        """What the controller of layer i+1 reads from ``delta_i``: ``g(delta_i)`` or ``delta_i``."""
        return delta if self.linearized else self.g[i](delta)

    def target(self, l, state, inputs):
        """``delta_l`` as seen by controller ``l``: the input at the top, else the live error
        of the layer above (times ``s'(a_l)`` for the linearized controller)."""
        if l == self.L:
            return inputs["delta_out"]
        delta = state[f"delta_{l}"]
        return delta * self.g[l].deriv(inputs[f"a_{l}"]) if self.linearized else delta

    def vector_field(self, t, state, inputs):
        """Eq. 16 / Algorithms 1-3 of the supplement, all layers at once."""
        out = {}
        for l in range(1, self.L + 1):
            delta, u = state[f"delta_{l - 1}"], state[f"u_{l}"]
            out[f"delta_{l - 1}"] = -delta + self.B[l - 1] @ u
            out[f"u_{l}"] = -self.alpha * u + self.W[l - 1] @ self.readout(l - 1, delta, inputs) - self.target(l, state, inputs)
        return {k: out[k] for k in self.state_shapes()}

    def closed_form(self, inputs):
        """Linear dynamics (linear g, or the linearized controller), layer by layer from the
        top: ``u_l = (W_l B_l - alpha I)^{-1} delta_l``, ``delta_{l-1} = B_l u_l``
        (the NDI matrix of Algorithm 5)."""
        if not self.linearized and any(g.name != "linear" for g in self.g):
            return None
        state = {}
        for l in range(self.L, 0, -1):
            W, B = self.W[l - 1], self.B[l - 1]
            u = jnp.linalg.solve(W @ B - self.alpha * jnp.eye(W.shape[0], dtype=W.dtype), self.target(l, state, inputs))
            state[f"u_{l}"], state[f"delta_{l - 1}"] = u, B @ u
        return {k: state[k] for k in self.state_shapes()}

    def checks(self, state, inputs):
        """``||W_L g(delta_{L-1}) - delta_out - alpha u_L|| / ||delta_out||`` (steady state of eq. 16)."""
        top = self.W[-1] @ self.readout(self.L - 1, state[f"delta_{self.L - 1}"], inputs)
        return {"readout_relative_error": relative_error(top - self.alpha * state[f"u_{self.L}"], inputs["delta_out"])}

    # ---- linearisation -----------------------------------------------------------
    def _loop_gain(self, l, state, inputs):
        """``W_l diag(g'(delta_{l-1}))`` (``W_l`` for the linearized controller)."""
        W = self.W[l - 1]
        return W if self.linearized else W * self.g[l - 1].deriv(state[f"delta_{l - 1}"])[None, :]

    def _assemble(self, loop_gains, couplings):
        """The Jacobian's layout: per layer ``[[-I, B_l], [loop_gains[l], -alpha I]]`` and
        ``-diag(couplings[l])`` from ``delta_l`` into ``u_l`` (l < L)."""
        J = BlockMatrix(self.state_shapes(), self.W[0].dtype)
        for l in range(1, self.L + 1):
            d, u = f"delta_{l - 1}", f"u_{l}"
            J.add(d, d, -jnp.eye(self.sizes[l - 1]))
            J.add(d, u, self.B[l - 1])
            J.add(u, d, loop_gains[l - 1])
            J.add(u, u, -self.alpha * jnp.eye(self.sizes[l]))
            if l < self.L:
                J.add(u, f"delta_{l}", -jnp.diag(couplings[l - 1]))
        return J.matrix

    def block_matrix(self, state, inputs):
        """Analytic Jacobian: S24 ``[[-I, B_l], [W_l D_{l-1}, -alpha I]]`` per layer, and the
        coupling ``-I`` (``-diag(s'(a_l))``, linearized) from ``delta_l`` into ``u_l``."""
        gains = [self._loop_gain(l, state, inputs) for l in range(1, self.L + 1)]
        couplings = [
            self.g[l].deriv(inputs[f"a_{l}"]) if self.linearized else jnp.ones(self.sizes[l]) for l in range(1, self.L)
        ]
        return self._assemble(gains, couplings)

    def system_matrix(self):
        """The paper's block system matrix: S24 per layer (``W_l`` without ``g'``) and the
        layer coupling ``-I``."""
        return self._assemble(list(self.W), [jnp.ones(d) for d in self.sizes[1:-1]])

    def system_blocks(self):
        """S24 of each layer, ``[[-I, B_l], [W_l, -alpha I]]``; the system matrix is block-triangular
        over layers, so its spectrum is the union of theirs."""
        return [(self.B[l], self.W[l], 1.0, self.alpha) for l in range(self.L)]

    def fixed_abscissa(self):
        """An expanding layer (``d_l > d_{l-1}``) always has the eigenvalue ``-alpha`` (W B is singular)."""
        return -self.alpha if any(b > a for a, b in zip(self.sizes, self.sizes[1:])) else None

    def eigenvalues(self, state, inputs):
        """The Jacobian is block-triangular over layers, each block S24-shaped: the union of
        the per-layer spectra, each from the Schur-complement quadratic."""
        return jnp.concatenate(
            [two_block_eigenvalues_of_product(self._loop_product(l, state), *self.B[l - 1].shape, 1.0, self.alpha) for l in range(1, self.L + 1)]
        )

    def shifted_solve(self, state, inputs, sigma, rhs):
        """``(sigma I - J) x = rhs`` from the top layer down (the Jacobian is block-triangular
        over layers). Layer ``l``'s block ``[[(sigma+1) I, -B_l], [-W_l D, (sigma+alpha) I]]``
        is solved through the Schur complement on its smaller side, with ``a = sigma + 1``,
        ``b = sigma + alpha``: ``(ab I - W_l D B_l) x_u = a r_u + W_l D r_delta`` when
        ``d_l <= d_{l-1}``, else ``(ab I - B_l W_l D) x_delta = b r_delta + B_l r_u``; the
        coupling ``+diag(c)`` from ``delta_l`` moves the layer above's solution into ``r_u``."""
        x = {}
        for l in range(self.L, 0, -1):
            d, u = f"delta_{l - 1}", f"u_{l}"
            W, B = self.W[l - 1], self.B[l - 1]
            r_d, r_u = rhs[d], rhs[u]
            if l < self.L:
                c = self.g[l].deriv(inputs[f"a_{l}"]) if self.linearized else 1.0
                r_u = r_u - c * x[f"delta_{l}"]
            D = jnp.ones_like(r_d) if self.linearized else self.g[l - 1].deriv(state[d])
            a, b = sigma + 1.0, sigma + self.alpha
            schur = a * b * jnp.eye(min(W.shape), dtype=r_d.dtype) - self._loop_product(l, state)
            if W.shape[0] <= W.shape[1]:
                x[u] = jnp.linalg.solve(schur, a * r_u + W @ (D * r_d))
                x[d] = (r_d + B @ x[u]) / a
            else:
                x[d] = jnp.linalg.solve(schur, b * r_d + B @ r_u)
                x[u] = (r_u + W @ (D * x[d])) / b
        return {k: x[k] for k in self.state_shapes()}

    def _loop_product(self, l, state):
        """The smaller loop product of layer l: ``W_l D B_l`` (d_l x d_l) or ``B_l W_l D``
        (d_{l-1} x d_{l-1}), ``D = diag(g'(delta_{l-1}))`` (identity when linearized); the
        first by :func:`~neurodyn.core.circuit.loop_product`, one product for a batch."""
        W, B = self.W[l - 1], self.B[l - 1]
        if self.linearized:
            return W @ B if W.shape[0] <= W.shape[1] else B @ W
        slopes = self.g[l - 1].deriv(state[f"delta_{l - 1}"])
        d1, d0 = W.shape
        if d1 > d0:
            return (B @ W) * slopes[None, :]
        return loop_product(W, slopes, B)

    # ---- reduced equilibrium: the controllers u_1..u_L ---------------------------
    def reduce(self, state):
        return jnp.concatenate([state[f"u_{l}"] for l in range(1, self.L + 1)])

    def expand(self, z, inputs):
        state, i = {}, 0
        for l in range(1, self.L + 1):
            u = z[i : i + self.sizes[l]]
            i += self.sizes[l]
            state[f"u_{l}"], state[f"delta_{l - 1}"] = u, self.B[l - 1] @ u
        return {k: state[k] for k in self.state_shapes()}

    def reduced_residual(self, z, inputs):
        """``W_l g(B_l u_l) - delta_l - alpha u_l`` for every layer (``delta_{l-1} = B_l u_l``)."""
        f = self.vector_field(0.0, self.expand(z, inputs), inputs)
        return jnp.concatenate([f[f"u_{l}"] for l in range(1, self.L + 1)])

    def reduced_blocks(self):
        """Block-triangular: ``u_l``'s residual involves only ``u_l`` and, through its target
        ``delta_l = B_{l+1} u_{l+1}``, the loop above; solve from ``u_L`` down. Its Jacobian in
        ``u_l`` is ``W_l B_l - alpha I`` for the linearized controller or a linear ``g``
        (Algorithm 5's matrix, one factorisation per batch), else ``W_l diag(g'(B_l u_l)) B_l - alpha I``."""
        ends = np.cumsum([0, *self.sizes[1:]])
        blocks = []
        for l in range(self.L, 0, -1):
            lo, hi = int(ends[l - 1]), int(ends[l])
            if self.linearized or isinstance(self.g[l - 1], Linear):
                loop = LoopJacobian(self.W[l - 1], self.B[l - 1], -self.alpha)  # no slopes: W_l B_l - alpha I
                blocks.append(ReducedBlock(lo, hi, shared_jacobian=True, jacobian=loop))
                continue
            B, g = self.B[l - 1], self.g[l - 1]
            slopes = lambda z, inputs, B=B, g=g, lo=lo, hi=hi: g.deriv(B @ z[lo:hi])  # noqa: E731  (g'(delta_{l-1}))
            blocks.append(ReducedBlock(lo, hi, jacobian=LoopJacobian(self.W[l - 1], B, -self.alpha, slopes)))
        return tuple(blocks)

    # ---- model files -------------------------------------------------------------
    Options = ControllerOptions

    @classmethod
    def array_specs(cls, sizes, options):
        specs = forward_specs(sizes) | feedback_specs(sizes) | error_spec(sizes)
        if options.controller == "linearized":
            specs.update(preactivation_specs(sizes))
        return specs

    @classmethod
    def from_arrays(cls, sizes, options, arrays):
        L = len(sizes) - 1
        return cls(
            W=tuple(jnp.asarray(arrays[f"W{l}"]) for l in range(1, L + 1)),
            B=tuple(jnp.asarray(arrays[f"B{l}"]) for l in range(1, L + 1)),
            alpha=float(options.leak),
            g=layer_nonlinearities(options.nonlinearity, L),
            controller=options.controller,
        )

    @classmethod
    def info(cls):
        return KindInfo(
            kind=cls.kind,
            summary="sequential dynamic inversion, L >= 1 stacked layers (supplement eq. 16, Algorithms 1-3)",
            options=CONTROLLER_OPTION_DOCS,
            arrays=stack_array_docs({"B1..BL": "feedback weights, B_l is d_{l-1} x d_l"}),
            state="delta_0..delta_{L-1}, u_1..u_L",
        )

