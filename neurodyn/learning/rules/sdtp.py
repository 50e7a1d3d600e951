"""Simplified difference target propagation (SDTP, Bartunov et al. 2018; thesis section
3.1.2): no gradient reaches the penultimate layer either. Its target comes through a
learned inverse from the output target itself, ``hhat_{L-1} = h_{L-1} - g_{L-1}(h_L) +
g_{L-1}(hhat_L)``, with ``hhat_L = h_L + eta_hat (t - h_L)`` on the output *activity*
(softmax probabilities for classification): ``target_stepsize = 1`` is the paper's
``hhat_L = argmin L``, the label. Lower layers take DTP's difference targets; the output
layer learns from the task loss. The inverses ``g_l(h) = s_l(Q_l h + c_l)`` learn by
denoising (Bartunov et al. Algorithm 2): ``1/2 mean_b ||h_l - g_l(f_{l+1}(h_l + sigma
eps))||^2``, clean target, no ``1 / sigma^2``.
"""

from typing import Literal

import jax.numpy as jnp
from pydantic import Field

from .base import register_rule
from .dtp import DTP
from .tp import TPOptions


class SDTPOptions(TPOptions):
    target_stepsize: float = Field(1.0, gt=0, le=1, description="fraction of the way from h_L to the label taken as the output target (1: the label, Bartunov et al.)")
    inverse: Literal["nonlinear"] = Field("nonlinear", description="g_l(h) = s_l(Q_l h + c_l)")
    reconstruction: Literal["noisy"] = Field("noisy", description="inverses learn by denoising h_l + sigma eps")


@register_rule
class SDTP(DTP):
    name = "sdtp"
    summary = "simplified DTP: the penultimate target through a learned inverse of the label (Bartunov et al. 2018)"
    Options = SDTPOptions

    def top(self, network, fwd):
        return fwd.h[-1]

    def output_target(self, network, fwd, t, loss):
        return fwd.h[-1] + self.target_stepsize * (t - fwd.h[-1])

    def upper(self, network, l: int, h):
        """``f_{l+1}(h)`` into the space of :meth:`top` (the softmax's probabilities)."""
        return network.s[l](jnp.einsum("...j,ij->...i", h, network.W[l]) + network.b[l])

    def feedback_loss(self, feedback, network, fwd, key):
        h = fwd.h[1:-1]
        total = 0.0
        for l, eps in enumerate(self.noise(key, h), start=1):
            back = self.g(feedback[l - 1], network, l, self.upper(network, l, h[l - 1] + self.sigma * eps))
            total = total + 0.5 * jnp.mean(jnp.sum((back - h[l - 1]) ** 2, axis=-1))
        return total
