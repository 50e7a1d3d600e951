"""Bengio's (2020) discrete difference target propagation, with targets on the
pre-activations ``a_l`` (his ``h_l``, as his layers read ``W_l sigma(h_{l-1})``).

Targets: ``tau_L = a_L - beta dL/da_L`` (eq. 7, ``beta = target_stepsize``) and one
decoder per layer, ``g_l(u) = Omega_l s_l(u) + c_l`` from ``a_l`` down to ``a_{l-1}`` (eq. 54,
the bias his constant input). ``f_l(u) = W_l s_{l-1}(u) + b_l`` is the forward map between
the same spaces. The target of layer ``l - 1`` is, by ``refinement``:

- ``"none"``: the difference target ``a_{l-1} + g_l(tau_l) - g_l(a_l)``;
- ``"output"``: decoder-output correction (35), ``tau <- tau + g_l(tau_l) - g_l(f_l(tau))``
  from the difference target (itself one step of (35) from ``a_{l-1}``; the paper leaves
  the start open, and ``g_l(tau_l)`` starts further away when ``beta`` is small), ``iterations`` times (converges like ``alpha^t`` when ``g_l o
  f_l - I`` has Lipschitz constant ``alpha < 1``, eqs. 36-37);
- ``"input"``: decoder-input correction (27), ``u <- u + tau_l - f_l(g_l(u))`` from ``u =
  tau_l``, then ``tau_{l-1} = g_l(u)`` (needs ``f_l o g_l`` near the identity, eqs. 28-30).

Updates: DTP1 (13), the minimum-norm change of ``W_l`` that moves ``a_l`` to ``tau_l``,
``Delta W_l = (tau_l - a_l) h_{l-1}^T / (||h_{l-1}||^2 + 1)`` (and ``Delta b_l = (tau_l -
a_l) / (||h_{l-1}||^2 + 1)``), per sample and summed over the mini-batch; with ``normalized``
each layer's is scaled by ``||tau_L - a_L||^2 / ||tau_l - a_l||^2`` (43), so all layers move
their output by the same amount. The factor divides by the size of a hidden move, so it
amplifies whatever the decoders get wrong: train them first (``warmup_steps``, a larger
``feedback_lr``) before using ``normalized`` or a refinement. Reported per unit ``beta`` (as the other target rules),
so ``lr = 1`` is the paper's step. The decoders learn by the normalised delta rule on
noisy activity (his Algorithm 1 with denoising): ``1/2 mean_b ||g_l(f_l(a~)) - a~||^2 /
(||s_l(f_l(a~))||^2 + 1)``, ``a~ = a_{l-1} + sigma eps``: ``g_l o f_l`` near the identity,
as the output correction needs.
"""

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field

from ..losses import output_error
from .base import clipped, register_rule
from .targets import LearnedFeedbackOptions, LearnedTargetRule, draw_feedback


class BengioOptions(LearnedFeedbackOptions):
    refinement: Literal["none", "output", "input"] = Field("none", description="difference target (none), decoder-output correction (35) or decoder-input correction (27)")
    iterations: int = Field(5, ge=1, le=1000, description="iterations of the refinement")
    normalized: bool = Field(False, description="scale each layer's update by ||tau_L - a_L||^2 / ||tau_l - a_l||^2 (eq. 43); needs trained decoders (warmup_steps)")


def _affine(u, M, c):
    return jnp.einsum("...j,ij->...i", u, M) + c


def refine_output(f, g, tau_above, iterations: int, start=None):
    """Eq. 35 from ``start`` (default ``g(tau_above)``): every iterate, shape
    ``(iterations + 1, ...)``."""
    decoded = g(tau_above)

    def body(tau, _):
        tau = tau + decoded - g(f(tau))
        return tau, tau

    start = decoded if start is None else start
    _, path = jax.lax.scan(body, start, None, length=iterations)
    return jnp.concatenate([start[None], path])


