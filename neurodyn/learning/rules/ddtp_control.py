"""DDTP-control (Meulemans et al. 2020 section 4 (iii)): the architecture and targets of
DDTP-linear, but its feedback learns from a reconstruction loop through the output
without the difference correction, ``1/2 mean_b ||g_l(f_{l,L}(h_l + sigma eps)) - (h_l +
sigma eps)||^2`` (no ``1 / sigma^2``, as in the authors' code): the control that shows
what the difference correction of DRL contributes.
"""

import jax.numpy as jnp

from .base import register_rule
from .ddtp_linear import DDTPLinear


@register_rule
class DDTPControl(DDTPLinear):
    name = "ddtp_control"
    summary = "DDTP-linear trained with a plain reconstruction loss through the output (the control of Meulemans et al. 2020)"

    def feedback_loss(self, feedback, network, fwd, key):
        h = fwd.h[1:-1]
        total = 0.0
        for l, (p, eps) in enumerate(zip(feedback, self.noise(key, h)), start=1):
            noisy = h[l - 1] + self.sigma * eps
            back = self.g(p, l, network.head(l, noisy))
            total = total + 0.5 * jnp.mean(jnp.sum((back - noisy) ** 2, axis=-1))
        return total
