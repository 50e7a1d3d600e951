"""Target propagation: each hidden layer learns towards a target propagated down from the
output (Meulemans 2019 thesis ch. 4, Meulemans et al. 2020 section 3, Bartunov et al.
2018, Bengio 2020).

Conventions. The output activity ``o`` is ``h_L`` (``a_L`` under a softmax, whose loss
holds the softmax; :meth:`Network.output`). Its target is a step down the loss,
``o_hat = o - eta_hat e_L`` (thesis 4.4). A rule maps ``o_hat`` to hidden targets
``hhat_1 .. hhat_{L-1}`` (:meth:`TargetRule.targets`); every layer then takes a gradient
step on its local loss ``1/2 ||h_l - hhat_l||^2`` (4.12): ``Delta W_l ~ s_l'(a_l) *
(hhat_l - h_l) h_{l-1}^T``; for the output layer this is ``eta_hat`` times BP's update.

Units. Updates are reported per unit ``eta_hat``: the signal of hidden layer ``l`` is
``delta_l = s_l'(a_l) * (hhat_l - h_l) / eta_hat``, so a rule's ``lr`` is the product
``eta_l eta_hat`` of the thesis (4.13) and means what it means for BP; ``eta_hat`` still
sets how far the targets reach (the Taylor error of 4.9).

Rules whose feedback is learned (:class:`LearnedTargetRule`) own their feedback
parameters (one ``(Q_l, c_l)`` per hidden layer) and train them in the same step as the
forward weights, from the same mini-batch, by gradient descent on a reconstruction loss
of their own (:meth:`LearnedTargetRule.feedback_loss`): the forward update uses the
feedback as it was before the step.
"""

import abc
from collections.abc import Callable
from typing import ClassVar, Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field

from ..losses import output_descent, output_error
from ..optimizer import apply_updates
from .base import Rule, RuleOptions, clipped, outer_updates


class TargetOptions(RuleOptions):
    """Options of every target-propagation rule."""

    target_stepsize: float = Field(0.1, gt=0, description="eta_hat: the output target is o_hat = o - eta_hat e_L (thesis 4.4)")


class TargetRule(Rule):
    """A rule that propagates an output target to hidden targets (module docstring)."""
    family = "target propagation"

    min_layers: ClassVar[int] = 2
    target_stepsize: float = eqx.field(static=True)

    @abc.abstractmethod
    def targets(self, network, fwd, o_hat) -> tuple:
        """``(hhat_1, ..., hhat_{L-1})`` from the output target ``o_hat`` (batched like ``fwd``)."""

    def top(self, network, fwd):
        """The output-side activity targets start from: ``o`` (:meth:`Network.output`)."""
        return network.output(fwd)

    def hidden(self, fwd) -> tuple:
        """The hidden activities the targets are for: ``h_1 .. h_{L-1}``."""
        return fwd.h[1:-1]

    def output_target(self, network, fwd, t, loss: str):
        """``o_hat = o - eta_hat e_L`` (thesis 4.4)."""
        return network.output(fwd) + self.target_stepsize * output_descent(loss, network, fwd, t)

    def deltas(self, network, x, t, loss: str, opt=None):
        """``(fwd, [delta_1, ..., delta_L])``: the forward pass and each layer's per-sample
        signal (hidden ones from the targets, module docstring), clipped as in
        :func:`~neurodyn.learning.rules.base.clipped`."""
        fwd = network.forward(x)
        eta = self.target_stepsize
        hhat = self.targets(network, fwd, self.output_target(network, fwd, t, loss))
        hidden = [network.s[l].deriv(fwd.a[l]) * (hhat[l] - fwd.h[l + 1]) / eta for l in range(network.L - 1)]
        return fwd, clipped(hidden + [output_error(loss, network, fwd, t)], opt)

    def updates(self, network, x, t, loss, opt=None):
        return outer_updates(*self.deltas(network, x, t, loss, opt))

    def target_errors(self, network, x, t, loss: str) -> dict:
        fwd = network.forward(x)
        o = self.top(network, fwd)
        path = TargetPath(lambda o_hat: self.targets(network, fwd, o_hat), o, self.output_target(network, fwd, t, loss), self.hidden(fwd))
        return target_errors(path)


class TargetPath(NamedTuple):
    """A rule's hidden targets as a function of the output target, at one batch:
    ``targets(o_hat) -> (hhat_1, ..., hhat_{L-1})``, the output activity ``o`` its targets
    start from, the output target ``o_hat`` of this batch, and the hidden activities
    ``hidden`` the targets are for (all batched)."""

    targets: Callable
    o: jax.Array
    o_hat: jax.Array
    hidden: tuple