def refine_input(f, g, tau_above, iterations: int):
    """Eq. 27 from ``u = tau_above``: every iterate of ``g(u_t)``, shape ``(iterations + 1, ...)``."""

    def body(u, _):
        u = u + tau_above - f(g(u))
        return u, g(u)

    _, path = jax.lax.scan(body, tau_above, None, length=iterations)
    return jnp.concatenate([g(tau_above)[None], path])


@register_rule
class DTPBengio(LearnedTargetRule):
    name = "dtp_bengio"
    summary = "Bengio 2020 DTP on pre-activations: DTP1 (13) or normalised (43) updates, iterative inverse refinement (27)/(35)"
    Options = BengioOptions
    refinement: str = eqx.field(static=True)
    iterations: int = eqx.field(static=True)
    normalized: bool = eqx.field(static=True)

    @classmethod
    def build(cls, network, options, *, seed, lr):
        sizes = network.sizes
        feedback = draw_feedback(np.random.default_rng(seed), [(sizes[l - 1], sizes[l]) for l in range(2, network.L + 1)], options.feedback_scale, network.W[0].dtype)
        return cls.learned(options, feedback, seed, refinement=options.refinement, iterations=options.iterations, normalized=options.normalized), {}

    def f(self, network, l: int, u):
        """``a_{l-1} -> a_l``."""
        return _affine(network.s[l - 2](u), network.W[l - 1], network.b[l - 1])

    def g(self, params, network, l: int, u):
        """``a_l -> a_{l-1}`` (decoder of layer ``l = 2..L``)."""
        return _affine(network.target_nonlinearity(l)(u), *params)

    def top(self, network, fwd):
        return fwd.a[-1]

    def output_target(self, network, fwd, t, loss):
        return fwd.a[-1] + self.target_stepsize * output_error(loss, network, fwd, t)

    def propagate(self, feedback, network, fwd, o_hat):
        out = [o_hat]
        for l in range(network.L, 1, -1):
            f = lambda u, l=l: self.f(network, l, u)  # noqa: E731
            g = lambda u, l=l: self.g(feedback[l - 2], network, l, u)  # noqa: E731
            difference = g(out[-1]) + fwd.a[l - 2] - g(fwd.a[l - 1])
            if self.refinement == "none":
                out.append(difference)
            elif self.refinement == "output":
                out.append(refine_output(f, g, out[-1], self.iterations, start=difference)[-1])
            else:
                out.append(refine_input(f, g, out[-1], self.iterations)[-1])
        return tuple(reversed(out[1:]))

    def hidden(self, fwd):
        return fwd.a[:-1]

    def deltas(self, network, x, t, loss, opt=None):
        fwd = network.forward(x)
        tau_L = self.output_target(network, fwd, t, loss)
        taus = list(self.targets(network, fwd, tau_L)) + [tau_L]
        moves = [tau - a for tau, a in zip(taus, fwd.a)]
        top = jnp.sum(moves[-1] ** 2, axis=-1, keepdims=True)
        out = []
        for move, h_prev in zip(moves, fwd.h[:-1]):
            d = move / (jnp.sum(h_prev**2, axis=-1, keepdims=True) + 1.0)
            if self.normalized:
                d = d * top / jnp.maximum(jnp.sum(move**2, axis=-1, keepdims=True), jnp.finfo(d.dtype).tiny)
            out.append(d / self.target_stepsize)
        return fwd, clipped(out, opt)

    def feedback_loss(self, feedback, network, fwd, key):
        lower = fwd.a[:-1]
        total = 0.0
        for l, eps in zip(range(2, network.L + 1), self.noise(key, lower)):
            noisy = lower[l - 2] + self.sigma * eps
            up = self.f(network, l, noisy)
            scale = jax.lax.stop_gradient(jnp.sum(network.target_nonlinearity(l)(up) ** 2, axis=-1) + 1.0)
            total = total + 0.5 * jnp.mean(jnp.sum((self.g(feedback[l - 2], network, l, up) - noisy) ** 2, axis=-1) / scale)
        return total
