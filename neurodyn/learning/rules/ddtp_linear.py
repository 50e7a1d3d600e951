"""Direct difference target propagation with linear feedback (DDTP-linear, Meulemans et
al. 2020 section 3.3 and Fig. 3 left): every hidden layer gets its target straight from
the output, ``g_l(o) = Q_l o + c_l``, with the difference correction ``hhat_l = g_l(o_hat)
+ h_l - g_l(o) = h_l + Q_l (o_hat - o)``. ``Q_l`` (``d_l x d_o``) learns with the
difference reconstruction loss (eq. 10), whose optimum is ``Q_l = J_l^T (J_l J_l^T +
lambda I)^{-1}`` at each sample (eq. 12): Gauss-Newton targets with Tikhonov damping.
"""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from pydantic import Field

from .base import register_rule
from .targets import LearnedFeedbackOptions, LearnedTargetRule, difference_reconstruction_loss, draw_feedback


class DDTPOptions(LearnedFeedbackOptions):
    damping: float = Field(0.0, ge=0, description="lambda of eq. 10's second term (0: the paper's practice, weight decay feedback_decay instead)")


@register_rule
class DDTPLinear(LearnedTargetRule):
    name = "ddtp_linear"
    summary = "direct DTP, hhat_l = h_l + Q_l (o_hat - o), Q_l trained by the difference reconstruction loss (Meulemans et al. 2020)"
    Options = DDTPOptions
    damping: float = eqx.field(static=True)

    @classmethod
    def build(cls, network, options, *, seed, lr):
        rng = np.random.default_rng(seed)
        sizes = network.sizes
        feedback = draw_feedback(rng, [(sizes[l], sizes[-1]) for l in range(1, network.L)], options.feedback_scale, network.W[0].dtype)
        return cls.learned(options, feedback, seed, damping=options.damping), {}

    def g(self, params, l: int, o):
        """The direct feedback map from the output activity to hidden layer ``l``."""
        Q, c = params
        return jnp.einsum("...j,ij->...i", o, Q) + c

    def propagate(self, feedback, network, fwd, o_hat):
        o = network.output(fwd)
        return tuple(self.g(p, l, o_hat) + fwd.h[l] - self.g(p, l, o) for l, p in enumerate(feedback, start=1))

    def feedback_loss(self, feedback, network, fwd, key):
        return difference_reconstruction_loss(self, feedback, network, fwd, key, self.damping)
