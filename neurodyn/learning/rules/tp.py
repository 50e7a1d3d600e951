"""Target propagation with learned layer-wise inverses (thesis section 4.3, Algorithms A.8
-A.10; Lee et al. 2015): ``hhat_l = g_l(hhat_{l+1})`` from ``hhat_L = o_hat`` (thesis 4.2,
3.8), with one feedback map ``g_l`` from layer ``l + 1`` down to layer ``l``:

- ``inverse = "nonlinear"``: ``g_l(h) = s_l(Q_l h + c_l)``, the original TP form;
- ``inverse = "linear"``: ``g_l(h) = Q_l s_{l+1}^{-1}(h) + c_l``, the thesis's form (4.90),
  whose optimum is the (damped) pseudo-inverse of ``W_{l+1}`` (Theorems 4.6-4.7; tanh's
  inverse is taken on ``(-1, 1)`` clipped by 1e-6, relu has none).

Each ``g_l`` learns from its own layer (A.9): ``1/2 mean_b ||g_l(f_{l+1}(h~)) - h~||^2 /
sigma^2`` with ``h~ = h_l + sigma eps`` (``reconstruction = "noisy"``, Lee et al.'s
corrupted activity, the target the corrupted one as in Meulemans et al.'s code) or ``h~ =
sigma eps`` (``"white"``, A.8), plus weight decay ``lambda = feedback_decay`` (4.97). The
``1 / sigma^2`` makes the loss of order one for small noise; with white noise and
``inverse = "linear"`` on a linear layer the expected optimum is then ``Q_l = W^T (W W^T +
lambda I)^{-1}`` (4.99 with ``lambda / sigma^2`` read as our ``lambda``), ``W^+`` as
``lambda -> 0`` (4.100).

Pure TP carries the reconstruction errors of every ``g`` into the targets (4.84); DTP
(:mod:`.dtp`) removes them.
"""

from typing import ClassVar, Literal

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from pydantic import Field

from ...core.nonlinearities import Tanh
from .base import register_rule
from .targets import LearnedFeedbackOptions, LearnedTargetRule, draw_feedback, reconstruction

#: how far inside (-1, 1) tanh's inverse is evaluated
TANH_MARGIN = 1e-6


class TPOptions(LearnedFeedbackOptions):
    inverse: Literal["nonlinear", "linear"] = Field("nonlinear", description="g_l(h) = s_l(Q_l h + c_l) (nonlinear) or Q_l s_{l+1}^-1(h) + c_l (linear, thesis 4.90)")
    reconstruction: Literal["noisy", "white"] = Field("noisy", description="feedback trained on h_l + sigma eps (noisy) or on white noise sigma eps (white, thesis A.8)")

    def check_network(self, network_spec):
        super().check_network(network_spec)
        if self.inverse == "linear":
            bad = [n for n in list(network_spec.nonlinearities)[1:] if n == "relu"]
            if bad:
                raise ValueError(f"rule '{self.rule}' with inverse = \"linear\" inverts s_2..s_L: relu has no inverse (use leaky_relu or inverse = \"nonlinear\")")


def inverse(nonlinearity, h):
    """``s^{-1}(h)``, tanh's clipped into ``(-1, 1)``."""
    if isinstance(nonlinearity, Tanh):
        h = jnp.clip(h, -1.0 + TANH_MARGIN, 1.0 - TANH_MARGIN)
    return nonlinearity.inverse(h)


@register_rule
class TP(LearnedTargetRule):
    name = "tp"
    summary = "target propagation, hhat_l = g_l(hhat_{l+1}) with learned layer-wise inverses g_l (thesis A.10)"
    Options = TPOptions
    #: subtract each g's reconstruction error (DTP)
    difference: ClassVar[bool] = False
    inverse: str = eqx.field(static=True)
    reconstruction: str = eqx.field(static=True)

    @classmethod
    def build(cls, network, options, *, seed, lr):
        sizes = network.sizes
        feedback = draw_feedback(np.random.default_rng(seed), [(sizes[l], sizes[l + 1]) for l in range(1, network.L)], options.feedback_scale, network.W[0].dtype)
        return cls.learned(options, feedback, seed, inverse=options.inverse, reconstruction=options.reconstruction, **cls.fields(options)), {}

    @classmethod
    def fields(cls, options) -> dict:
        """The fields a variant adds, from its options."""
        return {}

    def g(self, params, network, l: int, h):
        """The feedback map from layer ``l + 1`` down to layer ``l``."""
        Q, c = params
        if self.inverse == "linear":
            return jnp.einsum("...j,ij->...i", inverse(network.target_nonlinearity(l + 1), h), Q) + c
        return network.s[l - 1](jnp.einsum("...j,ij->...i", h, Q) + c)

    def propagate(self, feedback, network, fwd, o_hat):
        above = [self.top(network, fwd)] + list(fwd.h[network.L - 1 : 1 : -1])  # h_L (as o), h_{L-1}, ..., h_2
        out = [o_hat]
        for l, ref in zip(range(network.L - 1, 0, -1), above):
            target = self.g(feedback[l - 1], network, l, out[-1])
            if self.difference:
                target = target + fwd.h[l] - self.g(feedback[l - 1], network, l, ref)
            out.append(target)
        return tuple(reversed(out[1:]))

    def feedback_loss(self, feedback, network, fwd, key):
        h = fwd.h[1:-1]
        eps = self.noise(key, h)
        total = 0.0
        for l in range(1, network.L):
            noisy = self.sigma * eps[l - 1] + (h[l - 1] if self.reconstruction == "noisy" else 0.0)
            back = self.g(feedback[l - 1], network, l, network.layer(l + 1, noisy))
            total = total + reconstruction(back, noisy, self.sigma)
        return total
