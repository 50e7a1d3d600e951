"""The credit-assignment rule interface and the layer-by-layer error propagation shared
by BP, FA, PBP and NDI (supplement Algorithm 5: ``delta_{l-1} = (M_l delta_l) * s'(a_{l-1})``)."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp


class Rule(eqx.Module):
    """A credit-assignment rule: per-layer learning signals from the output error.

    ``signals(network, fwd, delta_L)`` returns ``(delta_1, ..., delta_L)`` (``delta_L`` as
    given), each with the batch axes of ``delta_L``; the weight update is then
    ``W_l += eta delta_l h_{l-1}^T`` (supplement Eq. 2, EQUATIONS.md 1.8).
    """

    name: ClassVar[str] = ""

    def signals(self, network, fwd, delta_L):
        raise NotImplementedError

    def feedback_matrices(self, network) -> list | None:
        """``[(W_l, B_l), ...]`` of the S24 loops this rule relies on, for stability metrics."""
        return None


class LayerwiseRule(Rule):
    """Rules of the form ``delta_{l-1} = (M_l delta_l) * s'(a_{l-1})``; subclasses give ``M_l``."""

    def matrix(self, network, l: int):
        """``M_l`` (``d_{l-1} x d_l``) for layer ``l = 2..L``."""
        raise NotImplementedError

    def signals(self, network, fwd, delta_L):
        deltas = [delta_L]
        for l in range(network.L, 1, -1):
            M = self.matrix(network, l)
            deltas.append((deltas[-1] @ M.T) * network.s[l - 2].deriv(fwd.a[l - 2]))
        return tuple(reversed(deltas))


def feedback_shapes(sizes: list[int]) -> list[tuple[int, int]]:
    """``B_l`` is ``d_{l-1} x d_l`` for the hidden layers' loops, l = 2..L."""
    return [(sizes[l - 1], sizes[l]) for l in range(2, len(sizes))]


def ndi_matrix(W, B, alpha):
    """``B (W B - alpha I)^{-1}``, or the push-through ``(B W - alpha I)^{-1} B`` when
    ``d_l > d_{l-1}`` (Algorithm 5 picks the smaller inverse); the same matrix."""
    d_out, d_in = W.shape
    if d_out > d_in:
        return jnp.linalg.solve(B @ W - alpha * jnp.eye(d_in, dtype=W.dtype), B)
    return jnp.linalg.solve((W @ B - alpha * jnp.eye(d_out, dtype=W.dtype)).T, B.T).T


class CircuitRule(Rule):
    """Rules whose hidden errors are the steady state of a circuit of the engine, found by
    ``solve_fixed_point`` (``method``: ``equilibrium`` = Newton on the reduced equation,
    ``ode`` = integrate then polish). Subclasses give ``circuit(network)`` and may map a
    circuit state to a signal in ``to_signal``; fields ``controller`` and ``method``."""

    def circuit(self, network):
        raise NotImplementedError

    def to_signal(self, i, delta, network, fwd):
        """The learning signal of hidden layer ``i + 1`` from the circuit's ``delta_i``."""
        return delta

    def solve(self, network, fwd, delta_L):
        """Steady state for a batch (leading axis): ``(state, residual, converged)``."""
        from ...core.equilibrium import solve_fixed_point

        inputs = {"delta_out": delta_L}
        if self.controller == "linearized":
            inputs.update({f"a_{i}": fwd.a[i] for i in range(network.L - 1)})
        return solve_fixed_point(self.circuit(network), inputs, method=self.method)

    def stable_fraction(self, network, fwd, delta_L, state):
        """Fraction of samples whose fixed point has a Jacobian with negative spectral abscissa
        (the equilibrium path finds unstable fixed points too; the dynamics would not)."""
        import jax

        circuit = self.circuit(network)
        inputs = {"delta_out": delta_L}
        if self.controller == "linearized":
            inputs.update({f"a_{i}": fwd.a[i] for i in range(network.L - 1)})
        eigs = jax.vmap(circuit.eigenvalues)(state, inputs)
        return jnp.mean(jnp.max(jnp.real(eigs), axis=-1) < 0)

    def signals(self, network, fwd, delta_L):
        import jax

        batched = delta_L.ndim == 2
        if not batched:
            delta_L, fwd = delta_L[None], jax.tree_util.tree_map(lambda x: x[None], fwd)
        state, _, _ = self.solve(network, fwd, delta_L)
        hidden = tuple(self.to_signal(i, state[f"delta_{i}"], network, fwd) for i in range(network.L - 1))
        out = hidden + (delta_L,)
        return out if batched else tuple(x[0] for x in out)
