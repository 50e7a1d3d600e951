"""DDTP with a random hidden layer (DDTP-RHL, Meulemans et al. 2020 Fig. 3 right): the
output target goes through a fixed random layer ``h_fb = tanh(R o + r)`` (``R`` of
``feedback_width x d_o``, ``R, r ~ U(-1/sqrt(d_o), 1/sqrt(d_o))``) and each hidden layer
reads it through trained weights, ``g_l(o) = tanh(Q_l h_fb + c_l)``; the last hidden layer
reads the output directly, ``g_{L-1}(o) = tanh(Q_{L-1} o + c_{L-1})`` (as in the authors'
code). Targets with the difference correction, feedback trained by DRL (eq. 10).
"""

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field

from .base import register_rule
from .ddtp_linear import DDTPLinear, DDTPOptions
from .targets import draw_feedback


class RHLOptions(DDTPOptions):
    feedback_width: int = Field(1024, gt=0, le=100_000, description="width of the fixed random feedback layer h_fb = tanh(R o + r)")


@register_rule
class DDTPRHL(DDTPLinear):
    name = "ddtp_rhl"
    summary = "direct DTP through a fixed random hidden layer, g_l(o) = tanh(Q_l tanh(R o + r) + c_l) (Meulemans et al. 2020)"
    Options = RHLOptions
    R: jax.Array
    r: jax.Array

    @classmethod
    def build(cls, network, options, *, seed, lr):
        rng = np.random.default_rng(seed)
        sizes, dtype, w = network.sizes, network.W[0].dtype, options.feedback_width
        shapes = [(sizes[l], w) for l in range(1, network.L - 1)] + [(sizes[-2], sizes[-1])]
        feedback = draw_feedback(rng, shapes, options.feedback_scale, dtype)
        bound = 1.0 / np.sqrt(sizes[-1])
        R = jnp.asarray(rng.uniform(-bound, bound, (w, sizes[-1])), dtype)
        r = jnp.asarray(rng.uniform(-bound, bound, w), dtype)
        return cls.learned(options, feedback, seed, damping=options.damping, R=R, r=r), {}

    def g(self, params, l: int, o):
        Q, c = params
        if l < len(self.feedback):
            o = jnp.tanh(jnp.einsum("...j,ij->...i", o, self.R) + self.r)
        return jnp.tanh(jnp.einsum("...j,ij->...i", o, Q) + c)
