"""Pseudo-backpropagation: ``M_l = W_l^+`` (Moore-Penrose; supplement Algorithm 5, case PBP)."""

import jax.numpy as jnp

from .base import LayerwiseRule, RuleOptions, register_rule


@register_rule
class PBP(LayerwiseRule):
    family = "feedback alignment"
    name = "pbp"
    summary = "pseudo-backpropagation, M_l = W_l^+ (Moore-Penrose)"
    Options = RuleOptions
    min_layers = 2

    @classmethod
    def build(cls, network, options, *, seed, lr):
        return cls(), {}

    def matrix(self, network, l):
        """``W_l^+`` through the smaller Gram matrix: ``W^T (W W^T)^{-1}`` for a wide ``W_l``,
        ``(W^T W)^{-1} W^T`` for a tall one (full rank, as random and trained layers are).
        An SVD per online step cost 40-85 ms at 10 x 1000; this costs a 10 x 10 solve."""
        W = network.W[l - 1]
        if W.shape[0] <= W.shape[1]:
            return jnp.linalg.solve(W @ W.T, W).T
        return jnp.linalg.solve(W.T @ W, W.T)

    def propagate(self, network, l, delta):
        """``delta_l (W_l^+)^T`` by one small solve with the batch's errors as right-hand
        sides: ``(W W^T)^{-1} delta`` then ``W^T`` for a wide ``W_l``; ``(W^T W)^{-1} W^T delta``
        for a tall one."""
        W = network.W[l - 1]
        rows = delta.reshape(-1, W.shape[0]).T
        if W.shape[0] <= W.shape[1]:
            out = W.T @ jnp.linalg.solve(W @ W.T, rows)
        else:
            out = jnp.linalg.solve(W.T @ W, W.T @ rows)
        return out.T.reshape(*delta.shape[:-1], W.shape[1])
