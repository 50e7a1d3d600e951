"""What the harness measures of every rule on the same probe samples: the angle of each
layer's update to BP's and to the update driven by Gauss-Newton targets, the steady
state of circuit rules, and the stability of the S24 loops a rule relies on.

Gauss-Newton targets (Meulemans et al. 2020 eq. 13, TP thesis 5.60): for
hidden layer ``l`` the target step ``Delta h_l = J_l^+ delta_L`` with ``J_l = da_L/dh_l``
(``delta_L = -dL/da_L``; for a linear output and squared loss ``-J_l^+ e_L``), and the
weight update it drives ``sum_b (s_l'(a_l) * Delta h_l) h_{l-1}^T``. Angles are taken
between updates summed over the probe samples (Frobenius inner product); a layer a rule
leaves fixed has no angle (NaN).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .losses import output_error
from .rules import BP


def angle(a, b) -> jax.Array:
    """Angle in degrees between two arrays (Frobenius inner product); 90 if either is 0."""
    na, nb = jnp.linalg.norm(a), jnp.linalg.norm(b)
    tiny = jnp.finfo(jnp.result_type(a, b)).tiny
    cos = jnp.where((na > tiny) & (nb > tiny), jnp.sum(a * b) / jnp.maximum(na * nb, tiny), 0.0)
    return jnp.degrees(jnp.arccos(jnp.clip(cos, -1.0, 1.0)))


def _upper_jacobian(network, l: int, h_l):
    """``J_l = da_L/dh_l`` at ``h_l`` for one sample (layers l+1..L)."""

    def top(h):
        for k in range(l, network.L):
            a = network.W[k] @ h + network.b[k]
            h = network.s[k](a) if k < network.L - 1 else a
        return h

    jac = jax.jacrev if network.sizes[-1] < network.sizes[l] else jax.jacfwd
    return jac(top)(h_l)


def gn_target_updates(network, x, t, loss: str) -> tuple:
    """``sum_b (s_l'(a_l) * J_l^+ delta_L) h_{l-1}^T`` for the hidden layers l = 1..L-1."""
    fwd = network.forward(x)
    delta_L = output_error(loss, network, fwd, t)
    out = []
    for l in range(1, network.L):

        def per_sample(h_l, a_l, h_prev, d):
            dh = jnp.linalg.pinv(_upper_jacobian(network, l, h_l)) @ d
            return jnp.outer(network.s[l - 1].deriv(a_l) * dh, h_prev)

        out.append(jnp.sum(jax.vmap(per_sample)(fwd.h[l], fwd.a[l - 1], fwd.h[l - 1], delta_L), axis=0))
    return tuple(out)


@eqx.filter_jit
def alignment(rule, network, loss: str, x, t, frozen: tuple = (), gauss_newton: bool = True) -> dict:
    """``{"bp": (L,), "gn": (L-1,)}``: angles in degrees of the rule's update of each
    ``W_l`` on ``x`` to BP's and (hidden layers) to the Gauss-Newton-target update; NaN for
    the layers in ``frozen``."""
    ours, _ = rule.updates(network, x, t, loss)
    bp, _ = BP().updates(network, x, t, loss)
    nan = jnp.asarray(jnp.nan, ours[0].dtype)
    out = {"bp": jnp.stack([nan if l in frozen else angle(a, b) for l, (a, b) in enumerate(zip(ours, bp), start=1)])}
    if gauss_newton and network.L > 1:
        gn = gn_target_updates(network, x, t, loss)
        out["gn"] = jnp.stack([nan if l in frozen else angle(ours[l - 1], g) for l, g in enumerate(gn, start=1)])
    return out


@eqx.filter_jit
def steady_state_metrics(rule, network, loss: str, x, t) -> dict | None:
    """A circuit rule's steady state on ``x`` (:meth:`Rule.steady_state`), compiled once
    per rule structure (run eagerly, the solver's loops recompile per call)."""
    return rule.steady_state(network, x, t, loss)


def feedback_abscissa(rule, network, alpha: float = 0.0) -> list[float]:
    """Maximum real eigenvalue of each layer's S24 block matrix ``[[-I, B_l], [W_l, -alpha I]]``
    (supplement 7.7.1: stability measured initially and throughout training)."""
    from ..core.stability import two_block_eigenvalues

    pairs = rule.feedback_matrices(network)
    if not pairs:
        return []
    alpha = getattr(rule, "alpha", alpha)
    return [float(jnp.max(jnp.real(two_block_eigenvalues(B, W, 1.0, alpha)))) for W, B in pairs]
