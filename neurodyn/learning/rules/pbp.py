"""Pseudo-backpropagation: ``M_l = W_l^+`` (Moore-Penrose; supplement Algorithm 5, case PBP)."""

import jax.numpy as jnp

from .base import LayerwiseRule


class PBP(LayerwiseRule):
    name = "pbp"

    def matrix(self, network, l):
        return jnp.linalg.pinv(network.W[l - 1])
