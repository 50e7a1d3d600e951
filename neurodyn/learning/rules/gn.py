"""Gauss-Newton targets (Meulemans et al. 2020 eq. 13, Condition 2; thesis 4.105):
``Delta h_l = -eta_hat J_l^+ e_L`` with ``J_l = do/dh_l`` the Jacobian of the output
activity with respect to hidden layer ``l``, or its damped form ``J_l^T (J_l J_l^T +
lambda I)^{-1}`` (Tikhonov damping, eq. 5). The ideal that TP, DTP and DRL approximate,
and the reference signal of the harness's ``angle_gn_*`` metrics.

The Jacobians of a batch come from the layer structure, ``J_{L-1} = D_L W_L`` and
``J_l = J_{l+1} D_{l+1} W_{l+1}`` (``D`` the diagonal of ``s'``), as batched matrix
products, not one automatic differentiation per sample.
"""

import equinox as eqx
from pydantic import Field

import jax.numpy as jnp

from .base import register_rule
from .targets import TargetRule, TargetOptions


def output_jacobians(network, fwd) -> list:
    """``[J_1, ..., J_{L-1}]``, ``J_l = do/dh_l`` of shape ``(batch, d_o, d_l)``."""
    L = network.L
    J = network.target_nonlinearity(L).deriv(fwd.a[L - 1])[..., :, None] * network.W[L - 1]
    out = [J]
    for l in range(L - 1, 1, -1):
        J = J @ (network.s[l - 1].deriv(fwd.a[l - 1])[..., :, None] * network.W[l - 1])
        out.append(J)
    return out[::-1]


def gauss_newton_steps(network, fwd, d_out, damping: float = 0.0) -> list:
    """``[J_l^+ d_out]`` per hidden layer (``d_out`` the desired change of ``o``, batched),
    or ``J_l^T (J_l J_l^T + damping I)^{-1} d_out`` when ``damping > 0``."""
    steps = []
    for J in output_jacobians(network, fwd):
        if damping > 0:
            eye = jnp.eye(J.shape[-2], dtype=J.dtype)
            y = jnp.linalg.solve(J @ jnp.swapaxes(J, -1, -2) + damping * eye, d_out[..., None])
            steps.append((jnp.swapaxes(J, -1, -2) @ y)[..., 0])
        else:
            steps.append((jnp.linalg.pinv(J) @ d_out[..., None])[..., 0])
    return steps


class GNOptions(TargetOptions):
    damping: float = Field(0.0, ge=0, description="Tikhonov damping lambda of J^T (J J^T + lambda I)^{-1}; 0: the pseudo-inverse")


@register_rule
class GaussNewtonTargets(TargetRule):
    name = "gn"
    summary = "Gauss-Newton targets, Delta h_l = -eta_hat J_l^+ e_L (or damped), then a local gradient step"
    Options = GNOptions
    damping: float = eqx.field(static=True)

    @classmethod
    def build(cls, network, options, *, seed, lr):
        return cls(target_stepsize=options.target_stepsize, damping=options.damping), {}

    def targets(self, network, fwd, o_hat):
        steps = gauss_newton_steps(network, fwd, o_hat - network.output(fwd), self.damping)
        return tuple(h + s for h, s in zip(fwd.h[1:-1], steps))