def target_errors(path: TargetPath) -> dict:
    """Thesis 5.38-5.41 on a batch, as mean norms per hidden layer (arrays of L-1; samples
    whose target is NaN, e.g. with no solution, are left out):

    - ``e_tp``: the linearised target step ``J_g (o_hat - o)``, ``J_g`` the Jacobian of
      ``path.targets`` at ``o`` (5.39);
    - ``e_rec``: ``hhat_l(o) - h_l``, the target a layer gets when the output needs no
      change: the reconstruction errors of the feedback path carried down (5.40; zero with
      a difference correction);
    - ``e_approx``: ``hhat_l(o_hat) - h_l - e_tp`` = reconstruction plus Taylor errors (5.41).
    """
    o_hat = path.o_hat.astype(path.o.dtype)
    hhat = path.targets(o_hat)
    at_o, e_tp = jax.jvp(path.targets, (path.o,), (o_hat - path.o,))

    def mean_norm(vs):
        return jnp.stack([jnp.nanmean(jnp.linalg.norm(v, axis=-1)) for v in vs])

    return {
        "e_tp": mean_norm(e_tp),
        "e_rec": mean_norm([r - h for r, h in zip(at_o, path.hidden)]),
        "e_approx": mean_norm([a - h - e for a, h, e in zip(hhat, path.hidden, e_tp)]),
    }


class LearnedFeedbackOptions(TargetOptions):
    """Options of the rules that train their feedback parameters."""

    feedback_lr: float = Field(1e-3, gt=0, description="learning rate of the feedback parameters (loss averaged over the mini-batch)")
    feedback_optimizer: Literal["adam", "sgd"] = Field("adam", description="adam (as the papers train their feedback: each step moves a weight by about feedback_lr) or plain sgd")
    sigma: float = Field(0.1, gt=0, description="standard deviation of the noise of the reconstruction loss")
    feedback_decay: float = Field(0.0, ge=0, description="weight decay of the feedback parameters (the damping lambda of thesis 4.97)")
    feedback_scale: float = Field(1.0, gt=0, description="initial feedback weights ~ N(0, scale^2 / fan-in)")
    warmup_steps: int = Field(0, ge=0, description="mini-batches at the start in which only the feedback learns (pre-training)")


def draw_feedback(rng, shapes, scale, dtype) -> tuple:
    """One ``(Q, c)`` per shape: ``Q ~ N(0, scale^2 / fan-in)``, ``c = 0``."""
    return tuple((jnp.asarray(rng.normal(size=s) * scale / np.sqrt(s[1]), dtype), jnp.zeros(s[0], dtype)) for s in shapes)


def only(feedback: tuple, i: int) -> tuple:
    """``feedback`` with every layer's parameters but layer index ``i`` held constant
    (``stop_gradient``): a layer's loss trains only its own feedback (Meulemans 2020 eq. 10)."""
    return tuple(f if j == i else jax.lax.stop_gradient(f) for j, f in enumerate(feedback))


