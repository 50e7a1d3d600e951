"""SDTP with an auxiliary output (AO-SDTP, Bartunov et al. 2018 Algorithm 2; thesis 3.16):
the output is widened to ``[o, z]`` with ``z = tanh(V h_{L-1})``, ``V`` random and fixed
(``aux_size x d_{L-1}``, entries ``N(0, 1 / d_{L-1})``); ``z`` has no loss and its target is
itself, so the inverse of the top layer sees ``[o_hat, z]`` and can recover more of
``h_{L-1}`` than the few outputs alone carry: ``hhat_{L-1} = h_{L-1} - g([h_L, z]) +
g([hhat_L, z])``. Everything else is :mod:`.sdtp`.
"""

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field

from .base import register_rule
from .sdtp import SDTP, SDTPOptions
from .targets import draw_feedback


class AOSDTPOptions(SDTPOptions):
    aux_size: int = Field(256, gt=0, le=100_000, description="width of the auxiliary output z (not given in the paper's appendix; its Fig. 4 shows wider is better)")


@register_rule
class AOSDTP(SDTP):
    name = "ao_sdtp"
    summary = "SDTP with an auxiliary output [o, z], z = tanh(V h_{L-1}) fixed (Bartunov et al. 2018)"
    Options = AOSDTPOptions
    V: jax.Array

    @classmethod
    def build(cls, network, options, *, seed, lr):
        rng = np.random.default_rng(seed)
        sizes, dtype = network.sizes, network.W[0].dtype
        shapes = [(sizes[l], sizes[l + 1]) for l in range(1, network.L - 1)] + [(sizes[-2], sizes[-1] + options.aux_size)]
        feedback = draw_feedback(rng, shapes, options.feedback_scale, dtype)
        V = jnp.asarray(rng.normal(size=(options.aux_size, sizes[-2])) / np.sqrt(sizes[-2]), dtype)
        return cls.learned(options, feedback, seed, inverse=options.inverse, reconstruction=options.reconstruction, V=V), {}

    def aux(self, h):
        return jnp.tanh(jnp.einsum("...j,ij->...i", h, self.V))

    def top(self, network, fwd):
        return jnp.concatenate([fwd.h[-1], self.aux(fwd.h[-2])], axis=-1)

    def output_target(self, network, fwd, t, loss):
        return jnp.concatenate([super().output_target(network, fwd, t, loss), self.aux(fwd.h[-2])], axis=-1)

    def upper(self, network, l, h):
        out = super().upper(network, l, h)
        return jnp.concatenate([out, self.aux(h)], axis=-1) if l == network.L - 1 else out