class LearnedTargetRule(TargetRule):
    """Target propagation with trained feedback parameters ``feedback`` (one tuple of
    arrays per hidden layer, index ``l - 1`` for layer ``l``)."""

    feedback: tuple
    moments: tuple  # Adam's first and second moments of the feedback gradient
    key: jax.Array  # PRNG key data of the reconstruction noise
    count: jax.Array  # mini-batches done (for the warm-up and Adam's bias correction)
    feedback_lr: float = eqx.field(static=True)
    feedback_optimizer: str = eqx.field(static=True)
    sigma: float = eqx.field(static=True)
    feedback_decay: float = eqx.field(static=True)
    warmup_steps: int = eqx.field(static=True)

    @classmethod
    def learned(cls, options: LearnedFeedbackOptions, feedback: tuple, seed: int, **fields):
        """The rule with ``feedback`` and the common options."""
        zeros = jax.tree_util.tree_map(jnp.zeros_like, feedback)
        return cls(
            target_stepsize=options.target_stepsize, feedback=feedback, moments=(zeros, zeros), key=jax.random.key_data(jax.random.PRNGKey(seed)),
            count=jnp.zeros((), jnp.int32), feedback_lr=options.feedback_lr, feedback_optimizer=options.feedback_optimizer, sigma=options.sigma,
            feedback_decay=options.feedback_decay, warmup_steps=options.warmup_steps, **fields,
        )

    @abc.abstractmethod
    def propagate(self, feedback, network, fwd, o_hat) -> tuple:
        """The hidden targets under the feedback parameters ``feedback``."""

    @abc.abstractmethod
    def feedback_loss(self, feedback, network, fwd, key) -> jax.Array:
        """The scalar whose gradient in ``feedback`` is the feedback update (each layer's
        loss reaches only that layer's parameters, see :func:`only`)."""

    def targets(self, network, fwd, o_hat):
        return self.propagate(self.feedback, network, fwd, o_hat)

    def noise(self, key, like: list) -> list:
        """Standard normal draws shaped like each array of ``like``."""
        keys = jax.random.split(jax.random.wrap_key_data(key), len(like))
        return [jax.random.normal(k, v.shape, v.dtype) for k, v in zip(keys, like)]

    def step(self, network, x, t, loss, opt):
        key, sub = jax.random.split(jax.random.wrap_key_data(self.key))
        fwd = network.forward(x)
        grads = jax.grad(self.feedback_loss)(self.feedback, network, fwd, jax.random.key_data(sub))
        grads = jax.tree_util.tree_map(lambda g, p: g + self.feedback_decay * p, grads, self.feedback)
        feedback, moments = self.feedback_step(grads)
        dW, db = self.updates(network, x, t, loss, opt)
        on = (self.count >= self.warmup_steps).astype(dW[0].dtype)
        network = apply_updates(network, (tuple(on * d for d in dW), tuple(on * d for d in db)), opt)
        rule = eqx.tree_at(lambda r: (r.feedback, r.moments, r.key, r.count), self, (feedback, moments, jax.random.key_data(key), self.count + 1))
        return network, rule

    def feedback_step(self, grads) -> tuple:
        """``(feedback, moments)`` after one step along ``grads`` (weight decay included):
        plain SGD, or Adam (Kingma & Ba 2015; beta_1 = 0.9, beta_2 = 0.999, eps = 1e-8)."""
        tree = jax.tree_util.tree_map
        if self.feedback_optimizer == "sgd":
            return tree(lambda p, g: p - self.feedback_lr * g, self.feedback, grads), self.moments
        m = tree(lambda m, g: 0.9 * m + 0.1 * g, self.moments[0], grads)
        v = tree(lambda v, g: 0.999 * v + 0.001 * g**2, self.moments[1], grads)
        k = (self.count + 1).astype(grads[0][0].dtype)
        scale = self.feedback_lr * jnp.sqrt(1 - 0.999**k) / (1 - 0.9**k)
        return tree(lambda p, m, v: p - scale * m / (jnp.sqrt(v) + 1e-8), self.feedback, m, v), (m, v)

    def learned_arrays(self):
        return {f"Q{l}": f[0] for l, f in enumerate(self.feedback, start=1)}


def reconstruction(g, target, sigma) -> jax.Array:
    """``1/2 mean_b ||g - target||^2 / sigma^2`` of one layer."""
    return 0.5 * jnp.mean(jnp.sum((g - target) ** 2, axis=-1)) / sigma**2


def difference_reconstruction_loss(rule: LearnedTargetRule, feedback, network, fwd, key, damping: float = 0.0):
    """Meulemans et al. 2020 eq. 10 (DRL), one noise sample per sample: for each hidden
    layer ``l`` the noisy activity ``h_l + sigma eps`` goes up to the output and comes back
    down the rule's own target path (with the difference correction at the real
    activities); the loss is its distance to where it started, over ``sigma^2``. With
    ``damping`` (lambda > 0), the second term of eq. 10 adds ``lambda ||hhat_l(o + sigma
    eps_2) - h_l||^2 / sigma^2``."""
    o = network.output(fwd)
    h = fwd.h[1:-1]
    k1, k2 = jax.random.split(jax.random.wrap_key_data(key))
    eps = rule.noise(jax.random.key_data(k1), h)
    eps2 = rule.noise(jax.random.key_data(k2), [o] * len(h))
    total = 0.0
    for i in range(network.L - 1):
        mine = only(feedback, i)
        noisy = h[i] + rule.sigma * eps[i]
        back = rule.propagate(mine, network, fwd, network.head(i + 1, noisy))[i]
        total = total + reconstruction(back, noisy, rule.sigma)
        if damping > 0:
            out = rule.propagate(mine, network, fwd, o + rule.sigma * eps2[i])[i]
            total = total + damping * reconstruction(out, h[i], rule.sigma)
    return total
